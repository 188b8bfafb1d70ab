"""Markers of an instance that was still running at our start are resumed once it stops."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from restart_guard import Conversation, DirectoryStore, Guard, Marker, Resumer, Settings


class RecordingLink:
    notices_per_second = 1000.0

    def __init__(self) -> None:
        self.sent: list[tuple[Conversation, str]] = []

    async def send_notice(self, conversation: Conversation, text: str, *, nonce: str) -> None:
        self.sent.append((conversation, text))

    async def replay(self, marker: Marker) -> None:
        raise AssertionError("replay is off")


async def test_markers_of_an_instance_that_stops_later_are_reclaimed(tmp_path: Path) -> None:
    old = DirectoryStore(tmp_path)  # the blue instance, still draining
    old.open("blue")
    conversation = Conversation("telegram", "-100", "7")
    old.commit([Marker(conversation, time.time(), owner="blue")], [])

    guard = Guard("telegram", DirectoryStore(tmp_path), Settings())
    assert guard.start() == []  # blue holds its journal: nothing to claim yet
    link = RecordingLink()
    resumer = Resumer(guard, link)
    resumer.reclaim_interval = 0.02
    assert resumer.start([]) is None
    try:
        old.close()  # blue exits with the conversation still marked
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not link.sent:
            assert loop.time() < deadline, "the marker was not reclaimed"
            await asyncio.sleep(0.01)
        assert [c for c, _ in link.sent] == [conversation]
        assert await resumer.wait(5)
    finally:
        await resumer.cancel()
        guard.close()
    assert DirectoryStore(tmp_path).load() == []
