"""Fixtures: a Telegram stand-in in a thread and the aiogram driver around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing.telegram import TelegramStandIn

from .driver import AiogramDriver


@pytest.fixture
def api() -> Iterator[TelegramStandIn]:
    with TelegramStandIn.running() as standin:
        yield standin


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    return tmp_path / "markers"


@pytest.fixture(params=["polling", "webhook"])
def driver(
    request: pytest.FixtureRequest, api: TelegramStandIn, marker_dir: Path, tmp_path: Path
) -> Iterator[AiogramDriver]:
    """The bot behind aiogram's polling, then behind its aiohttp webhook handler."""
    driver = AiogramDriver(api, marker_dir, tmp_path, webhook=request.param == "webhook")
    yield driver
    driver.stop_all()


@pytest.fixture
def polling(api: TelegramStandIn, marker_dir: Path, tmp_path: Path) -> Iterator[AiogramDriver]:
    """Polling only: for what only polling has (offsets, handle_as_tasks, the task limit)."""
    driver = AiogramDriver(api, marker_dir, tmp_path)
    yield driver
    driver.stop_all()
