"""Start-up (claim, notices) and shutdown (pre-mark, stop intake, drain) of a guarded app.

Signals: Bolt installs no SIGTERM handler of its own (aiohttp does, for
``AsyncApp.start()``), so SIGTERM kills an app mid-listener. When an app is
run by one of Bolt's runners, the adapter handles SIGTERM and SIGINT:

- sync apps: a Python signal handler that only sets an event (it runs in the
  main thread between two bytecodes, so it must not take any lock the main
  thread might hold); a watcher thread does the work, then raises
  ``SystemExit(0)`` in the main thread by sending it the same signal again;
- async apps: ``loop.add_signal_handler``; the stop runs as a task, then
  ``SystemExit(0)`` is raised from a loop callback, as aiohttp does.

A second signal during the drain is ignored: the drain is bounded by
``drain_timeout``, and cutting it short is exactly the loss this prevents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from slack_bolt import App
from slack_bolt.async_app import AsyncApp

from restart_guard import Guard, Resumer, make_store
from restart_guard._systemd import notify_ready

from ._link import AsyncLink, LoopThread, SyncLink
from ._state import (
    PLATFORM,
    STARTUP_NOTICE_WAIT,
    AppState,
    Phase,
    fallback_identity,
    identity_from_auth_test,
    identity_needed,
    log,
)

__all__ = [
    "PROCESS_SIGNALS",
    "LoopSignals",
    "ProcessSignals",
    "aiohttp_signal_handler",
    "loop_signals",
    "shutdown_async_state",
    "shutdown_state",
    "shutdown_states",
    "startup_async_state",
    "startup_state",
]

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long closing a Socket Mode connection may hold up the drain's report.
_CLOSE_WAIT = 5.0


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


# ------------------------------------------------------------------ start-up
def _identity_sync(app: App) -> str:
    if app.client.token:
        try:
            identity = identity_from_auth_test(app.client.auth_test())
        except Exception as exc:
            log.error("restart-guard: auth.test failed, cannot name the marker folder: %s", exc)
        else:
            if identity:
                return identity
    return fallback_identity(app)


async def _identity_async(app: AsyncApp) -> str:
    if app.client.token:
        try:
            identity = identity_from_auth_test(await app.client.auth_test())
        except Exception as exc:
            log.error("restart-guard: auth.test failed, cannot name the marker folder: %s", exc)
        else:
            if identity:
                return identity
    return fallback_identity(app)


async def _resume(resumer: Resumer, claimed: Sequence[Any]) -> bool:
    if resumer.start(claimed) is None:
        return True
    return await resumer.wait(STARTUP_NOTICE_WAIT)


def startup_state(app: App, state: AppState) -> None:
    """Claim markers and post notices for a sync app; idempotent, thread-safe."""
    if state.ready.is_set():
        return
    with state.lock:  # a concurrent first request waits here for the notices
        if state.ready.is_set():
            return
        identity = _identity_sync(app) if identity_needed(state.settings) else ""
        guard = Guard(PLATFORM, make_store(state.settings, PLATFORM, identity), state.settings)
        claimed = guard.start()
        state.guard = guard
        state.phase = Phase.RUNNING
        state.drained = None
        # Always: the resume step also re-claims in the background, so markers of
        # another replica that dies later are resumed without waiting for a restart.
        state.loop_thread = LoopThread()
        state.resumer = Resumer(guard, SyncLink(app, state))
        try:
            done = state.loop_thread.call(_resume(state.resumer, claimed), STARTUP_NOTICE_WAIT + 5)
        except TimeoutError:
            done = False
        if not done:
            log.info("restart-guard: notices continue in the background while the app runs")
        state.ready.set()
        state.serving = True
        notify_ready()  # systemd (Type=notify): start-up recovery is done
        log.info("restart-guard: guarding slack app (%d interrupted)", len(claimed))


async def startup_async_state(app: AsyncApp, state: AppState) -> None:
    """Claim markers and post notices for an async app; concurrent callers share one start-up."""
    if state.ready.is_set():
        return
    if state.startup_task is None or state.startup_task.done():
        state.startup_task = asyncio.ensure_future(_startup_async(app, state))
    await asyncio.shield(state.startup_task)


async def _startup_async(app: AsyncApp, state: AppState) -> None:
    identity = await _identity_async(app) if identity_needed(state.settings) else ""
    guard = Guard(PLATFORM, make_store(state.settings, PLATFORM, identity), state.settings)
    claimed = guard.start()
    state.guard = guard
    state.phase = Phase.RUNNING
    state.drained = None
    state.resumer = Resumer(guard, AsyncLink(app, state))
    if not await _resume(state.resumer, claimed):
        log.info("restart-guard: notices continue in the background while the app runs")
    state.ready.set()
    state.serving = True
    notify_ready()  # systemd (Type=notify): start-up recovery is done
    log.info("restart-guard: guarding slack app (%d interrupted)", len(claimed))


# ------------------------------------------------------------------ shutdown
def _pre_mark(state: AppState) -> None:
    if state.phase is Phase.RUNNING and state.guard is not None:
        state.serving = False
        state.phase = Phase.STOPPING  # from here on new requests are refused
        state.guard.pre_mark()


def _finish(state: AppState, guard: Guard, drained: bool) -> None:
    if not drained:
        guard.seal()
    guard.close()
    if state.loop_thread is not None:
        state.loop_thread.stop()
    state.guard = None
    state.resumer = None
    state.loop_thread = None
    state.handlers.clear()
    state.replayed.clear()
    state.startup_task = None
    state.ready.clear()
    state.serving = False
    state.drained = drained
    state.phase = Phase.STOPPED


def _close_sync_handlers(handlers: Sequence[Any]) -> None:
    for handler in handlers:
        try:
            handler.close()
        except Exception as exc:
            log.warning("restart-guard: closing the Socket Mode connection failed: %s", exc)


def _cancel_resumer_blocking(state: AppState) -> None:
    if state.resumer is not None and state.loop_thread is not None:
        try:
            state.loop_thread.call(state.resumer.cancel(), 5.0)
        except Exception as exc:
            log.warning("restart-guard: stopping the resume step failed: %s", exc)


def shutdown_states(states: Sequence[AppState]) -> bool:
    """Pre-mark, stop intake, drain and close sync apps; True if every drain completed.

    Every app is pre-marked before any intake stops, and all drains share
    one start time, so two apps in one process cost one ``drain_timeout``.
    """
    started = time.monotonic()
    live = [(s, s.guard) for s in states if s.guard is not None and s.phase is not Phase.STOPPED]
    for state, _ in live:
        _pre_mark(state)
    # Closing the builtin Socket Mode client can take seconds: it runs beside the drain.
    handlers = [h for state, _ in live for h in state.handlers]
    closer = threading.Thread(
        target=_close_sync_handlers, args=(handlers,), name="restart-guard-close", daemon=True
    )
    closer.start()
    drained_all = True
    for state, guard in live:
        assert guard is not None
        _cancel_resumer_blocking(state)
        left = state.settings.drain_timeout - (time.monotonic() - started)
        drained = guard.wait_idle_blocking(max(left, 0.0))
        _finish(state, guard, drained)
        drained_all = drained_all and drained
    closer.join(_CLOSE_WAIT)
    return drained_all


def shutdown_state(state: AppState) -> bool:
    """:func:`shutdown_states` for one app, serialised with its start-up."""
    with state.lock:
        return shutdown_states([state])


async def shutdown_async_state(state: AppState) -> bool:
    """Pre-mark (unless done), stop intake, drain and close an app from its event loop."""
    guard = state.guard
    if guard is None or state.phase is Phase.STOPPED:
        return state.drained is not False
    started = time.monotonic()
    _pre_mark(state)
    closing = [asyncio.ensure_future(_close_async(h)) for h in list(state.handlers)]
    if state.is_async:
        if state.resumer is not None:
            await state.resumer.cancel()
    else:
        await asyncio.to_thread(_cancel_resumer_blocking, state)
    left = state.settings.drain_timeout - (time.monotonic() - started)
    drained = await guard.wait_idle(max(left, 0.0))
    _finish(state, guard, drained)
    if closing:
        await asyncio.wait(closing, timeout=_CLOSE_WAIT)
    return drained


async def _close_async(handler: Any) -> None:
    try:
        if hasattr(handler, "close_async"):
            await handler.close_async()
        else:
            await asyncio.to_thread(handler.close)
    except Exception as exc:
        log.warning("restart-guard: closing the Socket Mode connection failed: %s", exc)


def _hard_exit(status: int) -> None:
    """Exit now: listener threads still running would hold up a normal exit forever."""
    log.warning("restart-guard: exiting with the drain unfinished (status %d)", status)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not keep us alive
            stream.flush()
    os._exit(status)


# ------------------------------------------------------------------ signals
class ProcessSignals:
    """SIGTERM/SIGINT for sync apps run by ``SocketModeHandler`` or ``App.start()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: list[AppState] = []
        self._previous: dict[int, Any] = {}
        self._wake = threading.Event()
        self._phase = "idle"  # idle → stopping → done (or cancelled)
        self._signum: int = signal.SIGTERM
        self._installed = False

    def register(self, state: AppState) -> None:
        """Stop ``state``'s app on SIGTERM/SIGINT (handlers installed from the main thread)."""
        with self._lock:
            if state not in self._states:
                self._states.append(state)
            if self._installed:
                return
            if threading.current_thread() is not threading.main_thread():
                log.warning(
                    "restart-guard: the app was started outside the main thread, where "
                    "signal handlers cannot be installed; call "
                    "restart_guard.adapters.slack.shutdown(app) when the process stops"
                )
                return
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            self._installed = True
            self._phase = "idle"
            self._wake.clear()
            threading.Thread(target=self._watch, name="restart-guard-signals", daemon=True).start()

    def unregister(self, state: AppState) -> None:
        """Forget ``state``; the previous handlers come back when no app is left."""
        with self._lock:
            if state in self._states:
                self._states.remove(state)
            if self._states or not self._installed or self._phase != "idle":
                return
            self._restore()
            self._phase = "cancelled"
            self._wake.set()

    def _restore(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, previous in self._previous.items():
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self._installed = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Main thread, between two bytecodes: flags and an Event only — no
        # logging, no guard (the interrupted code may hold their locks).
        if self._phase == "done":
            # Drained: the app's own handler, if it had one, then exit 0.
            previous = self._previous.get(signum)
            if callable(previous) and previous is not signal.default_int_handler:
                previous(signum, frame)
            raise SystemExit(0)
        if self._phase != "idle":
            return
        self._phase = "stopping"
        self._signum = signum
        self._wake.set()

    def _watch(self) -> None:
        self._wake.wait()
        if self._phase != "stopping":
            return
        with self._lock:
            states = list(self._states)
        log.info(
            "restart-guard: %s received; stopping %d slack app(s)",
            _signal_name(self._signum),
            len(states),
        )
        drained = shutdown_states(states)
        if not drained:
            _hard_exit(0)
        log.info("restart-guard: drain complete; exiting")
        with self._lock:
            self._states.clear()
            self._phase = "done"
        # A real signal, not _thread.interrupt_main(): only that wakes a main
        # thread blocked in a lock (SocketModeHandler.start() waits on an Event).
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, self._signum)


