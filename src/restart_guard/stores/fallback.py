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

- ``commit`` writes to the primary. If the primary raises (unreachable,
  timed out, read-only after a failover), the same batch goes to the
  fallback instead, with one error line per outage; the guard sees a
  successful commit, so the pre-drain write still lands before the drain.
- Once the primary answers again, the next commit also carries every marker
  the fallback holds for this process (so they become visible to the other
  instances again), the removals the primary missed, and then removes those
  markers from the fallback.
- ``claim`` claims from both and merges a conversation found in both
  (most attempts, then latest update). A primary that cannot be reached is
  skipped with one error line; its markers stay there until the next
  ``claim`` (the guard claims at start-up, so: the next start). A failing
  fallback is skipped the same way once the primary has answered.
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
- Accept that during an outage a conversation can be resumed twice (once
  from each store) if the process dies before the primary comes back; it is
  never resumed zero times.

Both stores must be opened with the same owner; this class does that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .._marker import Marker, newer
from .base import Store, StoredMarker, StoreError

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
        self._primary_down = False

    def __repr__(self) -> str:
        return f"FallbackStore({self.primary!r}, fallback={self.fallback!r})"

    def open(self, owner: str) -> None:
        """Open both stores as ``owner``; raise only if neither can be opened."""
        errors: list[Exception] = []
        for store in (self.primary, self.fallback):
            try:
                store.open(owner)
            except Exception as exc:
                log.error("restart-guard: cannot open marker store %s: %s", store, exc)
                errors.append(exc)
        if len(errors) == 2:
            raise StoreError(
                f"neither marker store could be opened: {errors[0]}; {errors[1]}"
            ) from errors[0]

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Commit to the primary, or to the fallback if the primary raises."""
        if not puts and not removes and not draining:
            return
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
        if self._primary_down:
            self._primary_down = False
            log.warning(
                "restart-guard: marker store %s writable again; %d marker(s) moved back "
                "from the fallback %s",
                self.primary,
                len(carried),
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
        if not self._primary_down:
            self._primary_down = True
            log.error(
                "restart-guard: marker store %s failed (%s); wrote %d marker(s) / %d removal(s) "
                "to the local fallback %s instead, and will until it recovers; a start on "
                "this host resumes them from there",
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
        """Claim from both stores; a primary that fails is skipped with one error line."""
        merged: dict[str, Marker] = {}
        from_primary: set[str] = set()
        try:
            for marker in self.primary.claim():
                merged[marker.key] = marker
                from_primary.add(marker.key)
        except Exception as exc:
            log.error(
                "restart-guard: cannot claim from marker store %s (%s); claiming from the "
                "local fallback %s only — markers in %s wait for a later start",
                self.primary,
                exc,
                self.fallback,
                self.primary,
            )
        try:
            from_fallback = self.fallback.claim()
        except Exception as exc:
            # What the primary handed over is ours now: return it rather than strand it.
            log.error(
                "restart-guard: cannot claim from the fallback marker store %s: %s",
                self.fallback,
                exc,
            )
            if not merged:
                raise
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
        """Close both stores; raise the first error after trying both."""
        first: Exception | None = None
        for store in (self.primary, self.fallback):
            try:
                store.close()
            except Exception as exc:
                log.error("restart-guard: closing marker store %s failed: %s", store, exc)
                first = first or exc
        if first is not None:
            raise first
