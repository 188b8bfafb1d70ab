"""``restart-guard demo --platform slack`` runs end to end and says what it showed."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_shows_the_loss_then_the_notice() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "restart_guard.cli", "demo", "--platform", "slack"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "was silently lost" in result.stdout
    assert "the user was told in its thread" in result.stdout
    assert "as expected" in result.stdout
