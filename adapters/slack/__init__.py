"""slack-bolt (``App`` and ``AsyncApp``) adapter.

Usage — the only change to a Bolt app is the import and the decorator::

    import restart_guard
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    @restart_guard.protect(marker_dir="/var/lib/mybot/restart-guard", drain_timeout=20)
    def build_app() -> App:                          # or AsyncApp
        app = App(token=os.environ["SLACK_BOT_TOKEN"])
        @app.event("app_mention")
        def answer(event, say): ...
        return app

    SocketModeHandler(build_app(), os.environ["SLACK_APP_TOKEN"]).start()

Every way Bolt runs an app is covered without further code:

=================================================  ==========================================
run by                                             start-up / stop signal
=================================================  ==========================================
``SocketModeHandler(app).start()`` / ``connect()``   notices before the connection opens;
                                                    SIGTERM/SIGINT: pre-mark, close the
                                                    connection, drain, exit 0
``await AsyncSocketModeHandler(app).start_async()``  the same, on the app's event loop
``App.start(port)`` (http.server)                  notices before the port is bound;
                                                    SIGTERM/SIGINT: pre-mark, answer new
                                                    requests 503 (Slack retries them),
                                                    drain, exit 0
``AsyncApp.start(port)`` (aiohttp ``run_app``)     aiohttp's own signal handling, with the
                                                    pre-mark first; drain in ``on_shutdown``
``web.run_app(app.web_app())`` / aiohttp runners   aiohttp ``on_startup`` / ``on_shutdown``
=================================================  ==========================================

Inside your own web server (FastAPI, Starlette, Flask, Django ... through
Bolt's framework adapters) no signal reaches restart-guard: the server owns
them. Add one call to the server's shutdown hook, and — so that notices go
out at boot rather than with the first request — one to its startup hook::

    from restart_guard.adapters import slack as slack_guard

    @asynccontextmanager                                  # FastAPI + AsyncApp
    async def lifespan(_: FastAPI):
        await slack_guard.startup_async(bolt_app)
        yield
        await slack_guard.shutdown_async(bolt_app)

    slack_guard.startup(bolt_app)                         # Flask + App (any WSGI server)
    atexit.register(slack_guard.shutdown, bolt_app)

What happens, in order:

1. **Start-up** (first ``connect``, ``start``, :func:`startup` or request):
   open the marker store — by default a folder named after the workspace
   and bot id from ``auth.test`` — claim the markers a dead process left,
   post the notices with ``chat.postMessage(channel, thread_ts)`` (waiting up
   to 5 s; the rest follow in the background), then take events.
2. **Every listener run** — sync listeners in Bolt's thread pool, async
   listeners in their tasks, lazy listeners — is tracked from
   ``listener_runner.run()`` (before Bolt acks the request) until Bolt's
   listener completion handler runs; the conversation (team, channel,
   thread; a top-level message's own ``ts`` is the thread root) is marked
   write-ahead in the background, with no disk I/O on the listener's path.
3. **Stop**: every conversation in flight is durably marked in one batch,
   intake stops, running listeners get up to ``drain_timeout``; a completed
   drain clears this process's markers and exits 0; a timed-out one leaves
   them for the next start and exits 0 at once.

``channel_not_found``, ``not_in_channel``, ``is_archived``,
``account_inactive`` drop a marker with one log line; ``ratelimited`` (429)
is retried after ``Retry-After``; other errors are retried with backoff.
With ``replay=True`` the stored event body is dispatched through the app
again after the notice (as a Socket Mode request, so no signature is
needed); should Slack deliver the same event again, it is acked and not
run twice.
"""

from __future__ import annotations

import asyncio

from restart_guard.errors import AdapterNotAvailable

try:
    from slack_bolt import App
    from slack_bolt.async_app import AsyncApp
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(
        "restart-guard's slack adapter needs slack-bolt and aiohttp: "
        'pip install "restart-guard[slack]"'
    ) from exc

from ._install import install, state_of, uninstall
from ._lifecycle import (
    PROCESS_SIGNALS,
    loop_signals,
    shutdown_async_state,
    shutdown_state,
    startup_async_state,
    startup_state,
)
from ._state import PLATFORM, AppState
from ._tracking import conversation_of

__all__ = [
    "PLATFORM",
    "conversation_of",
    "install",
    "shutdown",
    "shutdown_async",
    "startup",
    "startup_async",
    "uninstall",
]


def _protected(app: object, want_async: bool, name: str) -> AppState:
    state = state_of(app)
    if state is None:
        raise TypeError(f"{name}() needs an app protected with restart_guard.protect, got {app!r}")
    if state.is_async != want_async:
        other = f"await {name}_async(app)" if state.is_async else f"{name[:-6]}(app)"
        raise TypeError(f"{name}() is for {'AsyncApp' if want_async else 'App'}; use {other}")
    return state


def startup(app: App) -> None:
    """Claim the markers of a dead process and post their notices; for your server's startup.

    Blocks until the notices are out (at most 5 s; the rest continue in the
    background). Idempotent; the first request would do it too, later.
    """
    startup_state(app, _protected(app, False, "startup"))


def shutdown(app: App) -> bool:
    """Mark what runs durably, stop intake, drain, close; for your server's shutdown hook.

    Returns True when every listener finished within ``drain_timeout``
    (markers cleared), False when the drain timed out (markers left for the
    next start). Requests dispatched after this call are answered 503.
    """
    state = _protected(app, False, "shutdown")
    drained = shutdown_state(state)
    PROCESS_SIGNALS.unregister(state)
    return drained


async def startup_async(app: AsyncApp) -> None:
    """:func:`startup` for an ``AsyncApp``, from its event loop."""
    await startup_async_state(app, _protected(app, True, "startup_async"))


async def shutdown_async(app: AsyncApp) -> bool:
    """:func:`shutdown` for an ``AsyncApp``, from its event loop."""
    state = _protected(app, True, "shutdown_async")
    drained = await shutdown_async_state(state)
    loop_signals(asyncio.get_running_loop()).unregister(state)
    return drained
