"""What every part of the Discord stand-in shares: the platform's constants, the
in-memory model of guilds, channels, interactions and gateway sessions, and the
JSON replies shaped the way discord.py expects them.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: The REST API version discord.py 2.x speaks (``/api/v10``).
API_VERSION = 10

#: Environment variable holding the REST base (``http://127.0.0.1:PORT/api/v10``) for a subprocess.
ENV_API = "RESTART_GUARD_DISCORD_API"
#: Environment variable holding the gateway URL (``ws://127.0.0.1:PORT/gateway``) for a subprocess.
ENV_GATEWAY = "RESTART_GUARD_DISCORD_GATEWAY"

#: Ids of the default guild, channel, thread, bot user and human user.
DEFAULT_BOT_USER_ID = 1_100_000_000_000_000_001
DEFAULT_GUILD_ID = 1_200_000_000_000_000_001
DEFAULT_CHANNEL_ID = 1_200_000_000_000_000_002
DEFAULT_THREAD_ID = 1_200_000_000_000_000_003
DEFAULT_USER_ID = 1_300_000_000_000_000_001

#: Call name of posting a message (also the default target of injected failures).
CREATE_MESSAGE = "POST /channels/{channel_id}/messages"
#: Call name of editing a channel message.
EDIT_MESSAGE = "PATCH /channels/{channel_id}/messages/{message_id}"
#: Call name of an interaction response.
INTERACTION_CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
#: Call name of an interaction followup (or any webhook execution).
EXECUTE_WEBHOOK = "POST /webhooks/{webhook_id}/{webhook_token}"
#: Call name of editing an interaction's original response or a followup.
EDIT_WEBHOOK_MESSAGE = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
#: Call name recorded for each gateway IDENTIFY.
GATEWAY_IDENTIFY = "GATEWAY IDENTIFY"
#: Call name recorded for each gateway RESUME.
GATEWAY_RESUME = "GATEWAY RESUME"

_DISCORD_EPOCH_MS = 1_420_070_400_000
# How long Discord remembers an enforced nonce ("a few minutes").
_NONCE_WINDOW = 300.0


def _snowflake_age(snowflake: int) -> float:
    """Seconds since a snowflake was made (its top bits are milliseconds since the epoch)."""
    return time.time() - ((snowflake >> 22) + _DISCORD_EPOCH_MS) / 1000


# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents)
_GUILD_PRESENCES = 1 << 8
_GUILD_MESSAGES = 1 << 9
_DIRECT_MESSAGES = 1 << 12
_MESSAGE_CONTENT = 1 << 15

# The "limited" flags an unverified bot gets once the privileged intents are
# switched on in the developer portal.
_APPLICATION_FLAGS = (1 << 13) | (1 << 15) | (1 << 19)

_EVERYONE_PERMISSIONS = (
    (1 << 6)  # add reactions
    | (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 18)  # external emojis
    | (1 << 26)  # change nickname
    | (1 << 31)  # use application commands
    | (1 << 35)  # create public threads
    | (1 << 38)  # send messages in threads
)
_ADMINISTRATOR = 1 << 3
_ALL_PERMISSIONS = (1 << 51) - 1

_TEXT, _DM, _PUBLIC_THREAD, _PRIVATE_THREAD = 0, 1, 11, 12
_THREAD_TYPES = frozenset({10, _PUBLIC_THREAD, _PRIVATE_THREAD})

# How long a dropped session can still be resumed (Discord does not publish it).
_RESUME_WINDOW = 300.0
_RESUME_BUFFER = 1000
_MAX_STORED_MESSAGES = 10_000

# One logger for the whole stand-in, named as before it became a package.
_log = logging.getLogger("restart_guard.testing.discord")

_MENTION = re.compile(r"<@!?(\d+)>")


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # web.json_response would add "; charset=utf-8"; discord.py only decodes
    # bodies whose Content-Type is exactly application/json.
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json_response({"message": message, "code": code}, status)


def _no_content() -> web.Response:
    return web.Response(status=204)


# ------------------------------------------------------------------------- model


@dataclass
class _Channel:
    id: int
    type: int
    name: str
    guild_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    recipient_id: int | None = None
    position: int = 0
    last_message_id: int | None = None
    created: str = field(default_factory=_now_iso)

    @property
    def is_thread(self) -> bool:
        return self.type in _THREAD_TYPES


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    bot_role_id: int
    members: dict[int, str] = field(default_factory=dict)  # user id -> joined_at
    channel_ids: list[int] = field(default_factory=list)
    joined: str = field(default_factory=_now_iso)


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    user_id: int
    message_id: int | None = None  # the message a component sits on
    responded: bool = False
    original_id: int | None = None


class _Connection:
    """One gateway websocket: an ordered outgoing queue drained by a writer task."""

    def __init__(self, ws: web.WebSocketResponse, zlib_stream: bool) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.compressor = zlib.compressobj() if zlib_stream else None
        self.session: _Session | None = None
        self.writer: asyncio.Task[None] | None = None
        self.closed_by_server = False

    async def close(self, code: int, message: bytes = b"") -> None:
        # aiohttp reports 1000 to the reader whenever the server closes, so the
        # close code alone cannot tell a client's clean close from ours.
        self.closed_by_server = True
        await self.ws.close(code=code, message=message)

    def send(self, payload: Mapping[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(payload, separators=(",", ":")))

    async def write_forever(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None or self.ws.closed:
                return
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode())
                    data += self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                # The peer went away; the reader side sees the close and cleans up.
                return


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    buffer: deque[tuple[int, dict[str, Any]]] = field(
        default_factory=lambda: deque(maxlen=_RESUME_BUFFER)
    )
    conn: _Connection | None = None
    detached_at: float = 0.0


@dataclass
class _Call:
    name: str
    path: dict[str, str]
    query: Mapping[str, str]
    body: Any
    files: list[dict[str, Any]]
    chat: str | None

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


_Handler = Callable[[_Call], Awaitable[web.StreamResponse]]
