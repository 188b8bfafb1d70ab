import pytest

pytest.importorskip("telegram")
