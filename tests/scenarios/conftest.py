"""The ``driver`` fixtures: every restart scenario runs once per platform (and run mode).

Like ``store_factory`` over stores: a scenario asks for ``driver`` (each
platform in its default mode), ``driver_any_mode`` (each platform in every
mode its demo bot has) or ``concurrent_driver`` (a mode in which turns of one
conversation run at once). A platform whose framework is not installed is
skipped. A new platform adds its driver module and one entry to ``DRIVERS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .drivers.aiogram import AiogramDriver
from .drivers.base import Driver
from .drivers.discord import DiscordDriver
from .drivers.slack import SlackDriver
from .drivers.telegram import TelegramDriver

DRIVERS: tuple[type[Driver], ...] = (TelegramDriver, DiscordDriver, SlackDriver, AiogramDriver)


def _param(driver_class: type[Driver], mode: str) -> object:
    name = driver_class.name or driver_class.platform
    test_id = name if mode == driver_class.modes[0] else f"{name}-{mode}"
    return pytest.param((driver_class, mode), id=test_id)


def _running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    driver_class, mode = request.param
    pytest.importorskip(driver_class.framework)
    with driver_class(mode, tmp_path).running() as driver:
        yield driver


@pytest.fixture(params=[_param(d, d.modes[0]) for d in DRIVERS])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """Each platform, its demo bot in its default mode."""
    yield from _running(request, tmp_path)


@pytest.fixture(params=[_param(d, mode) for d in DRIVERS for mode in d.modes])
def driver_any_mode(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """Each platform in every mode its demo bot runs in."""
    yield from _running(request, tmp_path)


@pytest.fixture(params=[_param(d, d.concurrent_mode) for d in DRIVERS])
def concurrent_driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """Each platform in a mode where several turns of one conversation run at once."""
    yield from _running(request, tmp_path)
