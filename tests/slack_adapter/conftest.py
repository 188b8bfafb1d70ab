"""Fixtures: a Slack stand-in in a thread (the restart scenarios use tests/scenarios' driver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from restart_guard.testing.slack import SlackStandIn


@pytest.fixture
def api() -> Iterator[SlackStandIn]:
    with SlackStandIn.running() as standin:
        yield standin
