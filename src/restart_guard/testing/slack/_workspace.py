"""The Slack install the stand-in plays: its identity and the state its parts share."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .._standin import StandIn
from . import _model as default
from ._model import _Connection


class _Workspace(StandIn):
    """Identity (tokens, ids) and the state the Web API, Socket Mode and HTTP parts share.

    The keyword arguments are :class:`SlackStandIn`'s (documented there).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_token: str = default.BOT_TOKEN,
        app_token: str = default.APP_TOKEN,
        signing_secret: str = default.SIGNING_SECRET,
        team_id: str = default.TEAM_ID,
        team_name: str = default.TEAM_NAME,
        enterprise_id: str | None = None,
        app_id: str = default.APP_ID,
        bot_id: str = default.BOT_ID,
        bot_user_id: str = default.BOT_USER_ID,
        bot_name: str = default.BOT_NAME,
        user_id: str = default.USER_ID,
        ping_interval: float | None = 0.5,
        redeliver: bool = True,
        retry_delays: tuple[float, ...] = (0.0, 60.0, 300.0),
    ) -> None:
        super().__init__(host, port)
        #: Seconds between the stand-in's own websocket pings (None: never). Slack's
        #: servers ping too; a short interval also keeps slack_sdk's built-in client's
        #: close() fast, which otherwise waits out its reader's 3-second socket timeout.
        self.ping_interval = ping_interval
        #: Whether envelopes left unacknowledged when their connection closes go out
        #: again (see :meth:`inject_event`).
        self.redeliver = redeliver
        #: Seconds before each retry of an unacknowledged HTTP event
        #: (:meth:`deliver_event`); Slack's: immediately, after 1 and after 5 minutes.
        self.retry_delays = retry_delays
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
        self._holding_acks = False  # hold_acks(): acks and 2xx answers do not arrive
        self._http_deliveries: list[tuple[str, int, int]] = []
        # Channels (see _messages): messages by (channel, ts), members, ephemerals shown.
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self._ephemerals: list[Any] = []
        # Button presses (see _interactivity), by trigger_id.
        self._presses: dict[str, Any] = {}
        # Touched only on the stand-in's loop:
        self._live: set[_Connection] = set()
        self._pending: deque[dict[str, Any]] = deque()
        self._next_connection = 0
        self._tasks: set[asyncio.Future[None]] = set()  # keeps disconnect tasks alive

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
