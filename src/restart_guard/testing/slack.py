"""Loopback stand-in of the Slack platform: Web API, Socket Mode and signed Events API.

:class:`SlackStandIn` is an aiohttp server on 127.0.0.1 that real slack-bolt
apps (``App`` and ``AsyncApp``) and real slack_sdk clients talk to. It replaces
only Slack itself; nothing in the app is mocked.

What it serves
--------------
* ``{url}/api/<method>`` — the Web API (form, JSON or query parameters; the
  token in ``Authorization: Bearer ...``). ``auth.test``,
  ``apps.connections.open`` (app token only) and ``chat.postMessage`` behave
  like Slack; every other method answers ``{"ok": true}`` (plus a plausible
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

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from ._standin import Failure, SentMessage, StandIn

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
    "SlackStandIn",
    "api_url_from_env",
    "sign_request",
]

#: The bot token (``xoxb-``) the stand-in accepts for Web API calls by default.
BOT_TOKEN = "xoxb-1000000000-2000000000000-StandInBotTokenXyz"
#: The app-level token (``xapp-``) the stand-in accepts for ``apps.connections.open``.
APP_TOKEN = "xapp-1-A0STANDIN-3000000000000-StandInAppTokenXyz"
#: The signing secret :meth:`SlackStandIn.post_event` signs with by default.
SIGNING_SECRET = "8f7e6d5c4b3a29180f7e6d5c4b3a2918"
#: The legacy verification token put in every event payload's ``token`` field.
VERIFICATION_TOKEN = "StandInVerificationToken"
#: Workspace (team) id of the default install.
TEAM_ID = "T0STANDIN"
#: Workspace name (``auth.test``'s ``team``).
TEAM_NAME = "Stand-in Workspace"
#: The app's id (``api_app_id`` in event payloads).
APP_ID = "A0STANDIN"
#: The bot's bot id (``auth.test``'s ``bot_id``).
BOT_ID = "B0STANDIN"
#: The bot's user id (``auth.test``'s ``user_id``; the target of ``<@...>`` mentions).
BOT_USER_ID = "U0STANDINBOT"
#: The bot user's name (``auth.test``'s ``user``).
BOT_NAME = "standin-bot"
#: The human user injected messages come from unless told otherwise.
USER_ID = "U0STANDINUSR"

#: Environment variable with the Web API base URL (``.../api/``) for a bot in a subprocess.
ENV_API = "RESTART_GUARD_SLACK_API"
#: Bolt's variable for the bot token (``App()`` reads it), set by :meth:`SlackStandIn.env`.
ENV_BOT_TOKEN = "SLACK_BOT_TOKEN"
#: Bolt's variable for the app token (the Socket Mode handlers read it).
ENV_APP_TOKEN = "SLACK_APP_TOKEN"
#: Bolt's variable for the signing secret (``App()`` reads it).
ENV_SIGNING_SECRET = "SLACK_SIGNING_SECRET"
#: slack_sdk's default base URL, what :func:`api_url_from_env` falls back to.
DEFAULT_API_URL = "https://slack.com/api/"

# Slack retries an unacknowledged event up to three times, then gives up.
_MAX_RETRIES = 3
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def api_url_from_env(default: str = DEFAULT_API_URL) -> str:
    """The Web API base URL from ``RESTART_GUARD_SLACK_API``, else ``default``.

    For bots that run against a stand-in in tests and against Slack in
    production: ``WebClient(token=..., base_url=api_url_from_env())``.
    """
    return os.environ.get(ENV_API) or default


def sign_request(body: str | bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers that make ``body`` a correctly signed Slack request.

    ``X-Slack-Signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``
    keyed with the signing secret; ``X-Slack-Request-Timestamp`` is ``timestamp``
    (default: now; Bolt rejects one more than 5 minutes off). ``Content-Type`` is
    ``application/json``, what Slack sends for Events API requests.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(
        secret.encode("utf-8"), b"v0:" + str(ts).encode("ascii") + b":" + raw, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


class _Connection:
    """One Socket Mode websocket and the queue that keeps its envelopes in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.gone = asyncio.Event()
        # Written to this socket, not acknowledged yet (insertion order = delivery order).
        self.unacked: dict[str, dict[str, Any]] = {}


