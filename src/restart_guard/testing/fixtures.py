"""pytest fixtures for testing a bot's restart behaviour offline.

Enable them in your ``conftest.py``::

    pytest_plugins = ["restart_guard.testing.fixtures"]

Then::

    def test_my_bot_resumes(telegram_api, marker_dir, bot_process):
        bot = bot_process([sys.executable, "my_bot.py"],
                          env={"BOT_API": telegram_api.base_url, "MARKERS": str(marker_dir)})
        telegram_api.wait_for_poll()
        telegram_api.inject_message(42, "/long_job")
        telegram_api.wait_for_sent(lambda m: m.chat == "42")
        bot.kill()                                   # the OOM killer
        bot = bot_process([...])                     # the restart
        telegram_api.wait_for_sent(lambda m: "restarted" in m.text)

Fixtures: ``telegram_api``, ``discord_api``, ``slack_api`` (a stand-in running
in a thread for the test's duration; each skips when its framework's extra
is not installed), ``marker_dir`` (a fresh marker directory) and
``bot_process`` (starts a :class:`~restart_guard.testing.process.BotProcess`;
every process still running is killed at teardown and its output printed,
which pytest shows when the test failed).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .process import BotProcess

__all__ = ["bot_process", "discord_api", "marker_dir", "slack_api", "telegram_api"]


def _running(module: str, class_name: str, framework: str) -> Iterator[Any]:
    pytest.importorskip(framework)
    standin_class = getattr(importlib.import_module(module), class_name)
    with standin_class.running() as standin:
        yield standin


@pytest.fixture
def telegram_api() -> Iterator[Any]:
    """A :class:`~restart_guard.testing.telegram.TelegramStandIn` running in a thread.

    It serves python-telegram-bot and aiogram bots alike, so it needs neither.
    """
    yield from _running("restart_guard.testing.telegram", "TelegramStandIn", "aiohttp")


@pytest.fixture
def discord_api() -> Iterator[Any]:
    """A :class:`~restart_guard.testing.discord.DiscordStandIn` running in a thread."""
    yield from _running("restart_guard.testing.discord", "DiscordStandIn", "discord")


@pytest.fixture
def slack_api() -> Iterator[Any]:
    """A :class:`~restart_guard.testing.slack.SlackStandIn` running in a thread."""
    yield from _running("restart_guard.testing.slack", "SlackStandIn", "slack_bolt")


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """A fresh marker directory (not created yet: restart-guard creates it 0700)."""
    return tmp_path / "restart-guard"


@pytest.fixture
def bot_process(tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start bot subprocesses: ``bot_process(argv, env=None) -> BotProcess``."""
    started: list[BotProcess] = []

    def start(argv: Sequence[str], env: Mapping[str, str] | None = None) -> BotProcess:
        bot = BotProcess.start(argv, env=env, log_path=tmp_path / f"bot-{len(started) + 1}.log")
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()
        print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")
