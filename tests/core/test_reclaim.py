"""Markers of an instance that was still running at our start are resumed once it stops."""

from __future__ import annotations

import time
from pathlib import Path

from restart_guard import Conversation, DirectoryStore, Guard, Marker, Resumer, Settings
from restart_guard.testing.wait import eventually_async

from .conftest import FakeLink


async def test_markers_of_an_instance_that_stops_later_are_reclaimed(tmp_path: Path) -> None:
    old = DirectoryStore(tmp_path)  # the blue instance, still draining
    old.open("blue")
    conversation = Conversation("telegram", "-100", "7")
    old.commit([Marker(conversation, time.time(), owner="blue")], [])

    guard = Guard("telegram", DirectoryStore(tmp_path), Settings())
    assert guard.start() == []  # blue holds its journal: nothing to claim yet
    link = FakeLink()
    resumer = Resumer(guard, link)
    resumer.reclaim_interval = 0.02
    assert resumer.start([]) is None
    try:
        old.close()  # blue exits with the conversation still marked
        await eventually_async(lambda: link.sent, what="the marker to be reclaimed")
        assert link.conversations == [conversation]
        assert await resumer.wait(5)
    finally:
        await resumer.cancel()
        guard.close()
    assert DirectoryStore(tmp_path).load() == []
    assert link.replayed == []  # replay is off