class LoopSignals:
    """SIGTERM/SIGINT on one asyncio loop, for apps run by ``AsyncSocketModeHandler``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._states: list[AppState] = []
        self._stopping = False
        self._installed = False
        self._task: asyncio.Task[None] | None = None

    def register(self, state: AppState) -> None:
        """Stop ``state``'s app on SIGTERM/SIGINT delivered to this loop."""
        if state not in self._states:
            self._states.append(state)
        if self._installed:
            return
        try:
            for sig in SIGNALS:
                self.loop.add_signal_handler(sig, self._on_signal, sig)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            log.warning(
                "restart-guard: cannot handle signals on this event loop (%s); call "
                "await restart_guard.adapters.slack.shutdown_async(app) when the process stops",
                exc,
            )
            return
        self._installed = True

    def unregister(self, state: AppState) -> None:
        """Forget ``state``; the loop's handlers go when no app is left."""
        if state in self._states:
            self._states.remove(state)
        if not self._states and self._installed and not self._stopping:
            self._remove()

    def _remove(self) -> None:
        for sig in SIGNALS:
            self.loop.remove_signal_handler(sig)
        self._installed = False

    def _on_signal(self, signum: int) -> None:
        if self._stopping:
            log.info(
                "restart-guard: %s ignored: the drain is running (at most drain_timeout)",
                _signal_name(signum),
            )
            return
        self._stopping = True
        log.info(
            "restart-guard: %s received; stopping %d slack app(s)",
            _signal_name(signum),
            len(self._states),
        )
        for state in self._states:
            _pre_mark(state)  # durable now, before anything else runs on this loop
        self._task = self.loop.create_task(self._stop(), name="restart-guard-stop")

    async def _stop(self) -> None:
        states = list(self._states)
        await asyncio.gather(*(shutdown_async_state(s) for s in states))
        self._states.clear()
        self._remove()
        log.info("restart-guard: stopped; exiting")
        self.loop.call_soon(_raise_exit)


