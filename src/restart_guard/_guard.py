"""The guard: which conversations are in flight, and their markers' lifecycle.

Life of a marker::

    begin()  ── write-ahead (group commit, background) ──►  in_flight
    stop signal: pre_mark() ── one durable batch, before the drain ──►  draining
    end() of the last run  ── removal (group commit) ──►  gone
    drain timed out: seal() ── no removal is ever written again by this process
    next start: claim() ──►  resuming ── notice / on_resume / replay ──► gone

The guard knows nothing about any framework, nor about the order of a
shutdown: :class:`restart_guard._lifecycle.Lifecycle` calls ``begin``/``end``
around every handler run and ``pre_mark``/``wait_idle``/``seal``/``close``
around the framework's own drain. Everything here is thread-safe because Slack's
sync listeners run in a thread pool.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ._conversation import Conversation
from ._marker import Marker, Origin, Phase, bounded_origins
from ._settings import Settings
from ._writer import GroupCommitWriter
from .metrics import make_metrics
from .stores.base import Store

__all__ = ["Guard", "Run"]

log = logging.getLogger("restart_guard")


class _GuardState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"  # pre-marked; the framework is draining
    SEALED = "sealed"  # the drain timed out: what is still marked stays marked
    CLOSED = "closed"


class _Entry:
    """One conversation in flight in this process (in memory only)."""

    __slots__ = (
        "attempts",
        "conversation",
        "cut",
        "noticed",
        "origins",
        "payloads",
        "phase",
        "question",
        "runs",
        "started_at",
    )

    def __init__(self, conversation: Conversation, started_at: float, attempts: int) -> None:
        self.conversation = conversation
        self.started_at = started_at
        self.attempts = attempts
        self.runs = 0
        self.phase = Phase.IN_FLIGHT
        self.payloads: dict[int, Any] | None = None
        # Per run: where its turn came from (a resumption holds the claimed marker's).
        self.origins: dict[int, tuple[Origin, ...]] | None = None
        self.cut = False  # a run was cut off by shutdown: keep the marker
        self.noticed = False  # the resume notice went out: never post it again
        self.question: str | None = None  # the notice asking Continue / Dismiss (phase ASKED)


class Run:
    """A handle on one handler run (or one resumption) of a conversation."""

    __slots__ = ("entry", "guard", "is_handler", "token")

    def __init__(self, guard: Guard, entry: _Entry, token: int, is_handler: bool) -> None:
        #: The guard that began it (a bot started again has a new one).
        self.guard = guard
        self.entry = entry
        self.token = token
        self.is_handler = is_handler

    @property
    def conversation(self) -> Conversation:
        """The conversation this run belongs to."""
        return self.entry.conversation


class Guard:
    """Tracks in-flight conversations of one bot and keeps their markers durable.

    Adapters create one per protected bot object. ``start()`` opens the
    store and claims the markers a dead process left behind; those come
    back *held* (see :meth:`hold`) for the resume step.
    """

    def __init__(self, platform: str, store: Store, settings: Settings) -> None:
        self.platform = platform
        self.store = store
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._handler_runs = 0
        self._tokens = itertools.count(1)
        self._state = _GuardState.NEW
        self._idle = threading.Condition(self._lock)
        self._stop_waiting = False
        self._async_idle: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        #: Counters for ``protect(metrics=...)``; None when not asked for.
        self.metrics = make_metrics(settings.metrics, self)
        self.writer = GroupCommitWriter(
            store, self._resolve, self.metrics.committed if self.metrics is not None else None
        )

    def __repr__(self) -> str:
        return f"<Guard {self.platform} {self._state.value} in_flight={self.in_flight}>"

    # ---------------------------------------------------------------- start-up
    def start(self) -> list[Marker]:
        """Open the store, start the writer, claim markers of dead processes.

        Never raises: a store that cannot be opened is logged and retried by
        the writer; the bot runs unprotected until it recovers.
        """
        with self._lock:
            if self._state is not _GuardState.NEW:
                return []
            self._state = _GuardState.RUNNING
        claimed: list[Marker] = []
        try:
            self.store.open(self.owner)
            claimed = self.store.claim()
        except Exception as exc:
            log.error(
                "restart-guard: marker store %s unavailable at start-up: %s — the bot "
                "runs; markers are kept in memory and written when the store recovers; "
                "markers already on disk will be resumed on a later start",
                self.store,
                exc,
            )
        self.writer.adopt(claimed)
        self.writer.start()
        if claimed:
            log.info("restart-guard: claimed %d interrupted conversation(s)", len(claimed))
        return claimed

    def claim(self) -> list[Marker]:
        """Claim markers whose owner has gone since start-up; never raises (logs instead)."""
        with self._lock:
            if self._state is not _GuardState.RUNNING:
                return []
        try:
            with self.writer.exclusive():  # never beside a batch: stores are single-threaded
                claimed = self.store.claim()
        except Exception as exc:
            log.error("restart-guard: re-claiming from %s failed: %s", self.store, exc)
            return []
        self.writer.adopt(claimed)
        return claimed

    # ---------------------------------------------------------------- tracking
    def begin(
        self, conversation: Conversation, payload: Any = None, origin: Origin | None = None
    ) -> Run:
        """A handler run for ``conversation`` starts. Never blocks on I/O.

        ``payload`` is the JSON-able update to re-run on replay; it is kept
        only when replay is on. ``origin`` holds the platform ids of the
        message the run answers (what the notice replies to and mentions).
        """
        key = conversation.key
        with self._lock:
            entry = self._entries.get(key)
            dirty = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry(conversation, time.time(), 0)
                if self._state is _GuardState.STOPPING:
                    entry.phase = Phase.DRAINING
            entry.runs += 1
            self._handler_runs += 1
            token = next(self._tokens)
            if payload is not None and self.settings.replay:
                if entry.payloads is None:
                    entry.payloads = {}
                entry.payloads[token] = payload
                dirty = True
            if origin is not None:
                if entry.origins is None:
                    entry.origins = {}
                entry.origins[token] = (origin,)
                dirty = True
        if dirty:
            self.writer.mark(key)
        return Run(self, entry, token, True)

    def forbid_replay(self, run: Run) -> bool:
        """The turn of ``run`` ran a ``no_replay`` handler; True if that changed its marker.

        Call :meth:`flush` (or :meth:`flush_async`) before the handler goes
        on when replay is on, so that a kill during it cannot replay it.
        """
        entry = run.entry
        with self._lock:
            if entry.origins is None:
                entry.origins = {}
            before = entry.origins.get(run.token, (Origin(),))
            if not any(origin.replayable for origin in before):
                return False
            entry.origins[run.token] = tuple(replace(o, replayable=False) for o in before)
            if self._entries.get(entry.conversation.key) is not entry:
                return True  # ended or moved meanwhile: nothing to write
        self.writer.mark(entry.conversation.key)
        return True

    def hold(self, marker: Marker) -> Run:
        """Hold a claimed marker's conversation while it is being resumed.

        A handler run of the same conversation (the replayed update, or the
        user writing again) joins the same entry, so the marker stays until
        both have finished and keeps the attempt count.
        """
        key = marker.key
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(
                    marker.conversation, marker.started_at, marker.attempts
                )
                entry.phase = Phase.RESUMING
            if marker.question is not None:  # still waiting for the asker's answer
                entry.phase = Phase.ASKED
                entry.question = marker.question
            entry.attempts = max(entry.attempts, marker.attempts)
            entry.noticed = entry.noticed or marker.noticed
            entry.runs += 1
            token = next(self._tokens)
            if marker.payload:
                if entry.payloads is None:
                    entry.payloads = {}
                entry.payloads[token] = marker.payload
            if marker.origins:
                if entry.origins is None:
                    entry.origins = {}
                entry.origins[token] = marker.origins
        return Run(self, entry, token, False)

    def end(self, run: Run, *, completed: bool = True) -> None:
        """A run finished (``completed``) or was cut off by shutdown (``completed=False``).

        The marker is removed when the conversation's last run completes —
        unless the drain timed out (sealed) or a run was cut off, in which
        case it stays for the next start.
        """
        entry = run.entry
        key = entry.conversation.key
        dirty = False
        with self._lock:
            entry.runs -= 1
            if run.is_handler:
                self._handler_runs -= 1
                if self._handler_runs == 0:
                    self._notify_idle()
            if not completed:
                # Cut off: its update and origin stay, for the replay or the question
                # of the next start.
                entry.cut = True
            elif entry.payloads is not None and entry.payloads.pop(run.token, None) is not None:
                dirty = True
            if completed and entry.origins and entry.origins.pop(run.token, None) is not None:
                dirty = True
            if entry.runs == 0 and not entry.cut and self._state is not _GuardState.SEALED:
                if self._entries.get(key) is entry:
                    del self._entries[key]
                dirty = True
        if dirty and self._state is not _GuardState.SEALED:
            self.writer.mark(key)

    def count_attempt(self, run: Run) -> int:
        """Record that a resumed turn starts now; returns the new attempt count.

        Call :meth:`flush` (or :meth:`flush_async`) before running the turn
        so that a crash during it is counted.
        """
        with self._lock:
            run.entry.attempts += 1
            attempts = run.entry.attempts
        self.writer.mark(run.entry.conversation.key)
        return attempts

    def note_noticed(self, run: Run) -> None:
        """Record that the resume notice of ``run``'s conversation was posted.

        Call :meth:`flush_async` right after, before the next notice: a
        marker already noticed is never noticed again at a later start.
        """
        with self._lock:
            run.entry.noticed = True
        self.writer.mark(run.entry.conversation.key)

    def note_asked(self, run: Run, question: str) -> None:
        """The notice of ``run``'s conversation asks Continue / Dismiss: phase ``ASKED``.

        ``question`` is the platform's id of that notice, for a later edit.
        Call :meth:`flush_async` right after: the question then outlives
        this process.
        """
        with self._lock:
            entry = run.entry
            entry.noticed = True
            entry.question = question
            entry.phase = Phase.ASKED
        self.writer.mark(entry.conversation.key)

    def note_answered(self, run: Run) -> None:
        """The question of ``run``'s conversation was answered: it is resumed like any other."""
        with self._lock:
            entry = run.entry
            entry.question = None
            if entry.phase is Phase.ASKED:
                entry.phase = Phase.RESUMING
        self.writer.mark(entry.conversation.key)

    def move(self, run: Run, conversation: Conversation) -> None:
        """The conversation of a held ``run`` now lives elsewhere (a group became a supergroup).

        The marker is rewritten under the new conversation and the old one
        removed, in one batch; :meth:`flush_async` makes it durable.
        """
        entry = run.entry
        old = entry.conversation.key
        with self._lock:
            if self._entries.get(old) is entry:
                del self._entries[old]
            entry.conversation = conversation
            # A conversation already in flight in the new chat keeps its own entry;
            # this one then lives on in memory only, until its run ends.
            self._entries.setdefault(conversation.key, entry)
        self.writer.mark(old)
        self.writer.mark(conversation.key)

    @property
    def in_flight(self) -> int:
        """Handler runs in progress (resumptions not counted)."""
        with self._lock:
            return self._handler_runs

    def markers(self) -> list[Marker]:
        """The markers this process holds right now (for tests and status)."""
        with self._lock:
            return [self._to_marker(e) for e in self._entries.values()]

    # ---------------------------------------------------------------- shutdown
    def pre_mark(self) -> bool:
        """Durably mark every conversation in flight, in one batch. Call before the drain.

        Blocks the caller for one fsync; returns False (after logging) if the
        store failed.
        """
        with self._lock:
            if self._state in (_GuardState.STOPPING, _GuardState.SEALED, _GuardState.CLOSED):
                return True
            self._state = _GuardState.STOPPING
            for entry in self._entries.values():
                if entry.phase is Phase.IN_FLIGHT:
                    entry.phase = Phase.DRAINING
            marked = len(self._entries)
            running = self._handler_runs
        started = time.perf_counter()
        # Markers already written need only the one "draining" record; the ones
        # not yet written (still dirty) go in the same batch, with that phase.
        ok = self.writer.flush(draining=True)
        log.info(
            "restart-guard: stop requested; %d conversation(s) (%d handler run(s)) marked "
            "before the drain in %.1f ms%s",
            marked,
            running,
            (time.perf_counter() - started) * 1000,
            "" if ok else " — WRITE FAILED, see the error above",
        )
        return ok

    @property
    def stopping(self) -> bool:
        """True once a stop was requested (pre-marked, sealed or closed)."""
        return self._state in (_GuardState.STOPPING, _GuardState.SEALED, _GuardState.CLOSED)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no handler runs; False if ``timeout`` seconds passed first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._handler_runs == 0:
                return True
            self._async_idle.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                if (loop, future) in self._async_idle:
                    self._async_idle.remove((loop, future))

    def wait_idle_blocking(self, timeout: float | None) -> bool:
        """Thread version of :meth:`wait_idle`; :meth:`stop_waiting` ends it early (False)."""
        with self._idle:
            self._idle.wait_for(lambda: self._handler_runs == 0 or self._stop_waiting, timeout)
            return self._handler_runs == 0

    def stop_waiting(self) -> None:
        """End :meth:`wait_idle_blocking` now (a second stop signal: stop now)."""
        with self._idle:
            self._stop_waiting = True
            self._idle.notify_all()

    def unfinished(self) -> list[str]:
        """The conversations with a run still going, for a log line."""
        with self._lock:
            return [str(e.conversation) for e in self._entries.values() if e.runs]

    def seal(self, *, report: bool = True) -> None:
        """The drain is over unfinished: everything still marked stays marked for the next start.

        ``report``: log the timed-out drain (one WARNING); False when the
        caller said why already (a second signal cut the drain short).
        """
        with self._lock:
            if self._state is _GuardState.CLOSED:
                return
            self._state = _GuardState.SEALED
        if not report:
            return
        left = self.unfinished()
        log.warning(
            "restart-guard: drain timed out after %.1fs; %d conversation(s) stay marked "
            "and will be resumed on the next start%s",
            self.settings.drain_timeout,
            len(left),
            listed(left),
        )

    def close(self) -> None:
        """Commit what is pending and release the store. Idempotent."""
        with self._lock:
            if self._state in (_GuardState.CLOSED, _GuardState.NEW):
                self._state = _GuardState.CLOSED
                return
            self._state = _GuardState.CLOSED
            left = len(self._entries)
        self.writer.close()
        try:
            self.store.close()
        except Exception as exc:
            log.error("restart-guard: closing the marker store failed: %s", exc)
        log.info("restart-guard: closed; %d conversation(s) left marked", left)

    # ---------------------------------------------------------------- internals
    def flush(self) -> bool:
        """Commit pending marker changes now, on this thread."""
        return self.writer.flush()

    async def flush_async(self) -> bool:
        """Commit pending marker changes in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, self.writer.flush)

    def _notify_idle(self) -> None:
        # Called with the lock held.
        self._idle.notify_all()
        for loop, future in self._async_idle:
            loop.call_soon_threadsafe(_resolve_future, future)

    def _to_marker(self, entry: _Entry) -> Marker:
        payload = None
        if entry.payloads and len(entry.payloads) == 1:
            # One run, nothing to deduplicate: skip the JSON canonicalisation below.
            [only] = entry.payloads.values()
            payload = list(only) if isinstance(only, list) else [only]
        elif entry.payloads:
            payload = []
            seen: set[str] = set()
            for value in entry.payloads.values():
                # A resumption holds the stored list; a handler run holds one update.
                # The replayed update joins its own resumption: store it once.
                for update in value if isinstance(value, list) else [value]:
                    canonical = json.dumps(update, sort_keys=True, default=str)
                    if canonical not in seen:
                        seen.add(canonical)
                        payload.append(update)
        origins: tuple[Origin, ...] = ()
        if entry.origins:
            origins = bounded_origins([o for run in entry.origins.values() for o in run])
        return Marker(
            conversation=entry.conversation,
            started_at=entry.started_at,
            phase=entry.phase,
            attempts=entry.attempts,
            owner=self.owner,
            payload=payload,
            noticed=entry.noticed,
            origins=origins,
            question=entry.question,
        )

    def _resolve(self, keys: Iterable[str]) -> tuple[list[Marker], list[str]]:
        puts: list[Marker] = []
        removes: list[str] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    removes.append(key)
                else:
                    puts.append(self._to_marker(entry))
        return puts, removes


def _resolve_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def listed(conversations: list[str]) -> str:
    """``": a, b, c"`` (at most ten), or nothing for none: the tail of a log line."""
    if not conversations:
        return ""
    return ": " + ", ".join(conversations[:10]) + (" …" if len(conversations) > 10 else "")
