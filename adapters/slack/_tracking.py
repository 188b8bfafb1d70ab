"""Bracketing every listener run with its conversation, in Bolt's sync and async runners.

Where a run begins and ends:

- **begins** in ``listener_runner.run()``, before Bolt acks the request: the
  listener may wait in the thread pool's queue before its start handler
  runs, and Slack will not redeliver what was acked;
- **ends** in ``listener_completion_handler`` — Bolt calls it in a
  ``finally`` once the listener returned or raised;
- **lazy listeners** begin in ``lazy_listener_runner.start()`` and end when
  the lazy function returns.

``listener_runner.run()`` returns the response Bolt sends as the
acknowledgement (the Socket Mode envelope ack, the HTTP 200): the tracking
runner returns it only once the run's marker is durable, so an event Slack
stops retrying is always marked. A few milliseconds; Slack allows 3 s.

The runner's class is swapped for a subclass made for it (public methods
only), and its ``listener_completion_handler`` and ``lazy_listener_runner``
become properties that wrap whatever is assigned, so a user who sets their
own handler after ``protect()`` keeps the tracking.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.lazy_listener.async_runner import AsyncLazyListenerRunner
from slack_bolt.lazy_listener.runner import LazyListenerRunner
from slack_bolt.listener.async_listener_completion_handler import (
    AsyncDefaultListenerCompletionHandler,
    AsyncListenerCompletionHandler,
)
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.listener.listener_completion_handler import (
    DefaultListenerCompletionHandler,
    ListenerCompletionHandler,
)
from slack_bolt.listener.thread_runner import ThreadListenerRunner
from slack_bolt.request import BoltRequest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from restart_guard import Conversation, Origin, Run
from restart_guard._lifecycle import CUT_OFF, Lifecycle
from restart_guard._policy import is_no_replay

from ._state import PLATFORM, BotState

__all__ = ["conversation_of", "origin_of", "track", "untrack"]

# Attribute names on a request / runner instance (``__dict__`` keys).
_RUNS = "_restart_guard_runs"
_COMPLETION = "_restart_guard_completion"
_LAZY = "_restart_guard_lazy"

AnyRequest = BoltRequest | AsyncBoltRequest


def conversation_of(request: AnyRequest) -> Conversation | None:
    """Where a reply to ``request`` belongs: team, channel and thread.

    The thread is the message's ``thread_ts``; for a top-level message it is
    the message's own ``ts``, so a notice threads under the message that was
    being answered. The enterprise id is kept as ``parent``. Requests without
    a channel (shortcuts, view submissions, app home) are not tracked.
    """
    # On every listener run, so no more Python than needed: Bolt has already
    # parsed the ids into the context, and Slack sends them as strings.
    context = request.context
    channel = context.get("channel_id")
    if not channel:
        return None
    thread = context.get("thread_ts") or _thread_ts(request.body) or _thread_root(request.body)
    try:
        return Conversation(
            PLATFORM, channel, thread, context.get("team_id"), context.get("enterprise_id")
        )
    except TypeError:  # an id that is not a string: not a payload Slack sends
        return None


def origin_of(request: AnyRequest, replayable: bool = True) -> Origin:
    """The ids a notice needs to answer ``request``: event id, message ts and user (ids only).

    Slash commands and interactivity (buttons, menus) are interactions: the
    notice mentions their user. A reaction's message is not the reactor's.
    """
    body = request.body
    delivery = body.get("event_id")
    user = request.context.get("user_id")
    event = body.get("event")
    message = None
    interaction = not isinstance(event, dict)
    if isinstance(event, dict) and event.get("type") in ("message", "app_mention"):
        nested = event.get("message")  # message_changed: the edited message
        ts = nested.get("ts") if isinstance(nested, dict) else event.get("ts")
        message = None if ts is None else str(ts)
    return Origin(
        delivery if isinstance(delivery, str) else None,
        message,
        user if isinstance(user, str) else None,
        interaction,
        replayable,
    )


def _thread_ts(payload: Any) -> str | None:
    # What Bolt 1.21+ puts in the context as "thread_ts"; older Bolt does not,
    # and a reply in a thread would be keyed by its own ts instead.
    while isinstance(payload, dict):
        found = payload.get("thread_ts")
        if found is not None:
            return str(found)
        payload = next(
            (payload[k] for k in _THREAD_CARRIERS if isinstance(payload.get(k), dict)), None
        )
    return None


_THREAD_CARRIERS = ("event", "assistant_thread", "message", "previous_message")


def _thread_root(body: dict[str, Any]) -> str | None:
    event = body.get("event")
    if isinstance(event, dict):
        for inner in ("message", "item"):  # message_changed, reaction_added
            nested = event.get(inner)
            if isinstance(nested, dict) and nested.get("ts"):
                return str(nested["ts"])
        ts = event.get("ts")
        return None if ts is None else str(ts)
    container = body.get("container")  # interactivity on a message (block_actions)
    if isinstance(container, dict) and container.get("message_ts"):
        return str(container["message_ts"])
    message = body.get("message")  # message shortcuts
    if isinstance(message, dict) and message.get("ts"):
        return str(message["ts"])
    return None  # slash commands: the channel itself


# ------------------------------------------------------------------ brackets
def _begin(state: BotState, request: AnyRequest, listener: Any) -> bool:
    lifecycle = state.lifecycle
    if lifecycle.guard is None or request.lazy_only:
        return False
    conversation = conversation_of(request)
    if conversation is None:
        return False
    # Bolt runs the listener later (in its thread pool): a @no_replay one is
    # known now, and flagged in the write-ahead itself.
    functions = [getattr(listener, "ack_function", None), *getattr(listener, "lazy_functions", ())]
    replayable = not any(is_no_replay(f) for f in functions)
    run = lifecycle.begin(conversation, _payload(state, request), origin_of(request, replayable))
    if run is None:
        return False
    runs = request.__dict__.get(_RUNS)
    if runs is None:
        # A list, not one slot: a second matching listener (after an ack
        # timeout) runs with the same request.
        runs = request.__dict__[_RUNS] = []
    runs.append(run)
    return True


def _listener_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The listener in the rest of Bolt's ``run(request, response, listener_name, listener,
    starting_time)`` — passed on as Bolt gave it (by keyword, in every Bolt release)."""
    return kwargs["listener"] if "listener" in kwargs else args[2]


