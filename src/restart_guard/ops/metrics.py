"""The ``protect(metrics=...)`` hook: counters and the in-flight gauge.

``metrics`` is either a callable that receives a :class:`MetricsEvent` for
every change::

    def on_event(event: MetricsEvent) -> None:
        statsd.incr(f"restart_guard.{event.name}", event.value)  # counters
        # event.name == "in_flight": event.value is the current number instead

    protect(metrics=on_event)

or a ``prometheus_client.CollectorRegistry`` (``prometheus_client`` is not a
dependency of restart-guard; install it yourself)::

    protect(metrics=prometheus_client.REGISTRY)

which exposes, with a ``platform`` label:

- ``restart_guard_marked_total``: markers written to the store (a
  conversation that starts and finishes between two batches is never
  written, so it is not counted);
- ``restart_guard_cleared_total``: markers removed from the store, for any
  reason;
- ``restart_guard_resumed_total``: interrupted conversations told (and
  re-run) at start-up;
- ``restart_guard_dropped_total``: markers dropped at start-up (older than
  ``max_age``, chat gone, bot removed);
- ``restart_guard_gave_up_total``: markers given up after ``max_attempts``;
- ``restart_guard_in_flight``: handler runs in progress, read when scraped.

Nothing is counted on a handler's path: ``marked``/``cleared`` are counted
by the background writer once per batch, the others by the start-up resume
step. A callable gets ``in_flight`` after each batch (when it changed); a
registry reads it when scraped. A hook that raises is logged once and
otherwise ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "COUNTERS",
    "GuardMetrics",
    "MetricsEvent",
    "MetricsHook",
    "check_metrics_option",
    "make_metrics",
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


class _Guarded(Protocol):
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


class _CallableMetrics(GuardMetrics):
    """Forwards every event to the user's callable; samples ``in_flight`` after each batch."""

    def __init__(self, platform: str, hook: MetricsHook, guard: _Guarded) -> None:
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


def _is_prometheus_registry(option: object) -> bool:
    # Decided by the class's module so that prometheus_client is imported only
    # when it is already in use.
    if not type(option).__module__.startswith("prometheus_client"):
        return False
    from prometheus_client.registry import CollectorRegistry

    return isinstance(option, CollectorRegistry)


def check_metrics_option(option: object) -> None:
    """Raise TypeError unless ``option`` is None, a callable or a prometheus registry."""
    if option is None or callable(option) or _is_prometheus_registry(option):
        return
    raise TypeError(
        "metrics must be a callable receiving restart_guard.ops.metrics.MetricsEvent, or a "
        f"prometheus_client.CollectorRegistry (pip install prometheus-client); got {option!r}"
    )


def make_metrics(option: Any, guard: _Guarded) -> GuardMetrics | None:
    """The metrics ``guard`` reports to, from ``protect(metrics=option)``; None for none."""
    if option is None:
        return None
    if _is_prometheus_registry(option):
        from .prometheus import collector_for

        return collector_for(option).attach(guard)
    check_metrics_option(option)
    return _CallableMetrics(guard.platform, option, guard)
