"""The README's first command: `restart-guard demo` shows the gap, then the fix."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest


@pytest.mark.e2e
def test_demo_loses_the_conversation_unguarded_and_tells_the_user_guarded() -> None:
    command = shutil.which("restart-guard")
    argv = [command, "demo"] if command else [sys.executable, "-m", "restart_guard.cli", "demo"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    unguarded, guarded = result.stdout.split("=== WITH restart-guard ===")
    assert "silently lost" in unguarded
    assert "restarted while I was working" not in unguarded
    assert "told the user in the right topic" in guarded
    # In a group the notice mentions the asker first (👤, a link to the user).
    assert "bot → topic 42: 👤 ♻️ I was restarted" in guarded
    assert "as expected" in guarded
    for round_text in (unguarded, guarded):
        # Every step is narrated once and in order; the exit status follows the
        # narrated second stop, and the user's "hello?" is introduced in step 6.
        steps = re.findall(r"^\[(\d)\]", round_text, re.MULTILINE)
        assert steps == [str(n) for n in range(1, 9)], round_text
        assert re.search(r"^\[6\] the user.* writes again in topic 42: hello\?", round_text, re.M)
        assert re.search(r"^\[7\] .*SIGTERM.*: the bot exited 0$", round_text, re.MULTILINE)
