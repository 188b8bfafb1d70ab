"""Putting the guard on an app: its class, its listener runner, Bolt's runners.

- restart-guard's middleware answers the buttons of ``replay="ask"``
  questions before any of the app's middleware and listeners (``_press``).
- The app's class is swapped for a subclass made for it that overrides
  public methods only: ``dispatch``/``async_dispatch`` (start-up on the first
  request if nothing else started it; requests arriving after a stop signal
  are refused, so Slack delivers them again; an event Slack retries whose
  turn a claimed marker holds is acked and skipped when replay is on — the
  replay re-runs it — and runs, standing in for the notice, when it is off:
  ``Lifecycle.redelivered``), ``App.start`` (start-up before the
  server binds, signal handlers), ``AsyncApp.server`` (start-up in aiohttp's
  ``on_startup``, drain in its ``on_shutdown``) and ``AsyncApp.start``.
- ``connect()``/``connect_async()`` of Bolt's Socket Mode handler base classes
  are wrapped once per process (and unwrapped when the last app is
  unprotected): a handler is created by the user after ``protect()``, so
  this is the only place that sees it. For an unguarded app they do exactly
  what they did.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import web
from slack_bolt import App
from slack_bolt.adapter.socket_mode.async_base_handler import AsyncBaseSocketModeHandler
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.async_app import AsyncApp
from slack_bolt.request import BoltRequest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from restart_guard import Settings
from restart_guard._lifecycle import Lifecycle, Stage
from restart_guard._signals import SIGNALS

from ._lifecycle import (
    SHUTDOWN_ASYNC_HINT,
    SHUTDOWN_HINT,
    aiohttp_signal_handler,
    start,
    start_async,
    stop,
    stop_async,
)
from ._press import answer_presses, stop_answering_presses
from ._state import PLATFORM, REPLAY_KEY, BotState
from ._tracking import track, untrack

__all__ = ["hook", "state_of", "unhook"]


def state_of(app: object) -> BotState | None:
    """The adapter's state of a protected app, or None."""
    if isinstance(app, (_GuardedApp, _GuardedAsyncApp)):
        return type(app)._restart_guard
    return None


def _turned_away(state: BotState, request: BoltRequest | AsyncBoltRequest) -> BoltResponse | None:
    """The answer to a request that must not run now, or None to let it run."""
    if not state.lifecycle.accepting:
        # Not acked: Slack sends it again, to the next process or connection.
        return BoltResponse(status=503, body="restarting; deliver again later")
    lifecycle = state.lifecycle
    if lifecycle.claims_deliveries:
        event_id = request.body.get("event_id")
        if isinstance(event_id, str) and lifecycle.redelivered(event_id):
            # Acked: Slack stops retrying; restart-guard's replay runs the turn once.
            return BoltResponse(status=200, body="")
    return None


def _needs_startup(state: BotState) -> bool:
    # Not after a stop: a request then is turned away, until an explicit start-up.
    return state.lifecycle.stage in (Stage.NEW, Stage.STARTING)


def _handle_signals(state: BotState) -> None:
    state.lifecycle.handle_signals_blocking(lambda: stop(state), how_to_stop=SHUTDOWN_HINT)


def _gate(app: App, state: BotState, req: BoltRequest) -> BoltResponse | None:
    if req.context.get(REPLAY_KEY):
        return None
    if _needs_startup(state):
        start(app, state)
    return _turned_away(state, req)


async def _gate_async(app: AsyncApp, state: BotState, req: AsyncBoltRequest) -> BoltResponse | None:
    if req.context.get(REPLAY_KEY):
        return None
    if _needs_startup(state):
        await start_async(app, state)
    return _turned_away(state, req)


class _GuardedApp(App):
    """Overrides mixed into a protected ``App``'s class (see the module docstring)."""

    _restart_guard: BotState

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        state = self._restart_guard
        lifecycle = state.lifecycle
        if lifecycle.stage is not Stage.RUNNING or lifecycle.claims_deliveries:  # rarely
            refusal = _gate(self, state, req)
            if refusal is not None:
                return refusal
        return super().dispatch(req)

    def start(
        self,
        port: int = 3000,
        path: str = "/slack/events",
        http_server_logger_enabled: bool = True,
    ) -> None:
        state = self._restart_guard
        # Before the notices: a SIGTERM during them stops like one during the drain.
        # Requests arriving during the drain are answered 503 (Slack retries them);
        # after the drain SystemExit(0) leaves serve_forever().
        _handle_signals(state)
        start(self, state)  # notices go out before the server binds its port
        super().start(port=port, path=path, http_server_logger_enabled=http_server_logger_enabled)


