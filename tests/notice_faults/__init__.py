import pytest

for _framework in ("telegram", "discord", "slack_bolt"):
    pytest.importorskip(_framework)
