import pytest

pytest.importorskip("discord")
