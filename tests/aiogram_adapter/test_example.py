"""The aiogram example bot, run as a user would; and a bot moved over from python-telegram-bot."""

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

pytest.importorskip("telegram")  # the bot the user moves over from
pytestmark = pytest.mark.e2e

BOTS = Path(__file__).parents[2] / "examples" / "bots"


def test_a_turn_cut_off_under_python_telegram_bot_is_resumed_by_the_aiogram_bot(
    telegram_api: Any, marker_dir: Path, bot_process: Callable[..., BotProcess]
) -> None:
    # Where each example bot finds the Bot API: python-telegram-bot's base URL, aiogram's root.
    urls = {"TELEGRAM_API_URL": telegram_api.base_url, "TELEGRAM_API_ROOT": telegram_api.url}
    env = {**urls, "TELEGRAM_TOKEN": telegram_api.token, "RESTART_GUARD_DIR": str(marker_dir)}
    since = time.monotonic()
    bot = bot_process([sys.executable, str(BOTS / "telegram_bot.py")], env=env)
    telegram_api.wait_for_poll(timeout=30, since=since)
    telegram_api.inject_message(-1001000000001, "/think", message_thread_id=7)
    telegram_api.wait_for_sent(lambda m: "Thinking" in m.text)
    wait_for_markers(marker_dir)
    bot.kill()

    since = time.monotonic()
    bot = bot_process([sys.executable, str(BOTS / "aiogram_bot.py")], env=env)
    telegram_api.wait_for_poll(timeout=30, since=since)
    [notice] = telegram_api.wait_for_sent(lambda m: "restarted" in m.text)
    assert (notice.chat, notice.thread) == ("-1001000000001", "7")
    telegram_api.inject_message(42, "/think")
    telegram_api.wait_for_sent(lambda m: m.chat == "42" and "Thinking" in m.text)
    bot.send_signal(signal.SIGTERM)  # drains the 30 s turn (drain_timeout=20 cuts it)
    assert bot.wait_exit(60) == 0
    [bot_dir] = marker_dir.iterdir()  # the same folder for both frameworks
    assert bot_dir.name.startswith("telegram-")
