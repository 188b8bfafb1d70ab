"""A claimed turn the platform delivers again: restart-guard's replay or the platform's copy.

A process killed with a turn in flight leaves two records of it: the marker
(restart-guard's), and — if the platform never got the acknowledgement —
the platform's own undelivered copy. Telegram hands every update not yet
confirmed by a later ``getUpdates`` offset (or not answered 2xx on a
webhook) to the next process; Slack retries an event whose Socket Mode
envelope or HTTP request was not acknowledged (``retry_attempt``,
``X-Slack-Retry-Num``, the same ``event_id``). Discord's gateway never
delivers an event twice. Run both and the turn runs twice: a second answer,
a second charge. Run neither and it is lost. So exactly one wins:

- **replay on (True or a rule): restart-guard's replay wins.** A delivery whose id is in a
  claimed marker's :attr:`~restart_guard.Origin.delivery` is skipped (and
  acknowledged, so the platform stops). The replay carries what the
  platform's copy cannot: the attempt count, made durable before the turn
  re-runs, and with it the crash-loop guard — a turn that kills the bot
  every time is given up after ``max_attempts`` instead of being
  redelivered forever. A marker that will not be replayed (give-up, stale,
  a ``no_replay`` handler, refused by the rule, no payload) gets its notice, and the platform's
  copy is skipped all the same: with replay on, restart-guard alone decides
  whether a claimed turn runs again.
- **replay off: the platform's copy wins.** It simply runs again, as it
  would without restart-guard; the conversation then needs no "please send
  it again" notice. When the link can say which deliveries the platform
  still holds (Telegram: ``getUpdates`` without an offset, which confirms
  nothing), a marker whose every delivery is pending gets no notice: the
  resume step waits up to :data:`REDELIVERY_WAIT` for the copy, whose own
  run then clears the marker — and posts the notice after all if it never
  comes (``drop_pending_updates``, another consumer). Where the link cannot
  say (Slack, a Telegram webhook), the notice goes out at start-up as
  usual; a copy that arrives while that notice is still queued drops it,
  one that arrives after it was posted runs anyway (a sent message cannot
  be unsent).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from typing import Protocol, runtime_checkable

from ._marker import Marker

__all__ = ["REDELIVERY_WAIT", "PendingDeliveries", "Redeliveries", "delivery_ids"]

#: Seconds the resume step waits for a pending delivery to arrive before it
#: posts the marker's notice after all (the platform hands pending updates to
#: the first poll after start-up, milliseconds later).
REDELIVERY_WAIT = 20.0


@runtime_checkable
class PendingDeliveries(Protocol):
    """A :class:`~restart_guard.PlatformLink` that can look at what the platform still holds."""

    async def pending_deliveries(self) -> Collection[str] | None:
        """Delivery ids the platform will hand to this bot again; None if it cannot tell.

        Must confirm (acknowledge) nothing: it runs before any notice.
        """


def delivery_ids(marker: Marker) -> list[str]:
    """The platform delivery ids of the turns a marker holds (empty on Discord)."""
    return [o.delivery for o in marker.origins if o.delivery is not None]


class Redeliveries:
    """Which claimed marker each platform delivery id belongs to. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # delivery id -> marker key
        #: Whether any delivery id is known: adapters test it on every event.
        self.active = False

    def add(self, markers: Iterable[Marker]) -> None:
        """Remember the delivery ids of claimed ``markers``."""
        with self._lock:
            for marker in markers:
                for delivery in delivery_ids(marker):
                    self._owners[delivery] = marker.key
            self.active = bool(self._owners)

    def owner(self, delivery: str) -> str | None:
        """The key of the claimed marker ``delivery`` belongs to, or None."""
        with self._lock:
            return self._owners.get(delivery)

    @staticmethod
    def all_pending(marker: Marker, pending: Collection[str]) -> bool:
        """Every turn of ``marker`` is still held by the platform (and it has one at least)."""
        ids = delivery_ids(marker)
        return bool(ids) and all(d in pending for d in ids)
