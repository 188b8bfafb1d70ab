"""Group commit: turn marker changes into durable batches off the handler's path.

Handlers only note that a conversation's key is *dirty*. A background thread
wakes, asks the guard for the current state of every dirty key (a marker to
write, or nothing: remove it) and commits them to the store as one batch —
one fsync however many handlers started meanwhile. A conversation that
starts and finishes between two batches costs no disk I/O at all.

An idle writer commits at once; it lingers (:data:`LINGER`) to gather a
batch only when the bot is busy — a batch was committed moments ago, or
marks arrive back to back — so a lone update's marker is on disk one
fsync after its handler began.

Every :meth:`~GroupCommitWriter.mark` takes a sequence number, and every
batch records the last one it covered: :meth:`~GroupCommitWriter.durable`
(and :meth:`~GroupCommitWriter.durable_blocking`) wait until every mark
made so far is in a committed batch. Adapters hold a platform's
acknowledgement on it, so that an update is either redelivered or marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable

from ._conversation import Conversation
from ._marker import Marker
from .stores.base import Store

__all__ = ["GroupCommitWriter"]

log = logging.getLogger("restart_guard")

#: ``resolve(keys)`` → (markers to write, keys whose marker must go).
Resolver = Callable[[Iterable[str]], tuple[list[Marker], list[str]]]
#: ``on_commit(marked, cleared)``: markers created in / removed from the store by a batch.
OnCommit = Callable[[int, int], None]

#: Seconds a batch waits for more changes before it is committed, when the
#: bot is busy (see :data:`BUSY_WINDOW`). pre_mark() and close() never wait for it.
LINGER = 0.002
#: The bot counts as busy — a batch lingers to gather more — when the last batch
#: was committed, or the previous mark was made, less than this many seconds ago.
#: An idle writer commits a lone mark at once: that is the kill window on
#: platforms without an acknowledgement (Discord).
BUSY_WINDOW = 0.005
#: How long an acknowledgement waits for its marks by default (:meth:`durable`):
#: far over one fsync, far under the platforms' patience (Slack allows 3 s).
ACK_WAIT = 2.0
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 5.0
# One error line per this many seconds while the store keeps failing.
_ERROR_LOG_INTERVAL = 30.0


class GroupCommitWriter:
    """A daemon thread that commits dirty keys to a store in batches."""

    def __init__(self, store: Store, resolve: Resolver, on_commit: OnCommit | None = None) -> None:
        self._store = store
        self._resolve = resolve
        self._on_commit = on_commit
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer thread waits for marks on it
        self._settled = threading.Condition(lock)  # durable_blocking() waits for batches on it
        # Sequence numbers: every mark() takes the next one; a batch, once committed,
        # covers every mark made before it took its keys.
        self._marked = 0
        self._committed = 0
        self._last_mark = -math.inf
        self._burst = False  # the last two marks came within BUSY_WINDOW of each other
        self._last_batch = -math.inf  # monotonic() when the last batch ended
        # durable() callers: (the mark they wait for, their loop, their future).
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._unprotected_acks = False  # logged once per episode of a failing store
        self._io = threading.Lock()  # one commit at a time: the background's or a flush's
        self._dirty: set[str] = set()
        # Keys the store holds a marker for, and where (for the log line when one goes).
        self._durable: dict[str, Conversation] = {}
        self._stopping = False
        self._drain_pending = False  # a "draining" record still owed to the store
        self._failing_since: float | None = None
        self._last_error_log = -math.inf  # monotonic() may be small soon after boot
        self._thread: threading.Thread | None = None
        self.batches = 0  # committed batches, for tests and the benchmark

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._run, name="restart-guard-writer", daemon=True)
        self._thread.start()

    def adopt(self, markers: Iterable[Marker]) -> None:
        """Note markers the store already holds (claimed at start-up) so removals reach it."""
        with self._io:
            self._durable.update((m.key, m.conversation) for m in markers)

    def exclusive(self) -> threading.Lock:
        """The commit lock: hold it to call the store while no batch is being written.

        A store is used by one thread at a time; the background re-claim takes this.
        """
        return self._io

    def mark(self, key: str) -> None:
        """Note that ``key`` changed. Cheap; never touches the disk."""
        now = time.monotonic()
        with self._cond:
            self._dirty.add(key)
            self._marked += 1
            self._burst = now - self._last_mark < BUSY_WINDOW
            self._last_mark = now
            self._cond.notify()

    # ------------------------------------------------------------ durability
    async def durable(self, timeout: float = ACK_WAIT) -> bool:
        """Wait until every mark made so far is committed; True if it is.

        No I/O on the caller's loop: the writer thread resolves the wait when
        the batch holding those marks is committed. Returns False at once
        when the store is failing (the marks are kept in memory and retried,
        see the store's error line), and after ``timeout`` seconds when the
        store hangs: an acknowledgement held back for ever would have the
        platform redeliver, or give up on, every update. Logged once per
        episode.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            target = self._marked
            if self._committed >= target:
                return True
            if self._failing_since is not None or self._stopping:
                return self._unprotected("the marker store is failing")
            future: asyncio.Future[bool] = loop.create_future()
            entry = (target, loop, future)
            self._waiters.append(entry)
        try:
            if await asyncio.wait_for(asyncio.shield(future), timeout):
                return True
            return self._unprotected("the marker store is failing")
        except asyncio.TimeoutError:
            return self._unprotected(f"the marker store took over {timeout:g}s")
        finally:
            with self._cond:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def durable_blocking(self, timeout: float = ACK_WAIT) -> bool:
        """:meth:`durable` for a caller on a thread (never the writer's own)."""
        with self._settled:
            target = self._marked
            if self._committed >= target:
                return True
            if self._failing_since is None and not self._stopping:
                self._settled.wait_for(
                    lambda: self._committed >= target or self._failing_since is not None,
                    timeout,
                )
            if self._committed >= target:
                return True
            failing = self._failing_since is not None or self._stopping
        why = "the marker store is failing" if failing else f"over {timeout:g}s"
        return self._unprotected(why)

    def _unprotected(self, why: str) -> bool:
        if not self._unprotected_acks:
            self._unprotected_acks = True
            log.warning(
                "restart-guard: acknowledging updates to the platform before their markers "
                "are durable (%s): the platform will not redeliver them, so a crash now "
                "would lose them; logged once until the store recovers",
                why,
            )
        return False

    def _settle(self, upto: int | None) -> None:
        """A batch covering marks up to ``upto`` committed (None: it failed). Call with _cond."""
        if upto is not None:
            self._committed = max(self._committed, upto)
        self._settled.notify_all()
        keep = []
        for waiter in self._waiters:
            target, loop, future = waiter
            if upto is not None and target > self._committed:
                keep.append(waiter)
                continue
            # A failed batch releases every waiter: durable() returns False at once.
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_future, future, upto is not None)
        self._waiters = keep

    def flush(self, extra: Iterable[str] = (), *, draining: bool = False) -> bool:
        """Commit every dirty key (and ``extra``) now, on the caller's thread.

        ``draining`` records in the same batch that every stored marker of
        this process is now draining (see :meth:`Store.commit`). Returns
        False (after logging) if the store failed; the keys stay dirty and
        the background thread keeps retrying.
        """
        with self._cond:
            self._dirty.update(extra)
        return self._commit_dirty(draining=draining)

    def close(self) -> bool:
        """Stop the thread and commit what is left. Returns False if that failed."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        ok = self._commit_dirty()
        with self._cond:
            self._settle(None)  # whatever could not be written is not waited for any more
        return ok

    @property
    def pending(self) -> int:
        """Dirty keys not yet committed."""
        with self._cond:
            return len(self._dirty)

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._cond:
                while not (self._dirty or self._drain_pending or self._stopping):
                    self._cond.wait()
                if self._stopping:
                    return
            if delay:
                # The store is failing: wait before retrying, but leave early on close().
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=delay)
            elif self._busy():
                # Group commit under load: gather the starts and ends of the next few
                # milliseconds into this batch; a handler that ends meanwhile costs no
                # write at all. An idle bot's lone mark goes to disk at once.
                time.sleep(LINGER)
            ok = self._commit_dirty()
            delay = 0.0 if ok else min(max(delay * 2, _BACKOFF_FIRST), _BACKOFF_MAX)

    def _busy(self) -> bool:
        with self._cond:
            return self._burst or time.monotonic() - self._last_batch < BUSY_WINDOW

    def _commit_dirty(self, draining: bool = False) -> bool:
        with self._io:
            with self._cond:
                keys, self._dirty = self._dirty, set()
                upto = self._marked  # every mark made so far has its key in ``keys`` or done
                draining = draining or self._drain_pending
                self._drain_pending = False
            if not keys and not draining:
                with self._cond:
                    self._settle(upto)
                return True
            puts, removes = self._resolve(keys)
            # A key never written needs no removal: its put was coalesced away.
            removes = [k for k in removes if k in self._durable]
            try:
                if draining:
                    self._store.commit(puts, removes, draining=True)
                else:
                    self._store.commit(puts, removes)
            except Exception as exc:  # the store must never take the bot down
                self._log_failure(exc, len(puts), len(removes))
                with self._cond:
                    self._dirty |= keys
                    self._drain_pending = self._drain_pending or draining
                    self._settle(None)
                    # A failed flush() ran on a caller's thread: hand the retry to ours.
                    self._cond.notify()
                return False
            marked = sum(1 for m in puts if m.key not in self._durable)
            if log.isEnabledFor(logging.DEBUG):
                self._log_batch(puts, removes, marked)
            self._durable.update((m.key, m.conversation) for m in puts)
            for key in removes:
                del self._durable[key]
            self.batches += 1
            if self._failing_since is not None:
                log.warning(
                    "restart-guard: marker store %s writable again after %.1fs",
                    self._store,
                    time.monotonic() - self._failing_since,
                )
            with self._cond:
                self._failing_since = None
                self._unprotected_acks = False
                self._last_batch = time.monotonic()
                self._settle(upto)
        # Outside the I/O lock: a slow metrics hook must not hold up the next batch.
        if self._on_commit is not None and (marked or removes):
            self._on_commit(marked, len(removes))
        return True

    def _log_batch(self, puts: list[Marker], removes: list[str], marked: int) -> None:
        # DEBUG only, and here in the writer thread rather than in begin()/end():
        # one line per conversation would be too much at INFO for a busy bot.
        counts = f"batch of {marked} marked, {len(puts) - marked} updated, {len(removes)} cleared"
        for m in puts:
            log.debug(
                "restart-guard: %s %s (phase %s, attempts %d; %s)",
                "updated" if m.key in self._durable else "marked",
                m.conversation,
                m.phase.value,
                m.attempts,
                counts,
            )
        for key in removes:
            log.debug(
                "restart-guard: cleared %s: no longer in flight (%s)", self._durable[key], counts
            )

    def _log_failure(self, exc: Exception, puts: int, removes: int) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            with self._cond:
                self._failing_since = now
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            log.error(
                "restart-guard: could not write %d marker(s) / remove %d to %s: %s — "
                "kept in memory, retrying; a crash now would lose them",
                puts,
                removes,
                self._store,
                exc,
            )


def _settle_future(future: asyncio.Future[bool], durable: bool) -> None:
    if not future.done():
        future.set_result(durable)
