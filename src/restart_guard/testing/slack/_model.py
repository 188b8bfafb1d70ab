"""What every part of the Slack stand-in shares: the default install's identity, the
environment variables a bot in a subprocess reads, and one Socket Mode connection.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web

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