def _end(request: AnyRequest, cut_off: bool = False) -> None:
    runs = request.__dict__.get(_RUNS)
    if not runs:
        return
    try:
        run = runs.pop()  # atomic: the completion and an error path never both end it
    except IndexError:
        return
    Lifecycle.end(run, cut_off=cut_off)


def _begin_lazy(state: BotState, request: AnyRequest, function: Any) -> Run | None:
    lifecycle = state.lifecycle
    conversation = conversation_of(request) if lifecycle.guard is not None else None
    if conversation is None:
        return None
    origin = origin_of(request, not is_no_replay(function))
    return lifecycle.begin(conversation, _payload(state, request), origin)


def _payload(state: BotState, request: AnyRequest) -> dict[str, Any] | None:
    """What replay re-dispatches: the body, without the legacy verification token."""
    if not state.lifecycle.settings.replay:
        return None
    body = request.body
    if "token" in body:
        body = {k: v for k, v in body.items() if k != "token"}
    return body


def _being_cut_off() -> bool:
    # Inside Bolt's ``finally``: the exception on its way out, if any.
    return isinstance(sys.exc_info()[1], CUT_OFF)


# ------------------------------------------------------ wrapped attributes
def _wrapping_property(key: str, wrapper: type[Any], wrap: Callable[[Any, Any], Any]) -> Any:
    """A runner attribute that keeps what is assigned to it as ``wrap(value, runner)``.

    Stored in the runner's ``__dict__`` under ``key``. Assigning a value that is
    already a ``wrapper`` re-wraps its ``inner``, so the wrappers never nest.
    Typed ``Any`` because it stands in for an attribute Bolt's runner declares.
    """

    def get(runner: Any) -> Any:
        return runner.__dict__[key]

    def set_(runner: Any, value: Any) -> None:
        if isinstance(value, wrapper):
            value = value.inner
        runner.__dict__[key] = wrap(value, runner)

    return property(get, set_)


