"""Which interrupted turns may be re-run: ``@no_replay`` handlers and the ``replay`` rule.

A handler marked :func:`no_replay` (it charges a card, sends an e-mail)
must never run twice for one message. Its turn is flagged as soon as the
handler starts — by the adapter from the attribute when it knows the
handler at write-ahead (discord.py listeners, Bolt listeners), otherwise by
the decorator's wrapper through the run the adapter put in
:data:`CURRENT_RUN` (python-telegram-bot callbacks, discord.py commands) —
and, with replay on, the flag is durable before the handler's body runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from ._guard import Run
from ._marker import Marker

__all__ = [
    "CURRENT_RUN",
    "NO_REPLAY_ATTR",
    "ReplayChoice",
    "ReplayOption",
    "is_no_replay",
    "no_replay",
    "replay_choice",
    "running",
]

log = logging.getLogger("restart_guard")

F = TypeVar("F", bound=Callable[..., Any])

#: What the ``replay`` rule decides for one marker.
ReplayChoice = bool | Literal["ask"]
#: ``protect(replay=...)``: on, off, "ask", or a rule ``(marker) -> bool | "ask"``.
ReplayOption = bool | Literal["ask"] | Callable[[Marker], Any]

#: The attribute :func:`no_replay` sets on a handler.
NO_REPLAY_ATTR = "__restart_guard_no_replay__"

#: The handler run the current code belongs to, where the adapter knows it.
CURRENT_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "restart_guard_current_run", default=None
)


@contextlib.contextmanager
def running(run: Run | None) -> Iterator[None]:
    """Make ``run`` the :data:`CURRENT_RUN` inside the block (for adapters)."""
    token = CURRENT_RUN.set(run)
    try:
        yield
    finally:
        CURRENT_RUN.reset(token)


def is_no_replay(handler: object) -> bool:
    """Whether ``handler`` (or what it wraps) was marked :func:`no_replay`."""
    return bool(getattr(handler, NO_REPLAY_ATTR, False))


def no_replay(handler: F) -> F:
    """Mark a handler as unsafe to re-run: its interrupted turns get the plain notice.

    Put it directly on the function, below the framework's decorator::

        @app.message("refund")      # Bolt; or @bot.command(), @client.event,
        @restart_guard.no_replay    # or a python-telegram-bot callback
        async def refund(...): ...

    Even with ``protect(replay=True)`` (or a ``replay`` rule) a turn that
    ran such a handler is never replayed after a restart; the user is told
    to send the message again. A turn that ran several handlers is
    replayable only if all of them were. The function still works unguarded.
    """
    if not callable(handler) or not isinstance(handler, types.FunctionType):
        raise TypeError(
            "restart_guard.no_replay decorates a handler function: put it below the "
            f"framework's decorator (got {handler!r})"
        )
    if inspect.iscoroutinefunction(handler):
        wrapper = _async_wrapper(handler)
    else:
        wrapper = _sync_wrapper(handler)
    # discord.py's app commands resolve annotations in ``callback.__globals__``:
    # the wrapper runs with the handler's globals, its code uses only its closure.
    wrapper = types.FunctionType(
        wrapper.__code__,
        handler.__globals__,
        handler.__name__,
        wrapper.__defaults__,
        wrapper.__closure__,
    )
    functools.update_wrapper(wrapper, handler)
    # On the wrapper only: the plain function may be registered elsewhere, replayable.
    setattr(wrapper, NO_REPLAY_ATTR, True)
    return wrapper  # type: ignore[return-value]


# The wrappers' code must use only its closure (it runs with the handler's globals).
def _async_wrapper(handler: Callable[..., Any]) -> types.FunctionType:
    forbid = _forbid_async

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        await forbid()
        return await handler(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _sync_wrapper(handler: Callable[..., Any]) -> types.FunctionType:
    forbid = _forbid_blocking

    def guarded(*args: Any, **kwargs: Any) -> Any:
        forbid()
        return handler(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _forbid() -> Run | None:
    """Flag the current run; the run when the flag must be made durable now."""
    run = CURRENT_RUN.get()
    if run is None:
        return None
    guard = run.guard
    if guard.forbid_replay(run) and guard.settings.replay:
        return run
    return None


async def _forbid_async() -> None:
    run = _forbid()
    if run is not None and not await run.guard.flush_async():
        log.error("restart-guard: could not make %s's no_replay flag durable", run.conversation)


def _forbid_blocking() -> None:
    run = _forbid()
    if run is not None and not run.guard.flush():
        log.error("restart-guard: could not make %s's no_replay flag durable", run.conversation)


def replay_choice(option: ReplayOption, marker: Marker) -> ReplayChoice:
    """What ``protect(replay=option)`` decides for ``marker``.

    Nothing to replay (no stored update) or a turn that ran a
    :func:`no_replay` handler: False, whatever the option. A rule that
    raises or answers something else than True, False or "ask" counts as
    False (logged): the safe answer for a turn nobody vouched for.
    """
    if not marker.payload or not marker.replayable:
        return False
    if not callable(option):
        return option
    try:
        answer = option(marker)
    except Exception:
        log.exception(
            "restart-guard: replay rule failed for %s; not replaying", marker.conversation
        )
        return False
    if answer is True or answer is False:
        return bool(answer)
    if answer == "ask":
        return "ask"
    log.error(
        "restart-guard: replay rule answered %r for %s (want True, False or 'ask'); not replaying",
        answer,
        marker.conversation,
    )
    return False
