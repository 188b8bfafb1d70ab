"""Wait for an observable condition with a deadline, instead of sleeping and hoping.

A restart test waits for things nobody signals: a file in the marker
directory, a counter of a stand-in, a key in Redis. Poll them with a
deadline and fail with a message that says what was awaited::

    eventually(lambda: not markers_in(marker_dir), what="the markers to be removed")
    await eventually_async(lambda: guard.in_flight == 3, timeout=5, what="three turns")

The condition's value is returned once it is truthy, so a wait can also
fetch what it waited for. ``what`` may be a callable: it is called only on
timeout, to describe the state the test found instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["eventually", "eventually_async"]

_T = TypeVar("_T")

#: How often a condition is polled: far below any deadline, cheap for a stat() or a read.
POLL_INTERVAL = 0.01


def _check(condition: Callable[[], _T], deadline: float, timeout: float, what: Any) -> _T | None:
    """The condition's value when truthy, None to poll again; raises once past the deadline."""
    value = condition()
    if value:
        return value
    if time.monotonic() > deadline:
        description = what() if callable(what) else what
        raise TimeoutError(f"waited {timeout}s for {description or 'the condition'}")
    return None


def eventually(
    condition: Callable[[], _T],
    timeout: float = 15.0,
    what: str | Callable[[], str] = "",
    interval: float = POLL_INTERVAL,
) -> _T:
    """Poll ``condition`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds. An
    exception raised by ``condition`` (a bot that exited, say) ends the wait
    at once.
    """
    deadline = time.monotonic() + timeout
    while (value := _check(condition, deadline, timeout, what)) is None:
        time.sleep(interval)
    return value


async def eventually_async(
    condition: Callable[[], _T],
    timeout: float = 15.0,
    what: str | Callable[[], str] = "",
    interval: float = POLL_INTERVAL,
) -> _T:
    """:func:`eventually` for async tests: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = _check(condition, deadline, timeout, what)
        if value is not None:
            return value
        await asyncio.sleep(interval)  # nothing signals these conditions: poll