# ------------------------------------------------------------ sync runner
class _EndOnCompletion(ListenerCompletionHandler):
    """Runs the app's own completion handler, then ends the listener's run."""

    def __init__(self, inner: ListenerCompletionHandler) -> None:
        self.inner = inner
        # Bolt's default does nothing: skip the call on every listener run.
        self._call_inner = not isinstance(inner, DefaultListenerCompletionHandler)

    def handle(self, request: BoltRequest, response: BoltResponse | None) -> None:
        if not self._call_inner:
            _end(request)
            return
        try:
            self.inner.handle(request=request, response=response)
        finally:
            _end(request)


class _TrackingLazyRunner(LazyListenerRunner):
    """Tracks each lazy function from ``start()`` until it returns."""

    def __init__(self, inner: LazyListenerRunner, state: BotState) -> None:
        self.inner = inner
        self.state = state
        self.logger = inner.logger

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        run = _begin_lazy(self.state, request, function)
        if run is None:
            self.inner.start(function, request)
            return

        # Bolt injects arguments by the names of ``inspect.unwrap(function)``.
        @functools.wraps(function)
        def tracked(*args: Any, **kwargs: Any) -> None:
            try:
                function(*args, **kwargs)
            finally:
                Lifecycle.end(run)

        try:
            self.inner.start(tracked, request)
        except BaseException:
            Lifecycle.end(run)
            raise

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        run = _begin_lazy(self.state, request, function)
        try:
            self.inner.run(function, request)
        finally:
            if run is not None:
                Lifecycle.end(run)


class _TrackingThreadRunner(ThreadListenerRunner):
    """``ThreadListenerRunner`` that brackets listener runs (see the module docstring)."""

    _restart_guard: BotState

    listener_completion_handler = _wrapping_property(
        _COMPLETION, _EndOnCompletion, lambda handler, _runner: _EndOnCompletion(handler)
    )
    lazy_listener_runner = _wrapping_property(
        _LAZY,
        _TrackingLazyRunner,
        lambda lazy, runner: _TrackingLazyRunner(lazy, runner._restart_guard),
    )

    def run(self, request: BoltRequest, *args: Any, **kwargs: Any) -> BoltResponse | None:
        if not _begin(self._restart_guard, request, _listener_of(args, kwargs)):
            return super().run(request, *args, **kwargs)
        try:
            acked = super().run(request, *args, **kwargs)
        except BaseException:
            # Never handed to the thread pool: no completion handler will end it.
            _end(request)
            raise
        if request.__dict__.get(_RUNS):  # still running: Slack must not forget it unmarked
            self._restart_guard.lifecycle.durable_blocking()
        return acked


# ----------------------------------------------------------- async runner
class _EndOnCompletionAsync(AsyncListenerCompletionHandler):
    """Async twin of :class:`_EndOnCompletion`; a cancelled listener counts as cut off."""

    def __init__(self, inner: AsyncListenerCompletionHandler) -> None:
        self.inner = inner
        self._call_inner = not isinstance(inner, AsyncDefaultListenerCompletionHandler)

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        cut = _being_cut_off()
        if not self._call_inner:
            _end(request, cut)
            return
        try:
            await self.inner.handle(request=request, response=response)
        finally:
            _end(request, cut)