def _raise_exit() -> None:
    # From a loop callback SystemExit leaves run_forever(), as aiohttp's GracefulExit does.
    raise SystemExit(0)


#: The process's one :class:`ProcessSignals` (signal handlers are process-wide).
PROCESS_SIGNALS = ProcessSignals()
_LOOP_SIGNALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopSignals] = (
    weakref.WeakKeyDictionary()
)


def loop_signals(loop: asyncio.AbstractEventLoop) -> LoopSignals:
    """The :class:`LoopSignals` of ``loop`` (made on first use)."""
    signals = _LOOP_SIGNALS.get(loop)
    if signals is None:
        signals = _LOOP_SIGNALS[loop] = LoopSignals(loop)
    return signals


def aiohttp_signal_handler(
    state: AppState, graceful_exit: Callable[[], None]
) -> Callable[[int], None]:
    """For ``AsyncApp.start()``: pre-mark, then aiohttp's graceful exit (which drains us)."""

    def on_signal(signum: int) -> None:
        if state.phase is not Phase.RUNNING:
            log.info("restart-guard: %s ignored: the drain is running", _signal_name(signum))
            return
        log.info("restart-guard: %s received; stopping the slack app", _signal_name(signum))
        _pre_mark(state)
        graceful_exit()

    return on_signal
