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
   Bolt's acknowledgement (the Socket Mode envelope ack, the HTTP 200) is
   sent once that marker is durable — one fsync, a few ms of Slack's 3 s —
   so an event is either marked or retried by Slack, never neither.
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

With ``replay="ask"`` the notice carries Block Kit *Continue* / *Dismiss*
buttons. Their presses (``block_actions``, Socket Mode or HTTP) are taken by
restart-guard's middleware right after Bolt's request verification and
authorization, acknowledged at once and never passed to the app's
middleware or listeners (``_press``); the asker's press edits the notice
(``chat.update``) and, for *Continue*, replays the turn; anyone else is
answered with ``chat.postEphemeral``.
"""

from __future__ import annotations

from restart_guard import Conversation, Settings
from restart_guard._adapter import Adapter
from restart_guard._registry import SLACK
from restart_guard.errors import AdapterNotAvailable

try:
    from slack_bolt import App
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.request import BoltRequest
    from slack_bolt.request.async_request import AsyncBoltRequest
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(SLACK.missing(exc)) from exc

from ._install import hook, state_of, unhook
from ._lifecycle import start, start_async, stop, stop_async
from ._link import AsyncLink, SyncLink
from ._state import PLATFORM, BotState
from ._tracking import conversation_of

__all__ = [
    "ADAPTER",
    "PLATFORM",
    "SlackAdapter",
    "conversation_of",
    "shutdown",
    "shutdown_async",
    "startup",
    "startup_async",
    "state_of",
]


class SlackAdapter(Adapter["App | AsyncApp"]):
    """slack-bolt's ``App`` and ``AsyncApp``: their class, listener runner and Bolt's runners."""

    spec = SLACK

    def is_installed(self, bot: object) -> bool:
        return state_of(bot) is not None

    def _install(self, bot: App | AsyncApp, settings: Settings) -> App | AsyncApp:
        return hook(bot, settings)

    def _uninstall(self, bot: App | AsyncApp) -> App | AsyncApp:
        return unhook(bot)

    def conversation_of(self, event: object) -> Conversation | None:
        if not isinstance(event, (BoltRequest, AsyncBoltRequest)):
            return None
        return conversation_of(event)

    def link_for(self, bot: App | AsyncApp) -> SyncLink | AsyncLink:
        state = _state(bot)
        return AsyncLink(bot, state) if isinstance(bot, AsyncApp) else SyncLink(bot, state)


#: The adapter :func:`restart_guard.protect` uses for slack-bolt.
ADAPTER = SlackAdapter()


def _state(app: object) -> BotState:
    state = state_of(app)
    if state is None:
        raise TypeError(f"needs an app protected with restart_guard.protect, got {app!r}")
    return state


def _protected(app: object, want_async: bool, name: str) -> BotState:
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
    start(app, _protected(app, False, "startup"))


def shutdown(app: App) -> bool:
    """Mark what runs durably, stop intake, drain, close; for your server's shutdown hook.

    Returns True when every listener finished within ``drain_timeout``
    (markers cleared), False when the drain timed out (markers left for the
    next start). Requests dispatched after this call are answered 503.
    """
    return stop(_protected(app, False, "shutdown"))


async def startup_async(app: AsyncApp) -> None:
    """:func:`startup` for an ``AsyncApp``, from its event loop."""
    await start_async(app, _protected(app, True, "startup_async"))


async def shutdown_async(app: AsyncApp) -> bool:
    """:func:`shutdown` for an ``AsyncApp``, from its event loop."""
    return await stop_async(_protected(app, True, "shutdown_async"))
