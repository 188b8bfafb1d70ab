"""Fixtures: a Discord stand-in in a thread and real bot processes pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from restart_guard.testing.discord import DiscordStandIn
from restart_guard.testing.process import BotProcess

StartBot = Callable[..., BotProcess]

#: Printed by the demo bot's on_ready: the gateway is up and events reach it.
READY = "demo bot ready"


@pytest.fixture
def api() -> Iterator[DiscordStandIn]:
    with DiscordStandIn.running() as standin:
        yield standin


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    return tmp_path / "markers"


@pytest.fixture
def start_bot(api: DiscordStandIn, marker_dir: Path, tmp_path: Path) -> Iterator[StartBot]:
    """Start the demo bot (restart_guard.demo.discord_bot) as a real subprocess."""
    started: list[BotProcess] = []

    def start(*args: str, wait_ready: bool = True) -> BotProcess:
        argv = [
            sys.executable,
            "-m",
            "restart_guard.demo.discord_bot",
            "--marker-dir",
            str(marker_dir),
            *args,
        ]
        bot = BotProcess.start(
            argv, env=api.env_vars(), log_path=tmp_path / f"bot-{len(started) + 1}.log"
        )
        started.append(bot)
        if wait_ready:
            # on_ready comes after setup_hook, so start-up notices are out by then.
            bot.wait_for_log(READY, timeout=30)
        return bot

    yield start
    for bot in started:
        bot.stop()
    for bot in started:
        # Shown by pytest only when the test failed.
        print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")
