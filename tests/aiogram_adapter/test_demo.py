"""`restart-guard demo --platform aiogram` shows the gap, then the fix, with a real aiogram bot."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.e2e
def test_demo_loses_the_conversation_unguarded_and_tells_the_user_guarded() -> None:
    # This interpreter's restart-guard (the console script tests/telegram_adapter runs).
    argv = [sys.executable, "-m", "restart_guard.cli", "demo", "--platform", "aiogram"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    unguarded, guarded = result.stdout.split("=== WITH restart-guard ===")
    assert "a real aiogram process" in unguarded
    assert "silently lost" in unguarded
    assert "restarted while I was working" not in unguarded
    assert "bot → topic 42: 👤 ♻️ I was restarted" in guarded  # the asker mentioned
    assert "as expected" in guarded
