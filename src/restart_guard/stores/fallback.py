"""A shared store (Redis) backed by a local one (a directory) for when the shared one is down.

Usage::

    from restart_guard.stores.directory import DirectoryStore
    from restart_guard.stores.fallback import FallbackStore
    from restart_guard.stores.redis import RedisStore

    store = FallbackStore(
        RedisStore("redis://redis.internal:6379/0", namespace="mybot"),
        DirectoryStore("/var/lib/mybot/restart-guard"),
    )
    protect(store=store)

``protect(store="redis://...")`` and ``$RESTART_GUARD_URL`` build exactly
this, over the bot's marker directory (``marker_dir`` or the default one).

- An outage of the primary is reported with **one** error line, by
  whichever call meets it first (``open`` at start-up, a ``commit``, a
  ``claim``), and one warning line when the primary answers again; the
  failures in between are logged at DEBUG only.
- ``commit`` writes to the primary. If the primary raises (unreachable,
  timed out, read-only after a failover), the same batch goes to the
  fallback instead; the guard sees a successful commit, so the pre-drain
  write still lands before the drain.
- Once the primary answers again, the next commit also carries every marker
  the fallback holds for this process (so they become visible to the other
  instances again), the removals the primary missed, and then removes those
  markers from the fallback.
- ``claim`` claims from both and merges a conversation found in both
  (most attempts, then latest update). A primary that cannot be reached is
  skipped; its markers stay there until a later ``claim`` reaches it. The
  guard claims at start-up and again every 30 s while the bot runs
  (``$RESTART_GUARD_RECLAIM_INTERVAL``), so markers left in Redis by an
  outage at start-up are resumed within that long after Redis answers
  again, without a restart. A fallback that cannot be opened or read (a
  read-only disk) is reported once, with what to change, and skipped while
  the primary answers; ``claim`` raises only when both fail.
- ``open`` and ``load`` likewise go on with one store when the other fails;
  they raise only when both do. ``close`` closes both and raises the first
  error after trying both.

What the caller must do:

- Put the fallback directory on storage that outlives the process — a host
  path or a volume (not tmpfs). In a container without a volume the
  fallback still covers a process restart inside the same container, not
  a new container.
- Give every instance that may run on one host the same fallback directory:
  markers written there during an outage are resumed only by a process that
  starts on that host and reads that directory.
- Accept that a conversation whose marker changed during an outage (a
  replayed turn counting an attempt, say) can be resumed twice, once from
  each store, if the process dies before the primary comes back; it is
  never resumed zero times. Markers written ahead to the primary are not
  copied to the fallback by the pre-drain write, so the usual case — Redis
  dies, then the bot is stopped — resumes each conversation once.

Both stores must be opened with the same owner; this class does that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from .._marker import Marker, newer
from .base import OperatorStore, Store, StoredMarker, StoreError

__all__ = ["FallbackStore"]

log = logging.getLogger("restart_guard")


class FallbackStore:
    """Commit to ``primary``; when it fails, commit to ``fallback`` (see the module docstring)."""

    def __init__(self, primary: Store, fallback: Store) -> None:
        self.primary = primary
        self.fallback = fallback
        # Markers whose latest version only the fallback holds: copied to the primary
        # once it answers again.
        self._fallback_only: dict[str, Marker] = {}
        # Keys the fallback holds a stale copy of: removed from it after the primary
        # took a batch.
        self._fallback_stale: set[str] = set()
        # Keys removed while the primary was down: it may still hold them.
        self._primary_stale: set[str] = set()
        # A broken fallback (a read-only disk) stays broken: its outage never ends.
        self._primary_outage = _Outage()
        self._fallback_outage = _Outage()
        # The guard's re-claim runs in a worker thread while the writer thread commits:
        # both change the bookkeeping above, and the directory store is not thread-safe.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"FallbackStore({self.primary!r}, fallback={self.fallback!r})"

    def open(self, owner: str) -> None:
        """Open both stores as ``owner``; raise only if neither can be opened."""
        errors: list[Exception] = []
        try:
            self.primary.open(owner)
        except Exception as exc:
            self._primary_outage.failed(
                "restart-guard: marker store %s unavailable at start-up (%s). The bot runs: "
                "markers go to the local fallback %s until it answers, and the markers it "
                "holds are claimed in the background once it does",
                self.primary,
                exc,
                self.fallback,
            )
            errors.append(exc)
        try:
            self.fallback.open(owner)
        except Exception as exc:
            self._fallback_outage.failed(
                "restart-guard: cannot open the local fallback marker store %s (%s): markers "
                "are kept in %s only, and if it is unreachable at shutdown the pre-drain "
                "write fails. Point marker_dir or $RESTART_GUARD_DIR at a writable directory "
                "that outlives the process",
                self.fallback,
                exc,
                self.primary,
            )
            errors.append(exc)
        if len(errors) == 2:
            raise StoreError(
                f"neither marker store could be opened: {errors[0]}; {errors[1]}"
            ) from errors[0]

    def _primary_answered(self) -> None:
        if self._primary_outage.ended():
            log.warning("restart-guard: marker store %s answers again", self.primary)

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Commit to the primary, or to the fallback if the primary raises."""
        if not puts and not removes and not draining:
            return
        with self._lock:
            self._commit(puts, removes, draining)

    def _commit(self, puts: Sequence[Marker], removes: Sequence[str], draining: bool) -> None:
        put_keys = {m.key for m in puts}
        removed = set(removes)
        carried = [
            m for k, m in self._fallback_only.items() if k not in put_keys and k not in removed
        ]
        primary_removes = list(removes) + sorted(self._primary_stale - put_keys - removed)
        try:
            self.primary.commit([*puts, *carried], primary_removes, draining=draining)
        except Exception as exc:
            self._commit_fallback(puts, removes, exc, draining)
            return
        self._primary_answered()
        if carried:
            log.info(
                "restart-guard: %d marker(s) moved back to %s from the fallback %s",
                len(carried),
                self.primary,
                self.fallback,
            )
        self._primary_stale.clear()
        # Everything the fallback holds for us is now in the primary, newer, or removed.
        self._fallback_stale.update(self._fallback_only)
        self._fallback_only.clear()
        if self._fallback_stale:
            stale = sorted(self._fallback_stale)
            try:
                self.fallback.commit([], stale)
            except Exception as exc:
                # Harmless until it succeeds: a later claim merges both copies.
                log.warning(
                    "restart-guard: could not remove %d marker(s) from the fallback %s: %s",
                    len(stale),
                    self.fallback,
                    exc,
                )
            else:
                self._fallback_stale.difference_update(stale)

    def _commit_fallback(
        self, puts: Sequence[Marker], removes: Sequence[str], error: Exception, draining: bool
    ) -> None:
        try:
            self.fallback.commit(puts, removes, draining=draining)
        except Exception as fallback_error:
            raise StoreError(
                f"marker store {self.primary!r} failed ({error}) and so did the fallback "
                f"{self.fallback!r} ({fallback_error})"
            ) from fallback_error
        self._primary_outage.failed(
            "restart-guard: marker store %s failed (%s); wrote %d marker(s) / %d removal(s) "
            "to the local fallback %s instead, and will until it answers; a start on this "
            "host resumes them from there",
            self.primary,
            error,
            len(puts),
            len(removes),
            self.fallback,
        )
        for marker in puts:
            self._fallback_only[marker.key] = marker
        for key in removes:
            self._fallback_only.pop(key, None)
            self._primary_stale.add(key)

    def claim(self) -> list[Marker]:
        """Claim from both stores; a primary that fails is skipped (one error per outage)."""
        with self._lock:
            return self._claim()

    def _claim(self) -> list[Marker]:
        merged: dict[str, Marker] = {}
        primary_error: Exception | None = None
        try:
            for marker in self.primary.claim():
                merged[marker.key] = marker
        except Exception as exc:
            primary_error = exc
            self._primary_outage.failed(
                "restart-guard: cannot claim from marker store %s (%s); claimed from the "
                "local fallback %s only. The markers it holds are claimed by a later claim "
                "once it answers",
                self.primary,
                exc,
                self.fallback,
            )
        else:
            self._primary_answered()
        try:
            from_fallback = self.fallback.claim()
        except Exception as exc:
            if primary_error is not None:
                raise StoreError(
                    f"cannot claim from either marker store: {primary_error}; {exc}"
                ) from exc
            # What the primary handed over is ours now: return it rather than strand it.
            self._fallback_outage.failed(
                "restart-guard: cannot claim from the local fallback marker store %s: %s",
                self.fallback,
                exc,
            )
            from_fallback = []
        for marker in from_fallback:
            key = marker.key
            winner = newer(merged[key], marker) if key in merged else marker
            merged[key] = winner
            if winner is marker:
                self._fallback_only[key] = marker
            else:
                self._fallback_stale.add(key)
        return list(merged.values())

    def discard(self, markers: Sequence[Marker]) -> int:
        """Discard from the primary, the store other processes' held markers are in.

        The fallback is a marker directory whose journals only their owners
        write; what a running process put there during an outage stays until
        it moves back to the primary or that process stops.
        """
        if not isinstance(self.primary, OperatorStore):
            raise StoreError(f"{self.primary!r} cannot discard markers held by a running process")
        return self.primary.discard(markers)

    def load(self) -> list[StoredMarker]:
        """The markers of both stores (a failing one is skipped with an error line)."""
        found: list[StoredMarker] = []
        errors: list[Exception] = []
        for store in (self.primary, self.fallback):
            try:
                found.extend(store.load())
            except Exception as exc:
                log.error("restart-guard: cannot read marker store %s: %s", store, exc)
                errors.append(exc)
        if len(errors) == 2:
            raise StoreError(f"neither marker store could be read: {errors[0]}") from errors[0]
        return found

    def close(self) -> None:
        """Close both stores; raise the first error after trying both.

        The error raised is left to the caller to report (the guard logs it);
        only a second one is logged here.
        """
        errors: list[Exception] = []
        for store in (self.primary, self.fallback):
            try:
                store.close()
            except Exception as exc:
                if errors:
                    log.error("restart-guard: closing marker store %s failed: %s", store, exc)
                errors.append(exc)
        if errors:
            raise errors[0]


class _Outage:
    """One store's outage: its first failure logged at ERROR, the rest at DEBUG."""

    def __init__(self) -> None:
        self.ongoing = False

    def failed(self, message: str, *args: object) -> None:
        """Log a failure: at ERROR if it starts an outage, else at DEBUG."""
        if self.ongoing:
            log.debug(message, *args)
            return
        self.ongoing = True
        log.error(message, *args)

    def ended(self) -> bool:
        """The store answered: whether that ends an outage (then say so once)."""
        was, self.ongoing = self.ongoing, False
        return was
