"""Slack's parts of start-up and stop around the core ``Lifecycle``.

- **identity**: the marker folder is named after ``auth.test``'s enterprise,
  team and bot id (public, stable, never the token) — asked only when the
  folder depends on it;
- **link**: a sync ``App`` posts with its blocking client from the resume
  step's loop thread (``Lifecycle.start_blocking``), an ``AsyncApp`` on its
  own loop;
- **stop**: the app's Socket Mode connections are closed beside the drain
  (closing Bolt's builtin client can take seconds); requests dispatched
  meanwhile are answered 503 (see ``_install``), so Slack delivers them again.

Signals: Bolt installs no SIGTERM handler (aiohttp does, for
``AsyncApp.start()``), so SIGTERM kills an app mid-listener. When Bolt's
runners run the app, the adapter asks the lifecycle to handle SIGTERM and
SIGINT (``handle_signals_blocking`` for a sync app in the main thread,
``handle_signals`` on the loop of an ``AsyncSocketModeHandler``); under
``AsyncApp.start()`` it extends aiohttp's handlers instead
(:func:`aiohttp_signal_handler`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from slack_bolt import App
from slack_bolt.async_app import AsyncApp

from restart_guard._lifecycle import Stage
from restart_guard._signals import signal_name

from ._link import AsyncLink, SyncLink
from ._state import BotState, fallback_identity, identity_from_auth_test, log

__all__ = [
    "aiohttp_signal_handler",
    "start",
    "start_async",
    "stop",
    "stop_async",
]

# How long closing a Socket Mode connection may hold up the drain's report.
_CLOSE_WAIT = 5.0
SHUTDOWN_HINT = "call restart_guard.adapters.slack.shutdown(app) when the process stops"
SHUTDOWN_ASYNC_HINT = (
    "call await restart_guard.adapters.slack.shutdown_async(app) when the process stops"
)


# ------------------------------------------------------------------ start-up
def _identity(app: App | AsyncApp, answer: Any) -> str:
    identity = identity_from_auth_test(answer) if answer is not None else None
    return identity or fallback_identity(app)


def _auth_test_failed(exc: Exception) -> None:
    log.error("restart-guard: auth.test failed, cannot name the marker folder: %s", exc)


def start(app: App, state: BotState) -> None:
    """Claim markers and post notices for a sync app; idempotent, thread-safe."""

    def identity() -> str:
        answer = None
        if app.client.token:
            try:
                answer = app.client.auth_test()
            except Exception as exc:
                _auth_test_failed(exc)
        return _identity(app, answer)

    state.lifecycle.start_blocking(identity, SyncLink(app, state))


async def start_async(app: AsyncApp, state: BotState) -> None:
    """Claim markers and post notices for an async app; concurrent callers share one start-up."""

    async def identity() -> str:
        answer = None
        if app.client.token:
            try:
                answer = await app.client.auth_test()
            except Exception as exc:
                _auth_test_failed(exc)
        return _identity(app, answer)

    await state.lifecycle.start(identity, AsyncLink(app, state))


# ------------------------------------------------------------------ stop
def stop(state: BotState) -> bool:
    """Pre-mark, close the connections beside the drain, drain, close; True if drained."""
    lifecycle = state.lifecycle
    if lifecycle.guard is None:
        return lifecycle.stop_blocking()
    lifecycle.pre_mark()
    closer = threading.Thread(
        target=_close_sync_handlers,
        args=(list(state.handlers),),
        name="restart-guard-close",
        daemon=True,
    )
    closer.start()
    try:
        return lifecycle.stop_blocking()
    finally:
        state.forget()
        # Stop now (a second signal) does not wait for the connections to close.
        closer.join(0 if lifecycle.cut_short else _CLOSE_WAIT)


async def stop_async(state: BotState) -> bool:
    """:func:`stop` from the app's event loop (an ``AsyncApp``, or an ``App`` run by asyncio)."""
    lifecycle = state.lifecycle
    if lifecycle.guard is None:
        return await lifecycle.stop()
    lifecycle.pre_mark()
    closing = [asyncio.ensure_future(_close_async(h)) for h in list(state.handlers)]
    try:
        return await lifecycle.stop()
    finally:
        state.forget()
        if closing:
            await asyncio.wait(closing, timeout=0 if lifecycle.cut_short else _CLOSE_WAIT)


def _close_sync_handlers(handlers: Sequence[Any]) -> None:
    for handler in handlers:
        try:
            handler.close()
        except Exception as exc:
            log.warning("restart-guard: closing the Socket Mode connection failed: %s", exc)


async def _close_async(handler: Any) -> None:
    try:
        if hasattr(handler, "close_async"):
            await handler.close_async()
        else:
            await asyncio.to_thread(handler.close)
    except Exception as exc:
        log.warning("restart-guard: closing the Socket Mode connection failed: %s", exc)


def aiohttp_signal_handler(
    state: BotState, graceful_exit: Callable[[], None]
) -> Callable[[int], None]:
    """For ``AsyncApp.start()``: pre-mark, then aiohttp's graceful exit (which drains us)."""

    def on_signal(signum: int) -> None:
        if state.lifecycle.stage is not Stage.RUNNING:
            if not state.lifecycle.stop_now(signal_name(signum)):  # a second signal: stop now
                log.info("restart-guard: %s ignored: already stopping", signal_name(signum))
            return
        log.info("restart-guard: %s received; stopping the slack app", signal_name(signum))
        state.lifecycle.pre_mark()
        graceful_exit()

    return on_signal