class _GuardedAsyncApp(AsyncApp):
    """Overrides mixed into a protected ``AsyncApp``'s class (see the module docstring)."""

    _restart_guard: BotState

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        state = self._restart_guard
        lifecycle = state.lifecycle
        if lifecycle.stage is not Stage.RUNNING or lifecycle.claims_deliveries:
            refusal = await _gate_async(self, state, req)
            if refusal is not None:
                return refusal
        return await super().async_dispatch(req)

    def server(
        self, port: int = 3000, path: str = "/slack/events", host: str | None = None
    ) -> AsyncSlackAppServer:
        server = super().server(port=port, path=path, host=host)
        _hook_web_app(self, self._restart_guard, server.web_app)
        return server

    def start(self, port: int = 3000, path: str = "/slack/events", host: str | None = None) -> None:
        state = self._restart_guard
        state.standalone = True  # aiohttp's run_app owns the signals: extend, not replace
        try:
            super().start(port=port, path=path, host=host)
        finally:
            state.standalone = False


def _graceful_exit() -> None:
    raise web.GracefulExit()


def _hook_web_app(app: AsyncApp, state: BotState, web_app: web.Application) -> None:
    if any(getattr(cb, "_restart_guard", False) for cb in web_app.on_startup):
        return

    async def on_startup(_: web.Application) -> None:
        # Inside runner.setup(), before the site listens: notices precede events.
        await start_async(app, state)
        if state.standalone:
            # run_app() installed handlers that raise GracefulExit; ours pre-mark first.
            loop = asyncio.get_running_loop()
            handler = aiohttp_signal_handler(state, _graceful_exit)
            for sig in SIGNALS:
                loop.add_signal_handler(sig, handler, sig)

    async def on_shutdown(_: web.Application) -> None:
        # After the site stopped listening, before aiohttp cancels every task.
        await stop_async(state)

    on_startup._restart_guard = True  # type: ignore[attr-defined]
    web_app.on_startup.append(on_startup)
    web_app.on_shutdown.append(on_shutdown)


# ------------------------------------------------------- Socket Mode handlers
_originals: dict[tuple[type, str], Any] = {}
_protected_apps = 0


def _wrap_connect(original: Any) -> Any:
    @functools.wraps(original)
    def connect(self: BaseSocketModeHandler) -> None:
        state = state_of(self.app)
        if state is None:
            original(self)
            return
        if self not in state.handlers:
            state.handlers.append(self)
        _handle_signals(state)  # before the notices: a SIGTERM during them stops cleanly
        start(self.app, state)  # notices before the connection takes events
        original(self)

    return connect


def _wrap_connect_async(original: Any) -> Any:
    @functools.wraps(original)
    async def connect_async(self: AsyncBaseSocketModeHandler) -> None:
        app = self.app
        state = state_of(app)
        if state is None:
            await original(self)
            return
        if self not in state.handlers:
            state.handlers.append(self)
        # Before the notices, so that a SIGTERM during them stops cleanly.
        # AsyncSocketModeHandler.start_async() waits forever: leave the loop once stopped.
        state.lifecycle.handle_signals(
            lambda: stop_async(state), how_to_stop=SHUTDOWN_ASYNC_HINT, exit_when_stopped=True
        )
        if isinstance(app, AsyncApp):
            await start_async(app, state)
        else:
            await asyncio.to_thread(start, app, state)
        await original(self)

    return connect_async


def _patch_socket_mode() -> None:
    global _protected_apps
    _protected_apps += 1
    if _originals:
        return
    for cls, name, wrap in (
        (BaseSocketModeHandler, "connect", _wrap_connect),
        (AsyncBaseSocketModeHandler, "connect_async", _wrap_connect_async),
    ):
        original = cls.__dict__[name]
        _originals[(cls, name)] = original
        setattr(cls, name, wrap(original))


def _unpatch_socket_mode() -> None:
    global _protected_apps
    _protected_apps = max(_protected_apps - 1, 0)
    if _protected_apps:
        return
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()


# ------------------------------------------------------------------ public
def hook(app: App | AsyncApp, settings: Settings) -> App | AsyncApp:
    """Put the guard on ``app`` (not guarded yet): its class, its listener runner."""
    is_async = isinstance(app, AsyncApp)
    if not is_async and not isinstance(app, App):
        raise TypeError(f"restart_guard's slack adapter guards App and AsyncApp, not {app!r}")
    original = type(app)
    state = BotState(Lifecycle(PLATFORM, settings), original, is_async)
    track(app.listener_runner, state)
    answer_presses(app, state)
    mixin: type = _GuardedAsyncApp if is_async else _GuardedApp
    namespace = {"_restart_guard": state, "__module__": original.__module__}
    app.__class__ = type(original.__name__, (mixin, original), namespace)
    _patch_socket_mode()
    return app


def unhook(app: App | AsyncApp) -> App | AsyncApp:
    """Undo :func:`hook` on a guarded app that is not running."""
    state = state_of(app)
    assert state is not None
    if state.lifecycle.stage in (Stage.STARTING, Stage.RUNNING, Stage.STOPPING):
        raise RuntimeError(
            "restart_guard.unprotect needs a stopped app: call "
            "restart_guard.adapters.slack.shutdown(app) (or shutdown_async) first"
        )
    untrack(app.listener_runner)
    stop_answering_presses(app)
    app.__class__ = state.original_class
    _unpatch_socket_mode()
    return app
