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

from typing import Any

from ._counting import (
    COUNTERS,
    IN_FLIGHT,
    CallableMetrics,
    Guarded,
    GuardMetrics,
    MetricsEvent,
    MetricsHook,
)

__all__ = [
    "COUNTERS",
    "IN_FLIGHT",
    "GuardMetrics",
    "MetricsEvent",
    "MetricsHook",
    "check_metrics_option",
    "make_metrics",
]


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
        "metrics must be a callable receiving restart_guard.metrics.MetricsEvent, or a "
        f"prometheus_client.CollectorRegistry (pip install prometheus-client); got {option!r}"
    )


def make_metrics(option: Any, guard: Guarded) -> GuardMetrics | None:
    """The metrics ``guard`` reports to, from ``protect(metrics=option)``; None for none."""
    if option is None:
        return None
    if _is_prometheus_registry(option):
        from ._prometheus import collector_for

        return collector_for(option).attach(guard)
    check_metrics_option(option)
    return CallableMetrics(guard.platform, option, guard)
