"""Shared helpers of the core tests: real directories, real threads, no mocks.

The only stand-ins are for what is outside the core: a store wrapper that
fails like a full disk does (``FlakyStore``) and a platform (``FakeLink``).
Waiting is always for an observable condition with a deadline.
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from restart_guard import (
    Conversation,
    DirectoryStore,
    Guard,
    Marker,
    Notice,
    Phase,
    Settings,
    Store,
    StoredMarker,
)
from restart_guard._ask import Press

T = TypeVar("T")

DEADLINE = 2.0


def conv(chat: int | str = 42, thread: str | None = None, scope: str | None = None) -> Conversation:
    return Conversation("telegram", str(chat), thread, scope)


def marker(
    chat: int | str = 42,
    *,
    thread: str | None = None,
    attempts: int = 0,
    age: float = 5.0,
    payload: list[Any] | None = None,
    phase: Phase = Phase.IN_FLIGHT,
    owner: str = "dead-process",
) -> Marker:
    now = time.time()
    return Marker(
        conversation=conv(chat, thread),
        started_at=now - age,
        phase=phase,
        attempts=attempts,
        owner=owner,
        updated_at=now - age,
        payload=payload,
    )


def leave_behind(store: Store, owner: str, markers: Sequence[Marker]) -> None:
    """Write ``markers`` as a process ``owner`` that then died would: committed, never removed."""
    store.open(owner)
    store.commit(markers, [])
    store.close()  # the lock is released exactly as the kernel does on SIGKILL


def leave_markers(path: Path, markers: Sequence[Marker]) -> None:
    """:func:`leave_behind` in the marker directory ``path``, by "dead-process"."""
    leave_behind(DirectoryStore(path), "dead-process", markers)


def claim_fresh(path: Path) -> dict[str, Marker]:
    """Claim with a new store, as the next process would; returns the claimed markers."""
    s = DirectoryStore(path)
    s.open("next")
    try:
        return {m.key: m for m in s.claim()}
    finally:
        s.close()


def stored(store: Store | FlakyStore) -> dict[str, Marker]:
    """Every marker in the store's directory, by key."""
    return {s.marker.key: s.marker for s in store.load()}


def entries(path: Path) -> list[str]:
    """Names in a directory (a sync helper, so async tests do not touch the disk inline)."""
    return sorted(p.name for p in path.iterdir())


def journals(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("journal-"))


class FlakyStore:
    """Wraps a real store; ``fail_commits`` next commits raise like a full disk.

    ``gate`` (when set) makes ``commit`` wait until it is opened, so a test
    can hold the writer inside a batch.
    """

    def __init__(self, inner: DirectoryStore, fail_commits: int = 0) -> None:
        self.inner = inner
        self.fail_commits = fail_commits
        self.commits: list[tuple[list[str], list[str]]] = []
        self.drains: list[bool] = []  # the ``draining`` flag of each commit
        self.failures = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __repr__(self) -> str:
        return f"FlakyStore({self.inner!r})"

    def open(self, owner: str) -> None:
        self.inner.open(owner)

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(DEADLINE)
        if self.fail_commits > 0:
            self.fail_commits -= 1
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.inner.commit(puts, removes, draining=draining)
        self.commits.append(([m.key for m in puts], list(removes)))
        self.drains.append(draining)

    def claim(self) -> list[Marker]:
        return self.inner.claim()

    def load(self) -> list[StoredMarker]:
        return self.inner.load()

    def close(self) -> None:
        self.inner.close()


class FakeLink:
    """The one fake platform of the core tests: records notices and replays, fails on demand.

    What an adapter's ``PlatformLink`` is to the resume step; the store, the
    guard and the resumer around it are real. Tests with replay off check
    that ``replayed`` stays empty.

    ``failures`` are raised by the next ``send_notice`` calls, in order;
    ``refuse`` maps a chat to the error every call to it raises.
    ``nonces`` records the nonce of every call (a retried notice keeps its nonce).
    ``on_send`` runs at the start of every call (to look at the store mid-retry);
    ``gate`` (when set) makes calls wait until it is set.
    """

    def __init__(self, notices_per_second: float = 1000.0) -> None:
        self.notices_per_second = notices_per_second
        self.calls: list[Conversation] = []
        self.sent: list[tuple[Conversation, str]] = []
        self.replayed: list[Marker] = []
        self.failures: list[BaseException] = []
        self.refuse: dict[str, BaseException] = {}
        self.nonces: list[str] = []
        self.on_send: Callable[[Conversation], None] | None = None
        self.on_replay: Callable[[Marker], None] | None = None
        self.gate: asyncio.Event | None = None
        self.sent_at: list[float] = []
        self.questions: list[tuple[Conversation, str, str]] = []
        self.closed: list[tuple[str, str, Press | None]] = []
        self.refused: list[tuple[Press, str]] = []
        self.notices: list[Notice] = []  # every notice posted (not refused), whole

    async def send_notice(self, notice: Notice) -> None:
        conversation, text = notice.conversation, notice.text
        self.calls.append(conversation)
        self.nonces.append(notice.nonce)
        if self.on_send is not None:
            self.on_send(conversation)
        if self.gate is not None:
            await self.gate.wait()
        if conversation.chat in self.refuse:
            raise self.refuse[conversation.chat]
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((conversation, text))
        self.notices.append(notice)
        self.sent_at.append(time.monotonic())

    @property
    def conversations(self) -> list[Conversation]:
        """Where the notices went, in order."""
        return [conversation for conversation, _ in self.sent]

    async def replay(self, marker: Marker) -> None:
        self.replayed.append(marker)
        if self.on_replay is not None:
            self.on_replay(marker)

    # replay="ask": questions get message ids "q1", "q2" ...; edits and private answers recorded.
    async def send_question(self, notice: Notice, token: str) -> str:
        await self.send_notice(notice)
        self.questions.append((notice.conversation, notice.text, token))
        return f"q{len(self.questions)}"

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        self.closed.append((question, text, press))

    async def refuse_press(self, press: Press, text: str) -> None:
        self.refused.append((press, text))


@pytest.fixture
def make_guard(marker_dir: Path) -> Iterator[Callable[..., Guard]]:
    """Build guards on a DirectoryStore in ``marker_dir``; closed at the end of the test."""
    made: list[Guard] = []

    def make(settings: Settings | None = None, store: Any = None, start: bool = True) -> Guard:
        guard = Guard("telegram", store or DirectoryStore(marker_dir), settings or Settings())
        made.append(guard)
        if start:
            guard.start()
        return guard

    yield make
    for guard in made:
        guard.close()
