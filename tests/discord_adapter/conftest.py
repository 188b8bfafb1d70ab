"""Fixtures: a Discord stand-in, and the Discord scenario driver for discord.py-only restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing.discord import DiscordStandIn
from scenarios.drivers.discord import DiscordDriver


@pytest.fixture
def api() -> Iterator[DiscordStandIn]:
    with DiscordStandIn.running() as standin:
        yield standin


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[DiscordDriver]:
    """The Discord stand-in and the demo bot, working in a thread."""
    with DiscordDriver("gateway", tmp_path).running() as driver:
        yield driver
