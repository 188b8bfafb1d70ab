"""Group commit: turn marker changes into durable batches off the handler's path.

Handlers only note that a conversation's key is *dirty*. A background thread
wakes, asks the guard for the current state of every dirty key (a marker to
write, or nothing: remove it) and commits them to the store as one batch —
one fsync however many handlers started meanwhile. A conversation that
starts and finishes between two batches costs no disk I/O at all.
"""

from __future__ import annotations

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

#: Seconds a batch waits for more changes before it is committed. Far under the
#: 50 ms write-ahead bound; pre_mark() and close() never wait for it.
LINGER = 0.002
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
        self._cond = threading.Condition(threading.Lock())
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
        with self._cond:
            self._dirty.add(key)
            self._cond.notify()

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
        return self._commit_dirty()

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
            else:
                # Group commit: gather the starts and ends of the next few milliseconds
                # into this batch; a handler that ends meanwhile costs no write at all.
                time.sleep(LINGER)
            ok = self._commit_dirty()
            delay = 0.0 if ok else min(max(delay * 2, _BACKOFF_FIRST), _BACKOFF_MAX)

    def _commit_dirty(self, draining: bool = False) -> bool:
        with self._io:
            with self._cond:
                keys, self._dirty = self._dirty, set()
                draining = draining or self._drain_pending
                self._drain_pending = False
            if not keys and not draining:
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
                with self._cond:
                    self._dirty |= keys
                    self._drain_pending = self._drain_pending or draining
                    # A failed flush() ran on a caller's thread: hand the retry to ours.
                    self._cond.notify()
                self._log_failure(exc, len(puts), len(removes))
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
                self._failing_since = None
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
