"""What the adapters' in-process tracking tests share: a gate that holds a handler run in
flight, a store that holds the marker writer, the markers read back from the real marker
directory, and the check between them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from restart_guard import DirectoryStore, Marker, Phase
from restart_guard.testing.wait import eventually_async

#: A marker's conversation as (chat, thread, scope).
Key = tuple[str, "str | None", "str | None"]

#: The Telegram group the acknowledgement tests write in.
CHAT = -1001000000001
#: How long a test holds the marker's batch: both Telegram frameworks poll again (or
#: answer the webhook) within about a millisecond, so an acknowledgement not held back
#: would land inside it.
HOLD = 0.3


def stored(marker_dir: Path) -> dict[Key, Phase]:
    """Every marker in ``marker_dir``: its conversation's key → its phase."""
    return {
        (s.marker.conversation.chat, s.marker.conversation.thread, s.marker.conversation.scope): (
            s.marker.phase
        )
        for s in DirectoryStore(marker_dir).load()
    }


class HeldStore(DirectoryStore):
    """A real directory store whose commits of new markers wait until ``release`` is set.

    ``entered`` is set once such a commit is held (the scenario: a slow disk).
    ``note``, when given, is called as each held commit is written and its
    result kept in ``noted`` (say, what the platform had acknowledged by then).
    """

    def __init__(self, path: Path, note: Callable[[], Any] | None = None) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.note = note
        self.noted: list[Any] = []

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        if puts:
            self.entered.set()
            self.release.wait(5)
            if self.note is not None:
                self.noted.append(self.note())
        super().commit(puts, removes, draining=draining)


class Gate:
    """A handler (any arguments) that a test holds in flight and then releases."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.count = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1
        self.entered.set()
        await self.release.wait()


async def held_then_released(gate: Gate, marker_dir: Path, key: Key) -> None:
    """While ``gate`` holds the run, its conversation ``key`` (only) is marked in flight;
    released, the run ends and its marker goes."""
    await gate.entered.wait()
    await eventually_async(lambda: stored(marker_dir) == {key: Phase.IN_FLIGHT})
    gate.release.set()
    await eventually_async(lambda: stored(marker_dir) == {})


def fdatasync_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads that call ``os.fdatasync`` from now on, in call order (the calls still sync)."""
    threads: list[int] = []
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        threads.append(threading.get_ident())
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    return threads


async def confirmed_once_durable(api: Any, store: HeldStore, handled: asyncio.Event) -> None:
    """A message polled while ``store`` holds its marker's batch: confirmed only after it.

    ``api`` is the Telegram stand-in; the bot is polling it, and its handler sets
    ``handled`` and stays in flight (a run that ended before its batch needs no
    marker). The batch stays unwritten a while, as under a slow disk: the update
    must stay unconfirmed (Telegram would redeliver it) until the batch is written.
    """
    update_id = api.inject_message(CHAT, "hi")
    assert await asyncio.to_thread(store.entered.wait, 10)  # the marker's batch is held
    await asyncio.wait_for(handled.wait(), 10)  # the handler ran meanwhile
    await asyncio.sleep(HOLD)  # the bot polls again within a millisecond: it would show
    assert api.confirmed_offset <= update_id
    store.release.set()
    assert await api.wait_until_confirmed_async(update_id) > update_id
    assert store.noted[0] <= update_id  # what the stand-in had confirmed as the batch went
