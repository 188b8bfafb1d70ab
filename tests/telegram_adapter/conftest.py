"""Fixtures: the Telegram scenario driver, for restart tests only python-telegram-bot has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.drivers.telegram import TelegramDriver


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[TelegramDriver]:
    """The Telegram stand-in and the demo bot, blocking handlers (as in the shared scenarios)."""
    with TelegramDriver("blocking", tmp_path).running() as driver:
        yield driver