class SlackStandIn(StandIn):
    """Loopback Slack: Web API, Socket Mode websocket and signed Events API sender.

    Run it with ``async with SlackStandIn() as api:`` on the test's loop or
    ``with SlackStandIn.running() as api:`` in a background thread (see the
    module documentation for building ``App``/``AsyncApp`` against it). The
    keyword arguments override the identity (tokens, secret, ids; the
    defaults are the module constants); ``enterprise_id`` makes it an
    Enterprise Grid install (``auth.test`` and every event payload then carry
    it). ``ping_interval`` is how often it pings each Socket Mode client;
    ``redeliver`` turns off the redelivery of unacknowledged envelopes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        signing_secret: str = SIGNING_SECRET,
        team_id: str = TEAM_ID,
        team_name: str = TEAM_NAME,
        enterprise_id: str | None = None,
        app_id: str = APP_ID,
        bot_id: str = BOT_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_name: str = BOT_NAME,
        user_id: str = USER_ID,
        ping_interval: float | None = 0.5,
        redeliver: bool = True,
    ) -> None:
        super().__init__(host, port)
        #: Seconds between the stand-in's own websocket pings (None: never). Slack's
        #: servers ping too; a short interval also keeps slack_sdk's built-in client's
        #: close() fast, which otherwise waits out its reader's 3-second socket timeout.
        self.ping_interval = ping_interval
        #: Whether envelopes left unacknowledged when their connection closes go out
        #: again (see :meth:`inject_event`).
        self.redeliver = redeliver
        #: Bot token (``xoxb-``) accepted for every Web API method but ``apps.connections.open``.
        self.bot_token = bot_token
        #: App-level token (``xapp-``) accepted only for ``apps.connections.open``.
        self.app_token = app_token
        #: Secret :meth:`post_event` signs with by default.
        self.signing_secret = signing_secret
        #: Workspace id (``auth.test``'s ``team_id``, events' ``team_id``).
        self.team_id = team_id
        #: Workspace name (``auth.test``'s ``team``).
        self.team_name = team_name
        #: Enterprise Grid org id, or None for a plain workspace.
        self.enterprise_id = enterprise_id
        #: The app's id (``api_app_id`` in events, ``connection_info.app_id`` in hello).
        self.app_id = app_id
        #: The bot's bot id (``auth.test``'s ``bot_id``).
        self.bot_id = bot_id
        #: The bot's user id (``auth.test``'s ``user_id``; Bolt ignores events from it).
        self.bot_user_id = bot_user_id
        #: The bot user's name (``auth.test``'s ``user``).
        self.bot_name = bot_name
        #: Default author of injected messages.
        self.user_id = user_id

        # Under self._lock (shared with the base class, so waits see every change):
        self._connections: list[_Connection] = []
        self._total_connections = 0
        self._acks: dict[str, dict[str, Any]] = {}
        self._ack_order: list[str] = []
        self._delivered: list[str] = []
        self._channel_errors: dict[str, str] = {}
        self._method_results: dict[str, dict[str, Any]] = {}
        self._tickets: set[str] = set()
        self._envelope_by_event: dict[tuple[str, str], str] = {}
        self._last_ts_us = 0
        self._stopping = False
        # Touched only on the stand-in's loop:
        self._live: set[_Connection] = set()
        self._pending: deque[dict[str, Any]] = deque()
        self._next_connection = 0
        self._tasks: set[asyncio.Future[None]] = set()  # keeps disconnect tasks alive

    # ---------------------------------------------------------------- addresses
    @property
    def api_url(self) -> str:
        """Web API base URL, ``http://host:port/api/`` — ``WebClient(base_url=...)``."""
        return f"{self.url}/api/"

    def env(self, *, clear_proxy: bool = True) -> dict[str, str]:
        """Environment for a bot in a subprocess: base URL, tokens, signing secret.

        ``{ENV_API: api_url, "SLACK_BOT_TOKEN": ..., "SLACK_APP_TOKEN": ...,
        "SLACK_SIGNING_SECRET": ...}``; merge it into ``os.environ``. With
        ``clear_proxy`` the proxy variables are set empty, because slack_sdk
        would send even loopback traffic through a configured proxy.
        """
        result = {
            ENV_API: self.api_url,
            ENV_BOT_TOKEN: self.bot_token,
            ENV_APP_TOKEN: self.app_token,
            ENV_SIGNING_SECRET: self.signing_secret,
        }
        if clear_proxy:
            result.update(dict.fromkeys(_PROXY_VARS, ""))
        return result

    # ------------------------------------------------------------------ record
    @property
    def connected_count(self) -> int:
        """Socket Mode connections open right now (counted once ``hello`` was sent)."""
        with self._lock:
            return len(self._connections)

    @property
    def total_connections(self) -> int:
        """Socket Mode connections ever opened, reconnections included."""
        with self._lock:
            return self._total_connections

    @property
    def acked_envelopes(self) -> list[str]:
        """Envelope ids the clients acknowledged, in the order the acks arrived."""
        with self._lock:
            return list(self._ack_order)

    @property
    def acks(self) -> dict[str, dict[str, Any]]:
        """Every ack as the client sent it (``envelope_id``, optional ``payload``), by id."""
        with self._lock:
            return dict(self._acks)

    @property
    def delivered_envelopes(self) -> list[str]:
        """Envelope ids written to a websocket, oldest first (acked or not)."""
        with self._lock:
            return list(self._delivered)

    def wait_for_connection(self, timeout: float = 15.0, count: int = 1) -> int:
        """Block until at least ``count`` Socket Mode connections are open; return how many.

        A connection counts once the stand-in has sent it ``hello``, so events
        injected afterwards reach it. Raises ``TimeoutError``.
        """
        self._not_on_loop("wait_for_connection")
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._connections) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"waited {timeout}s for {count} Socket Mode connection(s); "
                        f"open: {len(self._connections)}, ever: {self._total_connections}"
                    )
                self._changed.wait(left)
            return len(self._connections)

    def wait_for_ack(
        self, envelope: str | Mapping[str, Any], timeout: float = 15.0
    ) -> dict[str, Any]:
        """Block until the envelope is acknowledged; return the ack message.

        ``envelope`` is an envelope id (from :meth:`inject_event`) or an event
        dict returned by :meth:`inject_message` / :meth:`inject_app_mention`.
        Note that Bolt acks only events some listener matched. Raises ``TimeoutError``.
        """
        self._not_on_loop("wait_for_ack")
        envelope_id = envelope if isinstance(envelope, str) else self.envelope_id_of(envelope)
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"waited {timeout}s for the ack of {envelope_id}; delivered: "
                        f"{self._delivered!r}, acked: {self._ack_order!r}"
                    )
                self._changed.wait(left)
            return self._acks[envelope_id]

    def envelope_id_of(self, event: Mapping[str, Any]) -> str:
        """The envelope id an injected event went out in (KeyError if never injected)."""
        key = self._event_key(event)
        with self._lock:
            if key is not None and key in self._envelope_by_event:
                return self._envelope_by_event[key]
        raise KeyError(f"no envelope was injected for event {dict(event)!r}")

    # ---------------------------------------------------------------- failures
    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Make every ``chat.postMessage`` to ``channel`` fail with Slack's ``error``.

        HTTP 200 ``{"ok": false, "error": error}`` — slack_sdk raises
        ``SlackApiError`` with ``e.response["error"] == error``. For the
        lasting conditions: ``channel_not_found``, ``not_in_channel``,
        ``is_archived``, ``account_inactive`` ... Lasts until :meth:`heal_channel`.
        """
        with self._lock:
            self._channel_errors[str(channel)] = error

    def heal_channel(self, channel: str) -> None:
        """Undo :meth:`fail_channel` for ``channel``."""
        with self._lock:
            self._channel_errors.pop(str(channel), None)

    def rate_limit(
        self,
        channel: str | None = None,
        retry_after: int = 1,
        times: int = 1,
        *,
        method: str = "chat.postMessage",
    ) -> None:
        """Answer the next ``times`` matching calls with HTTP 429, like Slack's rate limiter.

        Body ``{"ok": false, "error": "ratelimited"}``, header ``Retry-After:
        retry_after``. ``channel`` None matches any channel. A default
        ``WebClient`` has no retry handler for 429 and raises ``SlackApiError``
        (``e.response.status_code == 429``, ``e.response.headers["Retry-After"]``);
        one built with ``RateLimitErrorRetryHandler`` sleeps and retries.
        """
        self.fail(
            Failure(
                method=method,
                status=429,
                body={"ok": False, "error": "ratelimited"},
                chat=None if channel is None else str(channel),
                times=times,
                headers={"Retry-After": str(retry_after)},
            )
        )

    def fail_next(
        self,
        error: str = "internal_error",
        *,
        method: str = "chat.postMessage",
        channel: str | None = None,
        times: int = 1,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``.

        ``channel`` limits it to calls with that ``channel`` parameter;
        ``status`` and ``headers`` shape the HTTP answer (Slack sends most
        errors with 200; ``fatal_error`` and friends sometimes with 5xx).
        """
        self.fail(
            Failure(
                method=method,
                status=status,
                body={"ok": False, "error": error},
                chat=None if channel is None else str(channel),
                times=times,
                headers=dict(headers or {}),
            )
        )

    def set_method_result(self, method: str, result: Mapping[str, Any]) -> None:
        """Answer every later call of ``method`` with ``{"ok": true, **result}``.

        For Web API methods the stand-in does not model (``users.info`` with a
        particular profile, ``conversations.replies`` with history ...).
        """
        with self._lock:
            self._method_results[method] = dict(result)

    # ---------------------------------------------------------- building events
    def next_ts(self) -> str:
        """A fresh message timestamp, ``"1700000000.000100"``-style, strictly increasing.

        Near the wall clock (Slack's ``ts`` is a time) but never repeating, so it
        also serves as a unique message id.
        """
        with self._lock:
            now_us = int(time.time() * 1_000_000)
            self._last_ts_us = max(now_us, self._last_ts_us + 1)
            us = self._last_ts_us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def message_event(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        ts: str | None = None,
        channel_type: str = "channel",
        team: str | None = None,
    ) -> dict[str, Any]:
        """A ``message`` event as Slack sends it for a user's message (not delivered).

        ``channel_type`` is ``channel``, ``group``, ``im`` or ``mpim``;
        ``thread_ts`` makes it a reply in that thread; ``ts`` defaults to
        :meth:`next_ts`. Use with :meth:`inject_event` or :meth:`post_event`.
        """
        ts = ts or self.next_ts()
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": user or self.user_id,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": team or self.team_id,
            "channel_type": channel_type,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": _rich_text_blocks(text),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    def app_mention_event(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        ts: str | None = None,
        team: str | None = None,
    ) -> dict[str, Any]:
        """An ``app_mention`` event (not delivered); ``<@bot_user_id>`` is prefixed if missing."""
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}"
        ts = ts or self.next_ts()
        event: dict[str, Any] = {
            "type": "app_mention",
            "channel": channel,
            "user": user or self.user_id,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": team or self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": _rich_text_blocks(text),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    def event_callback(
        self,
        event: Mapping[str, Any],
        *,
        team: str | None = None,
        enterprise: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """The Events API body (``type: event_callback``) that carries ``event``.

        ``team`` defaults to the event's ``team`` or the stand-in's team id,
        ``enterprise`` to the stand-in's enterprise id. ``authorizations``
        names the bot, as Slack's does; Bolt reads team and enterprise from it.
        """
        team_id = team or event.get("team") or self.team_id
        enterprise_id = enterprise if enterprise is not None else self.enterprise_id
        body: dict[str, Any] = {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": enterprise_id,
            "api_app_id": self.app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": enterprise_id,
                    "team_id": team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + uuid.uuid4().hex,
        }
        if enterprise_id is not None:
            body["enterprise_id"] = enterprise_id
        return body

    # ------------------------------------------------------ Socket Mode delivery
    def inject_event(
        self,
        event: Mapping[str, Any],
        *,
        team: str | None = None,
        enterprise: str | None = None,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Deliver ``event`` over Socket Mode in an ``events_api`` envelope; return its id.

        ``event`` is a bare event (wrapped with :meth:`event_callback`) or a
        whole ``event_callback`` body. Thread-safe and non-blocking; delivery
        happens on the stand-in's loop. With several connections, envelopes go
        round-robin; with none, they wait for the next connection.

        Like Slack, an envelope still unacknowledged when its connection closes
        is delivered again (same ``envelope_id``, ``retry_attempt`` + 1,
        ``retry_reason`` ``"timeout"``, at most 3 retries) unless the stand-in
        was built with ``redeliver=False``. Unlike Slack, nothing is retried
        on a timer while the connection stays up: Bolt never acks an event no
        listener matched, and a retry every few seconds would only repeat it.
        ``retry_attempt``/``retry_reason`` and a reused ``envelope_id`` let a
        test send such a redelivery itself.
        """
        if event.get("type") == "event_callback":
            payload = dict(event)
        else:
            payload = self.event_callback(event, team=team, enterprise=enterprise)
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        key = self._event_key(payload.get("event") or {})
        with self._lock:
            if key is not None:
                self._envelope_by_event[key] = envelope_id
        self.call_in_loop(lambda: self._deliver(envelope))
        return envelope_id

    def inject_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        ts: str | None = None,
        channel_type: str = "channel",
        team: str | None = None,
        enterprise: str | None = None,
    ) -> dict[str, Any]:
        """A user posts ``text`` in ``channel``: deliver the ``message`` event; return it.

        See :meth:`message_event` for the arguments. The returned event's
        ``ts`` is the new message's id (the thread root for a reply); pass the
        event to :meth:`wait_for_ack`.
        """
        event = self.message_event(
            channel,
            text,
            user=user,
            thread_ts=thread_ts,
            ts=ts,
            channel_type=channel_type,
            team=team,
        )
        self.inject_event(event, enterprise=enterprise)
        return event

    def inject_app_mention(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        ts: str | None = None,
        team: str | None = None,
        enterprise: str | None = None,
    ) -> dict[str, Any]:
        """A user mentions the bot: deliver an ``app_mention`` event; return it.

        Only the ``app_mention`` event is sent (Slack would also send a
        ``message`` event to an app subscribed to channel messages).
        """
        event = self.app_mention_event(
            channel, text, user=user, thread_ts=thread_ts, ts=ts, team=team
        )
        self.inject_event(event, enterprise=enterprise)
        return event

    def disconnect_all(self, reason: str | None = "refresh_requested", grace: float = 0.0) -> int:
        """Drop every Socket Mode connection; return how many there were.

        With ``reason``, each client first gets Slack's ``{"type":
        "disconnect", "reason": reason}`` (slack_sdk clients then reconnect at
        once) and ``grace`` seconds to close the socket itself; then the
        stand-in closes it (1001, going away). ``connected_count`` drops to 0
        at once, so ``wait_for_connection()`` afterwards waits for the
        reconnection. Envelopes not yet written or acknowledged go to the next
        connection.

        Without ``reason`` (a bare close), slack_sdk's built-in client does not
        reconnect at once: its monitor does, within its ``ping_interval`` (10 s
        in Bolt's ``SocketModeHandler``). The aiohttp client reconnects at once
        either way, sometimes twice (it then closes the extra connection).
        """
        with self._changed:
            dropped = list(self._connections)
            self._connections.clear()
            self._changed.notify_all()

        def later() -> None:
            for conn in dropped:
                task = asyncio.ensure_future(self._drop(conn, reason, grace))
                # The loop keeps only weak references to tasks.
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        if dropped:
            self.call_in_loop(later)
        return len(dropped)

    # ------------------------------------------------------------ HTTP delivery
    def post_event(
        self,
        app_url: str,
        event: Mapping[str, Any],
        *,
        signing_secret: str | None = None,
        timestamp: int | None = None,
        team: str | None = None,
        enterprise: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST a signed Events API request to an HTTP-mode app; return ``(status, body)``.

        ``app_url`` is the app's endpoint (``http://127.0.0.1:PORT/slack/events``
        for Bolt's defaults), ``event`` a bare event or a whole
        ``event_callback`` body. Signed with ``signing_secret`` (default: the
        stand-in's) at ``timestamp`` (default: now); Bolt answers 200 (it acks
        before the listener runs) or 401 for a bad signature. ``retry_num``
        and ``retry_reason`` add Slack's ``X-Slack-Retry-*`` headers. Blocks;
        works without the stand-in running.
        """
        self._not_on_loop("post_event")
        data, headers = self._signed(event, signing_secret, timestamp, team, enterprise)
        headers.update(_retry_headers(retry_num, retry_reason))
        request = urllib.request.Request(app_url, data=data, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                return int(exc.code), exc.read().decode("utf-8", "replace")

    async def post_event_async(
        self,
        app_url: str,
        event: Mapping[str, Any],
        *,
        signing_secret: str | None = None,
        timestamp: int | None = None,
        team: str | None = None,
        enterprise: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """:meth:`post_event` for async tests (an ``AsyncApp`` on the same loop)."""
        data, headers = self._signed(event, signing_secret, timestamp, team, enterprise)
        headers.update(_retry_headers(retry_num, retry_reason))
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(app_url, data=data, headers=headers) as response,
        ):
            return response.status, await response.text()

    def _signed(
        self,
        event: Mapping[str, Any],
        signing_secret: str | None,
        timestamp: int | None,
        team: str | None,
        enterprise: str | None,
    ) -> tuple[bytes, dict[str, str]]:
        if event.get("type") == "event_callback":
            body = dict(event)
        else:
            body = self.event_callback(event, team=team, enterprise=enterprise)
        data = json.dumps(body).encode("utf-8")
        secret = self.signing_secret if signing_secret is None else signing_secret
        return data, sign_request(data, secret, timestamp)

    # ------------------------------------------------------------------ server
    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket_mode)

    async def _before_stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._connections.clear()
            self._changed.notify_all()
        live = list(self._live)
        # Concurrently: each close waits for the client's answer (bounded by the
        # websocket's timeout), and a stop should cost one such wait, not N.
        await asyncio.gather(
            *(self._drop(conn, None, 0.0) for conn in live), return_exceptions=True
        )

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        token = _bearer(request.headers.get("Authorization")) or params.pop("token", None)
        params.pop("token", None)
        self._record_call(method, dict(params))

        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return _json({"ok": False, "error": auth_error})

        channel = params.get("channel")
        failure = self._take_failure(method, None if channel is None else str(channel))
        if failure is not None:
            return _json(failure.body, status=failure.status, headers=failure.headers)

        if method == "auth.test":
            return _json(self._auth_test())
        if method == "apps.connections.open":
            return _json(self._connections_open())
        if method == "chat.postMessage":
            return _json(self._post_message(params))
        return _json(self._other_method(method, params))

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "not_allowed_token_type" if token.startswith("xox") else "invalid_auth"
        if token == self.bot_token:
            return None
        return "not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth"

    def _auth_test(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": True,
            "url": f"https://{self.team_name.lower().replace(' ', '-')}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }
        if self.enterprise_id is not None:
            result["enterprise_id"] = self.enterprise_id
        return result

    def _connections_open(self) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        with self._lock:
            self._tickets.add(ticket)
        return {
            "ok": True,
            "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}",
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        channel = str(channel)
        with self._lock:
            error = self._channel_errors.get(channel)
        if error is not None:
            return {"ok": False, "error": error}
        text = params.get("text")
        if not (text or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        thread_ts = params.get("thread_ts") or None
        ts = self.next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": ts,
        }
        if thread_ts is not None:
            message["thread_ts"] = str(thread_ts)
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        self._record(
            SentMessage(
                chat=channel,
                thread=None if thread_ts is None else str(thread_ts),
                text=str(text or ""),
                params=params,
            )
        )
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _other_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            scripted = self._method_results.get(method)
        if scripted is not None:
            return {"ok": True, **scripted}
        # A bare {"ok": true} would make ordinary listener code for these
        # (``resp["user"]["name"]``) raise KeyError.
        if method == "users.info":
            user = str(params.get("user") or self.user_id)
            return {
                "ok": True,
                "user": {
                    "id": user,
                    "team_id": self.team_id,
                    "name": user.lower(),
                    "real_name": user,
                    "is_bot": user == self.bot_user_id,
                    "profile": {"display_name": user, "real_name": user},
                },
            }
        if method == "conversations.info":
            channel = str(params.get("channel") or "")
            return {
                "ok": True,
                "channel": {"id": channel, "name": channel.lower(), "is_member": True},
            }
        if method in ("chat.update", "chat.postEphemeral"):
            ts = str(params.get("ts") or self.next_ts())
            key = "message_ts" if method == "chat.postEphemeral" else "ts"
            return {"ok": True, "channel": params.get("channel"), key: ts}
        if method in ("conversations.history", "conversations.replies"):
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": True}

    async def _socket_mode(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            known, stopping = ticket in self._tickets, self._stopping
        if stopping:
            raise web.HTTPServiceUnavailable(text="the stand-in is stopping")
        if not known:
            raise web.HTTPUnauthorized(text="unknown ticket; call apps.connections.open")
        # compress=False: slack_sdk's built-in client cannot inflate permessage-deflate.
        # timeout bounds how long a server-side close waits for the client's answer.
        ws = web.WebSocketResponse(autoping=True, compress=False, timeout=2.0)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._live.add(conn)
        try:
            with self._lock:
                open_now = len(self._connections) + 1
                stopping = self._stopping
            if stopping:
                # _before_stop may already have looked at _live while prepare() ran.
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
                return ws
            await ws.send_str(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": open_now,
                        "debug_info": {
                            "host": "applink-standin",
                            "build_number": 1,
                            "approximate_connection_time": 18060,
                        },
                        "connection_info": {"app_id": self.app_id},
                    }
                )
            )
            with self._changed:
                if not self._stopping:
                    self._connections.append(conn)
                    self._total_connections += 1
                self._changed.notify_all()
            conn.writer = asyncio.ensure_future(self._write(conn))
            if self.ping_interval is not None:
                conn.pinger = asyncio.ensure_future(self._ping(conn, self.ping_interval))
            self._flush_pending()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_client_text(conn, msg.data)
        finally:
            if conn.pinger is not None:
                conn.pinger.cancel()
            self._live.discard(conn)
            with self._changed:
                if conn in self._connections:
                    self._connections.remove(conn)
                self._changed.notify_all()
            conn.gone.set()
            await self._retire(conn)
        return ws

    def _on_client_text(self, conn: _Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            envelope_id = message["envelope_id"]
            # A client acks on its current session, which after a reconnection is
            # not always the one the envelope came in on.
            for other in (conn, *self._live):
                other.unacked.pop(envelope_id, None)
            with self._changed:
                if envelope_id not in self._acks:
                    self._ack_order.append(envelope_id)
                self._acks[envelope_id] = message
                self._changed.notify_all()

    def _deliver(self, envelope: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._connections)
        if not targets:
            self._pending.append(envelope)
            return
        conn = targets[self._next_connection % len(targets)]
        self._next_connection += 1
        conn.outbox.put_nowait(envelope)

    def _flush_pending(self) -> None:
        while self._pending:
            with self._lock:
                if not self._connections:
                    return
            self._deliver(self._pending.popleft())

    async def _write(self, conn: _Connection) -> None:
        while True:
            envelope = await conn.outbox.get()
            if envelope is None:
                return
            try:
                await conn.ws.send_str(json.dumps(envelope))
            except Exception:
                # The socket died under us: hand this envelope and the rest of the
                # queue to whichever connection comes next, like Slack's redelivery.
                self._pending.append(envelope)
                self._requeue_outbox(conn)
                return
            conn.unacked[envelope["envelope_id"]] = envelope
            with self._lock:
                self._delivered.append(envelope["envelope_id"])

    async def _ping(self, conn: _Connection, interval: float) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(interval)
            try:
                await conn.ws.ping(b"standin-ping")
            except Exception:
                return

    def _requeue_outbox(self, conn: _Connection) -> None:
        while not conn.outbox.empty():
            item = conn.outbox.get_nowait()
            if item is not None:
                self._pending.append(item)

    async def _retire(self, conn: _Connection) -> None:
        if conn.writer is not None and not conn.writer.done():
            conn.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.writer
        self._requeue_outbox(conn)
        if self.redeliver:
            with self._lock:
                acked = set(self._acks)
            retries = [
                {
                    **envelope,
                    "retry_attempt": envelope["retry_attempt"] + 1,
                    "retry_reason": "timeout",
                }
                for envelope_id, envelope in conn.unacked.items()
                if envelope_id not in acked and envelope["retry_attempt"] < _MAX_RETRIES
            ]
            # They went out before anything still pending, so they go first again.
            self._pending.extendleft(reversed(retries))
        conn.unacked.clear()
        self._flush_pending()

    async def _drop(self, conn: _Connection, reason: str | None, grace: float) -> None:
        ws = conn.ws
        if ws.closed:
            return
        if reason is not None:
            with contextlib.suppress(Exception):
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "disconnect",
                            "reason": reason,
                            "debug_info": {"host": "applink-standin"},
                        }
                    )
                )
            if grace > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.gone.wait(), grace)
        with contextlib.suppress(Exception):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"going away")

    # ------------------------------------------------------------------ helpers
    def _not_on_loop(self, name: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._loop:
            raise RuntimeError(
                f"{name}() blocks, and this is the stand-in's own event loop: "
                f"call it as `await asyncio.to_thread(api.{name}, ...)`"
            )

    @staticmethod
    def _event_key(event: Mapping[str, Any]) -> tuple[str, str] | None:
        ts = event.get("event_ts") or event.get("ts")
        if not ts:
            return None
        return (str(event.get("type", "")), str(ts))


def _rich_text_blocks(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": uuid.uuid4().hex[:5],
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]


def _retry_headers(retry_num: int | None, retry_reason: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            with contextlib.suppress(ValueError):
                data = await request.json()
                if isinstance(data, dict):
                    params.update(data)
        else:
            form = await request.post()
            for key, value in form.items():
                # A multipart upload (files.upload) gives FileField objects: keep the name.
                params[key] = value if isinstance(value, str) else getattr(value, "filename", "")
    for key in ("blocks", "attachments", "metadata"):
        encoded = params.get(key)
        if isinstance(encoded, str):
            # Form-encoded clients send these as JSON strings; JSON clients as lists.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(encoded)
    return params


def _json(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers or {}))
