import pytest

pytest.importorskip("aiogram")
