"""The metrics event type and the per-guard counting every metrics backend shares.

Imported by :mod:`restart_guard.metrics` (the hook a user passes) and by its
prometheus backend, which therefore never import each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "COUNTERS",
    "IN_FLIGHT",
    "CallableMetrics",
    "GuardMetrics",
    "Guarded",
    "MetricsEvent",
    "MetricsHook",
]

log = logging.getLogger("restart_guard")

#: The counters, in the order they are documented.
COUNTERS = ("marked", "cleared", "resumed", "dropped", "gave_up")
#: The gauge.
IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class MetricsEvent:
    """One change: ``value`` is an increment for a counter, the current number for a gauge.

    ``name`` is one of :data:`COUNTERS` or ``"in_flight"``; ``platform`` is
    the adapter's name (``"telegram"``, ``"discord"``, ``"slack"``).
    """

    name: str
    value: int
    platform: str

    @property
    def is_gauge(self) -> bool:
        """True for ``in_flight`` (a current value), False for the counters (increments)."""
        return self.name == IN_FLIGHT


MetricsHook = Callable[[MetricsEvent], object]


class Guarded(Protocol):
    """What the metrics need from a guard (kept structural: no import of the guard here)."""

    platform: str

    @property
    def in_flight(self) -> int: ...


class GuardMetrics:
    """Where one guard reports its counts. Built by :func:`make_metrics`; never raises."""

    def __init__(self, platform: str, emit: Callable[[str, int], None]) -> None:
        self.platform = platform
        self._emit = emit
        self._failed = False

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        if n:
            self._safely(name, n)

    def committed(self, marked: int, cleared: int) -> None:
        """A batch was committed (called by the writer, off the handlers' path)."""
        self.count("marked", marked)
        self.count("cleared", cleared)

    def _safely(self, name: str, value: int) -> None:
        try:
            self._emit(name, value)
        except Exception:
            if not self._failed:
                # Once: a broken hook would otherwise log on every batch.
                self._failed = True
                log.exception("restart-guard: the metrics hook failed; further errors not logged")


class CallableMetrics(GuardMetrics):
    """Forwards every event to the user's callable; samples ``in_flight`` after each batch."""

    def __init__(self, platform: str, hook: MetricsHook, guard: Guarded) -> None:
        super().__init__(platform, self._forward)
        self._hook = hook
        self._guard = guard
        self._lock = threading.Lock()  # batches commit from the writer and from flush()
        self._last_in_flight = -1

    def _forward(self, name: str, value: int) -> None:
        self._hook(MetricsEvent(name, value, self.platform))

    def committed(self, marked: int, cleared: int) -> None:
        super().committed(marked, cleared)
        in_flight = self._guard.in_flight
        with self._lock:
            changed = in_flight != self._last_in_flight
            self._last_in_flight = in_flight
        if changed:
            self._safely(IN_FLIGHT, in_flight)
