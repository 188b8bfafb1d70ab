"""restart-guard's counters and in-flight gauge in a ``prometheus_client`` registry.

One collector per registry, shared by every guard that reports to it (two
bots in one process, or one bot restarted in-process), so metric names are
registered once. Counters live in the collector and keep counting across
guards; ``restart_guard_in_flight`` is summed over the live guards when the
registry is scraped, so nothing is computed on a handler's path.
See :mod:`restart_guard.metrics` for the metric names.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from ._counting import COUNTERS, Guarded, GuardMetrics

__all__ = ["RestartGuardCollector", "collector_for"]

_HELP = {
    "marked": "Markers written to the store (conversations durably marked in flight).",
    "cleared": "Markers removed from the store.",
    "resumed": "Interrupted conversations told (and re-run) at start-up.",
    "dropped": "Markers dropped at start-up: older than max_age, chat gone or bot removed.",
    "gave_up": "Markers given up at start-up after max_attempts interrupted resumes.",
}

_collectors: weakref.WeakKeyDictionary[CollectorRegistry, RestartGuardCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


class RestartGuardCollector:
    """A custom collector (``collect``/``describe``) holding restart-guard's metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # counted from the writer thread and the event loop
        self._counts: dict[tuple[str, str], int] = {}
        self._guards: list[weakref.ReferenceType[Any]] = []

    def attach(self, guard: Guarded) -> GuardMetrics:
        """Report ``guard``'s counts here and include it in the gauge."""
        with self._lock:
            self._guards = [g for g in self._guards if g() is not None]
            self._guards.append(weakref.ref(guard))
        platform = guard.platform

        def add(name: str, n: int) -> None:
            with self._lock:
                self._counts[platform, name] = self._counts.get((platform, name), 0) + n

        return GuardMetrics(platform, add)

    def describe(self) -> Iterable[Metric]:
        """The metric names, for the registry's duplicate check (no guard is read)."""
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        """The current values."""
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
            guards = [g() for g in self._guards]
        platforms = sorted({p for p, _ in counts} | {g.platform for g in guards if g is not None})
        for name in COUNTERS:
            family = CounterMetricFamily(f"restart_guard_{name}", _HELP[name], labels=["platform"])
            if with_samples:
                for platform in platforms:
                    family.add_metric([platform], counts.get((platform, name), 0))
            yield family
        gauge = GaugeMetricFamily(
            "restart_guard_in_flight", "Handler runs in progress.", labels=["platform"]
        )
        if with_samples:
            in_flight: dict[str, int] = dict.fromkeys(platforms, 0)
            for guard in guards:
                if guard is not None:
                    in_flight[guard.platform] += guard.in_flight
            for platform, value in sorted(in_flight.items()):
                gauge.add_metric([platform], value)
        yield gauge


def collector_for(registry: CollectorRegistry) -> RestartGuardCollector:
    """The collector registered in ``registry``, registering it on first use."""
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = RestartGuardCollector()
            registry.register(collector)
        return collector