class _TrackingAsyncLazyRunner(AsyncLazyListenerRunner):
    """Tracks each async lazy function from ``start()`` until it returns."""

    def __init__(self, inner: AsyncLazyListenerRunner, state: BotState) -> None:
        self.inner = inner
        self.state = state
        self.logger = inner.logger

    def start(self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        run = _begin_lazy(self.state, request, function)
        if run is None:
            self.inner.start(function, request)
            return

        @functools.wraps(function)
        async def tracked(*args: Any, **kwargs: Any) -> None:
            cut_off = False
            try:
                await function(*args, **kwargs)
            except CUT_OFF:
                cut_off = True
                raise
            finally:
                Lifecycle.end(run, cut_off=cut_off)

        try:
            self.inner.start(tracked, request)
        except BaseException:
            Lifecycle.end(run)
            raise

    async def run(
        self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest
    ) -> None:
        run = _begin_lazy(self.state, request, function)
        cut_off = False
        try:
            await self.inner.run(function, request)
        except CUT_OFF:
            cut_off = True
            raise
        finally:
            if run is not None:
                Lifecycle.end(run, cut_off=cut_off)


class _TrackingAsyncioRunner(AsyncioListenerRunner):
    """``AsyncioListenerRunner`` that brackets listener runs (see the module docstring)."""

    _restart_guard: BotState

    listener_completion_handler = _wrapping_property(
        _COMPLETION,
        _EndOnCompletionAsync,
        lambda handler, _runner: _EndOnCompletionAsync(handler),
    )
    lazy_listener_runner = _wrapping_property(
        _LAZY,
        _TrackingAsyncLazyRunner,
        lambda lazy, runner: _TrackingAsyncLazyRunner(lazy, runner._restart_guard),
    )

    async def run(
        self, request: AsyncBoltRequest, *args: Any, **kwargs: Any
    ) -> BoltResponse | None:
        if not _begin(self._restart_guard, request, _listener_of(args, kwargs)):
            return await super().run(request, *args, **kwargs)
        try:
            acked = await super().run(request, *args, **kwargs)
        except BaseException as exc:
            _end(request, isinstance(exc, CUT_OFF))
            raise
        if request.__dict__.get(_RUNS):  # still running: Slack must not forget it unmarked
            await self._restart_guard.lifecycle.durable()
        return acked


# ------------------------------------------------------------ install
_RUNNER_CLASSES: dict[type, type] = {
    ThreadListenerRunner: _TrackingThreadRunner,
    AsyncioListenerRunner: _TrackingAsyncioRunner,
}
_TRACKING = (_TrackingThreadRunner, _TrackingAsyncioRunner)


def track(runner: Any, state: BotState) -> None:
    """Swap ``runner``'s class for a tracking subclass made for it (idempotent)."""
    if isinstance(runner, _TRACKING):
        return
    base = next((b for b in type(runner).__mro__ if b in _RUNNER_CLASSES), None)
    if base is None:
        raise TypeError(
            f"restart_guard cannot track listeners run by {type(runner).__qualname__}; "
            "it supports Bolt's ThreadListenerRunner and AsyncioListenerRunner"
        )
    mixin = _RUNNER_CLASSES[base]
    original = type(runner)
    completion = runner.__dict__.pop("listener_completion_handler")
    lazy = runner.__dict__.pop("lazy_listener_runner")
    runner.__class__ = type(
        original.__name__,
        (mixin, original),
        {"_restart_guard": state, "_restart_guard_original": original},
    )
    runner.listener_completion_handler = completion  # wrapped by the property
    runner.lazy_listener_runner = lazy


def untrack(runner: Any) -> None:
    """Undo :func:`track` (idempotent)."""
    if not isinstance(runner, _TRACKING):
        return
    completion = runner.__dict__.pop(_COMPLETION).inner
    lazy = runner.__dict__.pop(_LAZY).inner
    runner.__class__ = type(runner).__dict__["_restart_guard_original"]
    runner.listener_completion_handler = completion
    runner.lazy_listener_runner = lazy
