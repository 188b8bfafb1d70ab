"""The aiogram driver of the shared restart scenarios, in polling mode, for aiogram-only tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.drivers.aiogram import AiogramDriver


@pytest.fixture
def polling(tmp_path: Path) -> Iterator[AiogramDriver]:
    """Polling only: for what only polling has (offsets, handle_as_tasks, the task limit)."""
    with AiogramDriver("polling", tmp_path).running() as driver:
        assert isinstance(driver, AiogramDriver)
        yield driver
