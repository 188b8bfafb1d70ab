"""The shipped pytest fixtures, used as a bot author would: on the example bot."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.process import BotProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "bots" / "telegram_bot.py"


@pytest.mark.e2e
def test_example_telegram_bot_resumes_with_the_shipped_fixtures(
    telegram_api: Any, marker_dir: Path, bot_process: Callable[..., BotProcess]
) -> None:
    pytest.importorskip("telegram")
    env = {
        "TELEGRAM_TOKEN": telegram_api.token,
        "TELEGRAM_API_URL": telegram_api.base_url,
        "RESTART_GUARD_DIR": str(marker_dir),
    }
    since = time.monotonic()
    bot = bot_process([sys.executable, str(EXAMPLE)], env=env)
    telegram_api.wait_for_poll(timeout=30, since=since)
    update = telegram_api.inject_message(42, "/think")
    telegram_api.wait_for_sent(lambda m: m.chat == "42" and "Thinking" in m.text)
    telegram_api.wait_until_confirmed(update)
    # Killed only once the write-ahead is durable (an fsync can be slow on a busy machine).
    wait_for_markers(marker_dir)  # the default layout: one folder per bot
    bot.kill()

    since = time.monotonic()
    bot = bot_process([sys.executable, str(EXAMPLE)], env=env)
    telegram_api.wait_for_poll(timeout=30, since=since)
    notices = telegram_api.wait_for_sent(lambda m: m.chat == "42" and "restarted" in m.text)
    assert len(notices) == 1
    # The default directory is one subfolder per bot under $RESTART_GUARD_DIR.
    [bot_dir] = marker_dir.iterdir()
    assert bot_dir.name.startswith("telegram-")
    assert bot_dir.stat().st_mode & 0o777 == 0o700
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
