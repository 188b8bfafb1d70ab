import pytest

pytest.importorskip("slack_bolt")
