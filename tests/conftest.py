"""Fixtures for every test: the ones restart-guard ships, and an open DirectoryStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard import DirectoryStore

# The fixtures restart-guard ships for bot authors; the project's own tests use them too.
pytest_plugins = ["restart_guard.testing.fixtures"]


@pytest.fixture
def store(marker_dir: Path) -> Iterator[DirectoryStore]:
    """A DirectoryStore in the test's ``marker_dir``, open as "me" for the test."""
    s = DirectoryStore(marker_dir)
    s.open("me")
    yield s
    s.close()
