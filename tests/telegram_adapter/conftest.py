"""Fixtures: a Telegram stand-in in a thread and real bot processes pointed at it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn

StartBot = Callable[..., BotProcess]


@pytest.fixture
def api() -> Iterator[TelegramStandIn]:
    with TelegramStandIn.running() as standin:
        yield standin


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    return tmp_path / "markers"


@pytest.fixture
def start_bot(api: TelegramStandIn, marker_dir: Path, tmp_path: Path) -> Iterator[StartBot]:
    """Start the demo bot (restart_guard.demo.telegram_bot) as a real subprocess."""
    started: list[BotProcess] = []

    def start(*args: str, wait_ready: bool = True) -> BotProcess:
        argv = [
            sys.executable,
            "-m",
            "restart_guard.demo.telegram_bot",
            "--api-url",
            api.base_url,
            "--token",
            api.token,
            "--marker-dir",
            str(marker_dir),
            *args,
        ]
        since = time.monotonic()
        bot = BotProcess.start(argv, log_path=tmp_path / f"bot-{len(started) + 1}.log")
        started.append(bot)
        if wait_ready:
            # Polling starts only after start-up recovery: notices come first.
            bot.wait_for_log("Application started", timeout=30)
            api.wait_for_poll(timeout=30, since=since)
        return bot

    yield start
    for bot in started:
        bot.stop()
    for bot in started:
        # Shown by pytest only when the test fails.
        print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")
