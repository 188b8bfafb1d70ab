"""Loopback stand-in of the Slack platform: Web API, Socket Mode and signed Events API.

:class:`SlackStandIn` is an aiohttp server on 127.0.0.1 that real slack-bolt
apps (``App`` and ``AsyncApp``) and real slack_sdk clients talk to. It replaces
only Slack itself; nothing in the app is mocked.

What it serves
--------------
* ``{url}/api/<method>`` — the Web API (form, JSON or query parameters; the
  token in ``Authorization: Bearer ...``). ``auth.test``,
  ``apps.connections.open`` (app token only), ``chat.postMessage``,
  ``chat.update`` and ``chat.postEphemeral`` behave like Slack (messages by
  channel and ``ts``, Block Kit checked, ephemerals only to members: see
  ``_messages``); every other method answers ``{"ok": true}`` (plus a plausible
  result for a few common ones, or whatever :meth:`SlackStandIn.set_method_result`
  set), so a listener that calls ``users.info`` does not crash. Every call is
  in :attr:`~restart_guard.testing._standin.StandIn.calls`; every
  ``chat.postMessage`` is in ``sent`` as a
  :class:`~restart_guard.testing._standin.SentMessage` (``chat`` = channel,
  ``thread`` = ``thread_ts`` or None).
* ``ws://{host}:{port}/link/?ticket=...`` — Socket Mode, the URL that
  ``apps.connections.open`` hands out: ``hello`` on connect, ``events_api``
  envelopes, acks recorded, client pings answered.
* :meth:`SlackStandIn.post_event` — the other direction for HTTP-mode apps: a
  correctly signed Events API request POSTed to the app's own endpoint.
* :meth:`SlackStandIn.press_button` — a user presses a Block Kit button: a
  ``block_actions`` payload over Socket Mode (an ``interactive`` envelope) or
  POSTed, signed, to the app's Request URL; its ``response_url`` works too.
  :meth:`~SlackStandIn.message`, :meth:`~SlackStandIn.buttons` and
  :attr:`~SlackStandIn.ephemerals` show what users see afterwards.

In-process (asyncio), Socket Mode with ``AsyncApp``::

    from slack_bolt.async_app import AsyncApp
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.web.async_client import AsyncWebClient
    from restart_guard.testing.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackStandIn

    async with SlackStandIn() as api:
        app = AsyncApp(
            client=AsyncWebClient(token=BOT_TOKEN, base_url=api.api_url),
            signing_secret=SIGNING_SECRET,
        )
        ...  # listeners
        handler = AsyncSocketModeHandler(app, APP_TOKEN)  # uses app.client, so api.api_url
        await handler.connect_async()
        try:
            event = api.inject_message("C0123", "hello")
            # The waits block: on the stand-in's own loop run them in a thread.
            await asyncio.to_thread(api.wait_for_sent, lambda m: m.chat == "C0123")
        finally:
            await handler.close_async()

In a background thread, Socket Mode with a synchronous ``App``::

    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    with SlackStandIn.running() as api:
        app = App(  # calls auth.test here, so the stand-in must already run
            client=WebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )
        handler = SocketModeHandler(app, api.app_token)  # connects via app.client
        handler.connect()  # start() would block forever
        api.wait_for_connection()
        try:
            event = api.inject_message("C0123", "hello")
            api.wait_for_ack(event)
            api.wait_for_sent(lambda m: m.thread == event["ts"])
        finally:
            handler.close()  # first: a client that outlives the stand-in keeps reconnecting

Both Socket Mode handlers take the Web API base URL from the app's client
(or their ``web_client=`` argument): ``apps.connections.open`` is called with
the ``xapp-`` token there, and the client connects to the ``ws://`` URL it
returns. Nothing else needs configuring.

Socket Mode, as the stand-in plays it: ``hello`` first, then envelopes in
injection order (round-robin over several connections; held back while none
is open). Bolt acks an envelope before the listener runs — and never acks one
no listener matched, so do not ``wait_for_ack`` on those. An envelope left
unacknowledged when its connection closes is sent again on the next one with
``retry_attempt`` + 1, as Slack does. The stand-in pings every client every
``ping_interval`` seconds and answers their pings; :meth:`SlackStandIn.disconnect_all`
plays Slack's connection refresh.

HTTP mode: run the app's own server (``App.start(port=...)`` in a thread or a
subprocess, ``AsyncApp.web_app()`` on an aiohttp runner, ``AsyncApp.start(port=...)``
in a subprocess: it installs signal handlers) and post to it::

    status, body = api.post_event(
        "http://127.0.0.1:3000/slack/events", api.message_event("C0123", "hi")
    )  # signed with api.signing_secret; 200 from Bolt, 401 with a wrong secret

A bot in a subprocess: pass :meth:`SlackStandIn.env` into its environment. It
sets Bolt's own variables (``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``,
``SLACK_SIGNING_SECRET``, read by ``App()`` and the Socket Mode handlers) and
``RESTART_GUARD_SLACK_API`` (:data:`ENV_API`), which slack_sdk does not read
by itself — the bot passes it on::

    # the bot
    app = App(client=WebClient(token=os.environ["SLACK_BOT_TOKEN"],
                               base_url=api_url_from_env()))
    SocketModeHandler(app).start()

    # the test
    with SlackStandIn.running() as api:
        proc = subprocess.Popen([sys.executable, "bot.py"], env={**os.environ, **api.env()})
        api.wait_for_connection(timeout=30)
        api.inject_message("C0123", "hello")

slack_sdk routes every connection through ``HTTPS_PROXY``/``HTTP_PROXY`` when
they are set and ignores ``NO_PROXY``; ``env()`` therefore sets them empty
(slack_sdk reads empty as unset) unless ``clear_proxy=False``.

Waiting: every ``wait_for_*`` blocks the calling thread. With the stand-in on
the test's own event loop (``async with``), call them through
``asyncio.to_thread``; the stand-in's own ``wait_for_connection``,
``wait_for_ack`` and ``post_event`` raise ``RuntimeError`` instead of
deadlocking when called on its loop.
"""

# The package is split by job: _model (identity constants, the Socket Mode
# connection), _workspace (shared state), _messages (channels' messages, members,
# ephemerals), _events (payload builders), _web_api, _socket_mode, _http_events,
# _interactivity (button presses) and _server (SlackStandIn, which combines them).
from .._standin import Failure, SentMessage
from .._standin import StandIn as StandIn  # importable from here before the split
from ._http_events import sign_request
from ._interactivity import ButtonPress
from ._messages import Ephemeral
from ._model import (
    APP_ID,
    APP_TOKEN,
    BOT_ID,
    BOT_NAME,
    BOT_TOKEN,
    BOT_USER_ID,
    DEFAULT_API_URL,
    ENV_API,
    ENV_APP_TOKEN,
    ENV_BOT_TOKEN,
    ENV_SIGNING_SECRET,
    SIGNING_SECRET,
    TEAM_ID,
    TEAM_NAME,
    USER_ID,
    VERIFICATION_TOKEN,
    api_url_from_env,
)
from ._server import SlackStandIn

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_NAME",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "DEFAULT_API_URL",
    "ENV_API",
    "ENV_APP_TOKEN",
    "ENV_BOT_TOKEN",
    "ENV_SIGNING_SECRET",
    "SIGNING_SECRET",
    "TEAM_ID",
    "TEAM_NAME",
    "USER_ID",
    "VERIFICATION_TOKEN",
    "ButtonPress",
    "Ephemeral",
    "Failure",
    "SentMessage",
    "SlackStandIn",
    "api_url_from_env",
    "sign_request",
]
