"""A loopback stand-in of the Discord API: REST and the gateway websocket.

A real discord.py ``Client`` or ``commands.Bot`` logs in, connects to the
gateway, receives events, runs prefix and app (slash) commands and posts
messages against it. Only the remote platform is replaced; nothing in the bot
is mocked.

In-process (the stand-in and the bot share one event loop)::

    import asyncio
    import discord
    from restart_guard.testing.discord import DiscordStandIn, point_discord_at

    async def test_reply():
        async with DiscordStandIn() as api:
            with point_discord_at(api):          # Route.BASE + DEFAULT_GATEWAY, restored on exit
                intents = discord.Intents.default()
                intents.message_content = True
                client = discord.Client(intents=intents, guild_ready_timeout=0.2)

                @client.event
                async def on_message(message: discord.Message) -> None:
                    if message.author != client.user:
                        await message.channel.send("pong")

                await client.login("any-token")
                task = asyncio.create_task(client.connect())
                await client.wait_until_ready()
                api.inject_message(api.thread_id, "ping")
                sent = await asyncio.to_thread(api.wait_for_sent, lambda m: m.text == "pong")
                await client.close()
                await task

The blocking waits (``wait_for_sent``, ``wait_for_call``,
``wait_for_identify``) must not run on the loop the bot runs on: in an async
test call them through ``asyncio.to_thread``.

In a thread (synchronous tests, or a bot in a subprocess)::

    with DiscordStandIn.running() as api:
        env = {**os.environ, **api.env_vars()}
        proc = subprocess.Popen([sys.executable, "my_bot.py"], env=env)
        api.wait_for_identify(timeout=30)
        api.inject_message(api.channel_id, "!ping")
        api.wait_for_sent(lambda m: m.text == "pong")

and in ``my_bot.py``, before ``bot.run(...)``::

    from restart_guard.testing.discord import point_discord_at_env
    point_discord_at_env()  # reads RESTART_GUARD_DISCORD_API / RESTART_GUARD_DISCORD_GATEWAY

Pointing discord.py at the stand-in sets two class attributes:
``discord.http.Route.BASE`` (REST, ``{url}/api/v10``) and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (``ws://127.0.0.1:PORT/gateway``).
Interaction callbacks and webhooks go through the same ``Route.BASE``. Point
it before the client logs in; clients created earlier are fine.

What the stand-in serves:

- A default guild (``guild_id``) with one text channel (``channel_id``) and
  one public thread in it (``thread_id``); the bot (``bot_user_id``, also the
  ``application_id``) and a human user (``user_id``) are members. More with
  :meth:`DiscordStandIn.add_guild`, :meth:`~DiscordStandIn.add_channel`,
  :meth:`~DiscordStandIn.add_thread`.
- The gateway: HELLO, heartbeat ACKs, IDENTIFY → READY + GUILD_CREATE per
  guild, RESUME (replays what the client missed, then RESUMED) or
  INVALID_SESSION, REQUEST_GUILD_MEMBERS → GUILD_MEMBERS_CHUNK. A client's
  clean close (code 1000) ends its session; a dropped socket leaves it
  resumable for a while. :meth:`~DiscordStandIn.request_reconnect` (op 7) and
  :meth:`~DiscordStandIn.disconnect_clients` exercise resuming; stopping and
  starting the stand-in again is an outage after which clients identify anew.
  Events reach the clients connected when they are injected, never later
  ones: as on Discord, nothing is redelivered to a restarted bot. ``zlib-stream``
  compression is honoured when requested; any other requested compression
  (``zstd-stream``) is ignored and frames go out as plain text, which
  discord.py accepts. Only ``encoding=json``.
- Intents are enforced like Discord does (``enforce_intents=True``): guild
  messages need GUILD_MESSAGES, DMs DIRECT_MESSAGES, and without
  MESSAGE_CONTENT a guild message's content is blank unless it mentions the bot.
- REST: the routes discord.py needs to log in, post, edit and fetch messages,
  create DMs and threads, sync app commands and answer interactions. Any other
  route answers 200 ``{}`` (``[]`` for a GET of a collection, 204 for PUT and
  DELETE). Replies have ``Content-Type: application/json`` exactly.

What is recorded:

- Every REST call in :attr:`~restart_guard.testing._standin.StandIn.calls` as
  ``(name, params)``. ``name`` is ``"METHOD /route/{template}"`` for known
  routes (the constants :data:`CREATE_MESSAGE`, :data:`INTERACTION_CALLBACK`
  ...) and ``"METHOD /literal/path"`` for the others. ``params`` is the JSON
  body (a list body goes under ``"body"``), updated with the path parameters as
  strings, plus ``"query"`` and ``"files"`` when present. Gateway traffic is
  recorded as ``"GATEWAY CONNECT"`` (params: the query string),
  ``"GATEWAY IDENTIFY"`` (the IDENTIFY payload without the token, plus
  ``session_id``), ``"GATEWAY RESUME"``, ``"GATEWAY REQUEST_GUILD_MEMBERS"``,
  ``"GATEWAY PRESENCE_UPDATE"`` ... Heartbeats are not recorded.
- Every message the bot makes visible in :attr:`~restart_guard.testing._standin.StandIn.sent`
  as a :class:`SentMessage` (re-exported here with :class:`Failure`): ``chat`` is the id of the
  channel the message went to (a thread is a channel: its own id), ``thread``
  is that same id when the channel is a thread and None otherwise, ``text`` the
  content. ``params`` holds the request body plus ``channel_id``,
  ``message_id``, ``guild_id`` (guild channels) and ``parent_id`` (threads).
  Interaction responses of type 4 and 7 carry ``interaction_response=True``,
  ``interaction_id`` and ``response_type``; followups ``followup=True``; edits
  of a message (PATCH, deferred responses being filled in, type 7 updates)
  ``edit=True``. A deferred response (type 5) only shows up here once it is
  filled in. The bot's own messages are also sent back to it as MESSAGE_CREATE,
  as Discord does (``echo_own_messages``).

Failures are injected on REST calls with :meth:`~DiscordStandIn.fail_channel`,
:meth:`~DiscordStandIn.delete_channel`, :meth:`~DiscordStandIn.rate_limit` and
:meth:`~DiscordStandIn.fail_next`; their bodies and headers are Discord's, so
discord.py raises ``Forbidden``/``NotFound``/``HTTPException`` or waits out a
429 and retries by itself.

Posting to a channel id the stand-in does not know succeeds (it is recorded
like any other); fetching it (``GET /channels/{id}``) answers 404 Unknown
Channel.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ._standin import Failure, SentMessage, StandIn

__all__ = [
    "CREATE_MESSAGE",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_CHANNEL_ID",
    "DEFAULT_GUILD_ID",
    "DEFAULT_THREAD_ID",
    "DEFAULT_USER_ID",
    "EDIT_MESSAGE",
    "EDIT_WEBHOOK_MESSAGE",
    "ENV_API",
    "ENV_GATEWAY",
    "EXECUTE_WEBHOOK",
    "GATEWAY_IDENTIFY",
    "GATEWAY_RESUME",
    "INTERACTION_CALLBACK",
    "DiscordPointer",
    "DiscordStandIn",
    "Failure",
    "SentMessage",
    "point_discord_at",
    "point_discord_at_env",
]

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

_log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------ pointing discord.py


@dataclass
class DiscordPointer:
    """What :func:`point_discord_at` changed; ``restore()`` (or leaving a ``with``) undoes it.

    ``api_base`` and ``gateway_url`` are the values set, ``previous_api_base``
    and ``previous_gateway`` (a ``yarl.URL``) the ones they replaced.
    """

    api_base: str
    gateway_url: str
    previous_api_base: str
    previous_gateway: Any

    def restore(self) -> None:
        """Put ``Route.BASE`` and ``DEFAULT_GATEWAY`` back to what they were."""
        import discord.gateway
        import discord.http

        discord.http.Route.BASE = self.previous_api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.previous_gateway

    def __enter__(self) -> DiscordPointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def point_discord_at(target: DiscordStandIn | str | tuple[str, str]) -> DiscordPointer:
    """Point discord.py in this process at a stand-in, for every client created afterwards.

    ``target`` is a running :class:`DiscordStandIn`, its root URL
    (``"http://127.0.0.1:PORT"``) or an explicit ``(api_base, gateway_url)``
    pair. Sets ``discord.http.Route.BASE`` and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``. The change is
    process-wide; use the result as a context manager (or call its
    ``restore()``) to undo it.
    """
    import discord.gateway
    import discord.http
    import yarl

    if isinstance(target, DiscordStandIn):
        api_base, gateway_url = target.api_base, target.gateway_url
    elif isinstance(target, str):
        root = target.rstrip("/")
        api_base = f"{root}/api/v{API_VERSION}"
        gateway_url = re.sub(r"^http", "ws", root) + "/gateway"
    else:
        api_base, gateway_url = target
    pointer = DiscordPointer(
        api_base=api_base,
        gateway_url=gateway_url,
        previous_api_base=discord.http.Route.BASE,
        previous_gateway=discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    return pointer


def point_discord_at_env(environ: Mapping[str, str] | None = None) -> DiscordPointer | None:
    """Point discord.py at the stand-in named by the environment, if any.

    Reads :data:`ENV_API` (``RESTART_GUARD_DISCORD_API``) and
    :data:`ENV_GATEWAY` (``RESTART_GUARD_DISCORD_GATEWAY``), which
    :meth:`DiscordStandIn.env_vars` produces for a subprocess. Returns None and
    changes nothing when neither is set; raises ``ValueError`` when only one is.
    Call it in the bot process before the client starts.
    """
    env = os.environ if environ is None else environ
    api, gateway = env.get(ENV_API), env.get(ENV_GATEWAY)
    if api is None and gateway is None:
        return None
    if api is None or gateway is None:
        raise ValueError(f"set both {ENV_API} and {ENV_GATEWAY}, or neither")
    return point_discord_at((api, gateway))


# ---------------------------------------------------------------------------- model


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


# ------------------------------------------------------------------------ stand-in


class DiscordStandIn(StandIn):
    """Loopback Discord: REST under ``/api/v10`` and the gateway at ``/gateway``.

    Keyword arguments:

    ``bot_user_id``, ``bot_name``
        The bot's user (``GET /users/@me``, READY); the application id is the same.
    ``user_id``
        The default human author of injected messages and interactions.
    ``token``
        When set, REST calls must carry ``Authorization: Bot <token>`` (else
        401) and IDENTIFY/RESUME must carry it (else close code 4004). None
        accepts any token.
    ``default_guild``
        Create the default guild/channel/thread (ids in ``guild_id``,
        ``channel_id``, ``thread_id``). The attributes exist either way.
    ``enforce_intents``
        Filter events and blank message content like Discord does for the
        intents the client identified with.
    ``echo_own_messages``
        Send MESSAGE_CREATE for the bot's own messages back to it, as Discord does.
    ``heartbeat_interval``
        Seconds announced in HELLO.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_name: str = "restart-guard-bot",
        user_id: int = DEFAULT_USER_ID,
        token: str | None = None,
        default_guild: bool = True,
        enforce_intents: bool = True,
        echo_own_messages: bool = True,
        heartbeat_interval: float = 41.25,
    ) -> None:
        super().__init__(host, port)
        #: The bot's user id (also its application id).
        self.bot_user_id = bot_user_id
        #: The application id discord.py reads from ``/oauth2/applications/@me`` and READY.
        self.application_id = bot_user_id
        #: The bot's username.
        self.bot_name = bot_name
        #: The default human user id.
        self.user_id = user_id
        #: The required bot token, or None for any.
        self.token = token
        #: The default guild's id.
        self.guild_id = DEFAULT_GUILD_ID
        #: The default guild's text channel.
        self.channel_id = DEFAULT_CHANNEL_ID
        #: The public thread inside ``channel_id``.
        self.thread_id = DEFAULT_THREAD_ID
        #: Filter events and blank content by the identified intents, as Discord does.
        self.enforce_intents = enforce_intents
        #: Send the bot's own messages back to it as MESSAGE_CREATE, as Discord does.
        self.echo_own_messages = echo_own_messages
        #: Seconds announced in HELLO.
        self.heartbeat_interval = heartbeat_interval

        self._state = threading.RLock()
        self._last_id = 0
        self._users: dict[int, dict[str, Any]] = {}
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, _Channel] = {}
        self._dm_channels: dict[int, int] = {}
        self._deleted: set[int] = set()
        self._channel_failures: dict[int, tuple[int, dict[str, Any]]] = {}
        self._messages: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._interactions: dict[int, _Interaction] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[str, int] = {}

        # Loop-thread only.
        self._conns: set[_Connection] = set()
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stopping = False
        # Guarded by the base class's lock (self._changed).
        self._identifies: list[dict[str, Any]] = []
        self._live = 0

        self.add_user(bot_user_id, bot_name, bot=True)
        self.add_user(user_id, "tester")
        if default_guild:
            self.add_guild(DEFAULT_GUILD_ID, "restart-guard test guild")
            self.add_channel(DEFAULT_GUILD_ID, DEFAULT_CHANNEL_ID, "general")
            self.add_thread(DEFAULT_CHANNEL_ID, DEFAULT_THREAD_ID, "a thread")

        self._table: list[tuple[str, str, re.Pattern[str], _Handler]] = []
        for method, template, handler in self._route_list():
            regex = re.compile(re.sub(r"\{(\w+)\}", _route_param, template))
            self._table.append((method, template, regex, handler))

    # ------------------------------------------------------------------ addresses
    @property
    def api_base(self) -> str:
        """REST base for ``discord.http.Route.BASE``: ``http://host:port/api/v10``."""
        return f"{self.url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """Gateway URL for ``DiscordWebSocket.DEFAULT_GATEWAY``: ``ws://host:port/gateway``."""
        return f"ws://{self.host}:{self.port}/gateway"

    def env_vars(self) -> dict[str, str]:
        """The environment a bot subprocess needs for :func:`point_discord_at_env`."""
        return {ENV_API: self.api_base, ENV_GATEWAY: self.gateway_url}

    # -------------------------------------------------------------- configuration
    def new_id(self) -> int:
        """A fresh snowflake (time-based, strictly increasing; thread-safe)."""
        with self._state:
            ms = int(time.time() * 1000) - _DISCORD_EPOCH_MS
            self._last_id = max(self._last_id + 1, ms << 22)
            return self._last_id

    def add_user(
        self, user_id: int | None = None, name: str | None = None, *, bot: bool = False
    ) -> int:
        """Make a user known (authors are added automatically); return its id."""
        uid = self.new_id() if user_id is None else user_id
        with self._state:
            self._users[uid] = {
                "id": str(uid),
                "username": name or f"user{uid % 10_000}",
                "discriminator": "0",
                "global_name": name or f"user{uid % 10_000}",
                "avatar": None,
                "bot": bot,
                "system": False,
                "public_flags": 0,
                "flags": 0,
            }
        return uid

    def add_guild(self, guild_id: int | None = None, name: str = "guild") -> int:
        """Add a guild with the bot and the default user as members; return its id.

        Connected clients get a GUILD_CREATE.
        """
        gid = self.new_id() if guild_id is None else guild_id
        with self._state:
            guild = _Guild(id=gid, name=name, owner_id=self.user_id, bot_role_id=self.new_id())
            guild.members[self.bot_user_id] = _now_iso()
            guild.members[self.user_id] = _now_iso()
            self._guilds[gid] = guild
            payload = self._guild_payload(guild)
        # Without "unavailable" discord.py takes it for a join (on_guild_join),
        # with it for an outage ending (on_guild_available).
        del payload["unavailable"]
        self._in_loop(self._broadcast, "GUILD_CREATE", payload, gid, self._guild_create_for)
        return gid

    def add_channel(
        self, guild_id: int, channel_id: int | None = None, name: str = "channel"
    ) -> int:
        """Add a text channel to a guild; return its id. Connected clients get CHANNEL_CREATE."""
        cid = self.new_id() if channel_id is None else channel_id
        with self._state:
            guild = self._guilds[guild_id]
            channel = _Channel(
                id=cid, type=_TEXT, name=name, guild_id=guild_id, position=len(guild.channel_ids)
            )
            self._channels[cid] = channel
            self._deleted.discard(cid)
            guild.channel_ids.append(cid)
            payload = self._channel_payload(channel)
        self._in_loop(self._broadcast, "CHANNEL_CREATE", payload, guild_id)
        return cid

    def add_thread(
        self,
        parent_id: int,
        thread_id: int | None = None,
        name: str = "thread",
        *,
        private: bool = False,
        owner_id: int | None = None,
    ) -> int:
        """Add a thread under a text channel; return its id. Connected clients get THREAD_CREATE."""
        tid = self.new_id() if thread_id is None else thread_id
        self._create_thread(
            parent_id, tid, name, private=private, owner_id=owner_id or self.user_id
        )
        return tid

    def _create_thread(
        self, parent_id: int, tid: int, name: str, *, private: bool, owner_id: int
    ) -> dict[str, Any]:
        with self._state:
            parent = self._channels[parent_id]
            assert parent.guild_id is not None, "threads live in guild channels"
            thread = _Channel(
                id=tid,
                type=_PRIVATE_THREAD if private else _PUBLIC_THREAD,
                name=name,
                guild_id=parent.guild_id,
                parent_id=parent_id,
                owner_id=owner_id,
            )
            self._channels[tid] = thread
            self._deleted.discard(tid)
            self._guilds[parent.guild_id].channel_ids.append(tid)
            payload = self._channel_payload(thread)
        self._in_loop(
            self._broadcast, "THREAD_CREATE", {**payload, "newly_created": True}, parent.guild_id
        )
        return payload

    def dm_channel_id(self, user_id: int | None = None) -> int:
        """The id of the DM channel between the bot and ``user_id`` (created on first use)."""
        uid = self.user_id if user_id is None else user_id
        with self._state:
            if uid not in self._users:
                self.add_user(uid)
            cid = self._dm_channels.get(uid)
            if cid is None:
                cid = self.new_id()
                self._dm_channels[uid] = cid
            # Also after delete_channel: the id stays, calls on it answer 404.
            self._channels.setdefault(cid, _Channel(id=cid, type=_DM, name="", recipient_id=uid))
            return cid

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread: every call on it answers 404 Unknown Channel (10003).

        Deleting a channel deletes its threads too, as on Discord. Connected
        clients get CHANNEL_DELETE (discord.py drops the channel's threads
        itself) or THREAD_DELETE. ``add_channel`` with the same id brings the
        channel back, not its threads.
        """
        with self._state:
            self._deleted.add(channel_id)
            channel = self._channels.pop(channel_id, None)
            if channel is None or channel.guild_id is None:
                return
            guild = self._guilds.get(channel.guild_id)
            doomed = [channel_id]
            if not channel.is_thread:
                threads = [c.id for c in self._channels.values() if c.parent_id == channel_id]
                for thread_id in threads:
                    del self._channels[thread_id]
                    self._deleted.add(thread_id)
                doomed.extend(threads)
            if guild is not None:
                guild.channel_ids = [c for c in guild.channel_ids if c not in doomed]
            payload = self._channel_payload(channel)
        event = "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE"
        self._in_loop(self._broadcast, event, payload, channel.guild_id)

    # ---------------------------------------------------------------- failures
    def fail_channel(
        self,
        channel_id: int,
        status: int = 403,
        code: int = 50001,
        message: str = "Missing Access",
        *,
        times: int | None = None,
    ) -> None:
        """Make calls on a channel fail with Discord's error body ``{"message", "code"}``.

        ``times=None``: every call on ``/channels/{channel_id}/...`` fails until
        :meth:`restore_channel`. ``times=N``: the next N message posts to it
        fail. 403 makes discord.py raise ``Forbidden``, 404 ``NotFound``.
        """
        body = {"message": message, "code": code}
        if times is None:
            with self._state:
                self._channel_failures[channel_id] = (status, body)
        else:
            self.fail(Failure(CREATE_MESSAGE, status, body, chat=str(channel_id), times=times))

    def restore_channel(self, channel_id: int) -> None:
        """Undo :meth:`fail_channel` (``times=None``) for a channel."""
        with self._state:
            self._channel_failures.pop(channel_id, None)

    def rate_limit(
        self,
        channel_id: int | None = None,
        retry_after: float = 1.0,
        times: int = 1,
        *,
        method: str = CREATE_MESSAGE,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``times`` matching calls with a 429 shaped like Discord's.

        Body ``{"message": "You are being rate limited.", "retry_after": N,
        "global": false}`` with ``Retry-After``, ``X-RateLimit-*`` and ``Via``
        headers (discord.py treats a 429 without ``Via`` as a Cloudflare ban and
        raises instead of retrying). discord.py sleeps ``retry_after`` and
        retries. ``channel_id`` None: any channel.
        """
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "restart-guard-stand-in",
            "X-RateLimit-Scope": "global" if is_global else "user",
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        chat = None if channel_id is None else str(channel_id)
        self.fail(Failure(method, 429, body, chat=chat, times=times, headers=headers))

    def fail_next(
        self,
        status: int = 500,
        code: int = 0,
        message: str = "500: Internal Server Error",
        *,
        method: str = CREATE_MESSAGE,
        channel_id: int | None = None,
        times: int = 1,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Fail the next ``times`` calls named ``method`` (on ``channel_id``, or any).

        ``method`` is a call name (:data:`CREATE_MESSAGE`, :data:`INTERACTION_CALLBACK`
        ...). The body is ``{"message", "code"}`` unless ``body`` is given. Mind
        that discord.py retries 500/502/504/524 by itself (after 1, 3, 5 ... s).
        For interaction and webhook calls ``channel_id`` is the interaction's channel.
        """
        self.fail(
            Failure(
                method,
                status,
                body if body is not None else {"message": message, "code": code},
                chat=None if channel_id is None else str(channel_id),
                times=times,
                headers=dict(headers or {}),
            )
        )

    # ---------------------------------------------------------------- injection
    def inject_message(
        self,
        channel_id: int,
        content: str,
        *,
        author_id: int | None = None,
        author_name: str | None = None,
        author_bot: bool = False,
        guild_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Send MESSAGE_CREATE from a user to every connected client; return the message id.

        ``guild_id`` defaults to the channel's guild (a DM channel has none);
        a channel the stand-in does not know needs ``guild_id`` (it is then
        delivered as a guild message discord.py cannot resolve to a cached
        channel). The author becomes a guild member. ``<@id>`` mentions are
        resolved. Only clients connected right now get it, as on Discord:
        call :meth:`wait_for_identify` first. Thread-safe.
        """
        uid = self.user_id if author_id is None else author_id
        with self._state:
            channel = self._channels.get(channel_id)
            gid = guild_id if guild_id is not None else (channel.guild_id if channel else None)
            if channel is None and gid is None:
                raise ValueError(f"unknown channel {channel_id}: add it first or pass guild_id")
            known = self._users.get(uid)
            if known is None or author_name is not None or known["bot"] != author_bot:
                name = author_name or (None if known is None else str(known["username"]))
                self.add_user(uid, name, bot=author_bot)
            if gid is not None and gid in self._guilds:
                self._guilds[gid].members.setdefault(uid, _now_iso())
            extra: dict[str, Any] = {}
            if reply_to is not None:
                extra["message_reference"] = {
                    "type": 0,
                    "message_id": str(reply_to),
                    "channel_id": str(channel_id),
                    **({"guild_id": str(gid)} if gid is not None else {}),
                }
                referenced = self._messages.get(reply_to)
                if referenced is not None:
                    extra["referenced_message"] = referenced
                extra["type"] = 19
            payload = self._message_payload(channel_id, gid, uid, content, extra)
        self._in_loop(self._broadcast_message, payload)
        return int(payload["id"])

    def inject_dm(self, user_id: int | None, content: str) -> int:
        """Send a direct message from ``user_id`` (None: the default user); return its id.

        The DM channel is :meth:`dm_channel_id` of that user.
        """
        uid = self.user_id if user_id is None else user_id
        return self.inject_message(self.dm_channel_id(uid), content, author_id=uid)

    def inject_slash_command(
        self,
        name: str,
        channel_id: int | None = None,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        user_id: int | None = None,
        command_guild_id: int | None = None,
        resolved: Mapping[str, Any] | None = None,
        locale: str = "en-US",
    ) -> int:
        """Send INTERACTION_CREATE for a chat input (slash) command; return the interaction id.

        ``name`` is the command's name, with subcommands separated by spaces
        (``"config set"``). ``options`` maps option names to str/int/float/bool
        values (typed from the synced command when the bot ran ``tree.sync()``,
        else from the Python type), or is a raw list of option objects (with
        ``resolved`` for users, channels, roles). ``channel_id`` defaults to
        ``channel_id``; a DM channel makes it a DM interaction.
        ``command_guild_id`` marks it a guild command (needed for a command
        registered with ``guild=`` that was never synced); after a guild sync
        it is found automatically.
        """
        parts = name.split()
        cid = self.channel_id if channel_id is None else channel_id
        with self._state:
            channel = self._channels.get(cid)
            gid = channel.guild_id if channel is not None else None
            synced, scope = self._find_command(parts[0], gid, command_guild_id)
            definition: Mapping[str, Any] | None = synced
            for sub in parts[1:]:
                definition = _find_option(definition, sub)
            if options is None:
                built: list[dict[str, Any]] = []
            elif isinstance(options, Mapping):
                built = [_option(k, v, _find_option(definition, k)) for k, v in options.items()]
            else:
                built = [dict(o) for o in options]
            for depth, sub in reversed(list(enumerate(parts[1:], start=1))):
                kind = 1 if depth == len(parts) - 1 else 2
                built = [{"type": kind, "name": sub, "options": built}]
            data: dict[str, Any] = {
                "id": str(synced["id"]) if synced else str(self._command_id(parts[0])),
                "name": parts[0],
                "type": 1,
                "options": built,
            }
            if scope is not None:
                data["guild_id"] = str(scope)
            if resolved is not None:
                data["resolved"] = dict(resolved)
            payload = self._interaction_payload(2, cid, user_id, data, locale=locale)
        self._in_loop(self._broadcast_interaction, payload)
        return int(payload["id"])

    def inject_component(
        self,
        custom_id: str,
        channel_id: int | None = None,
        message_id: int | None = None,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        user_id: int | None = None,
    ) -> int:
        """Send INTERACTION_CREATE for a component click; return the interaction id.

        ``message_id`` None: the newest message the bot posted (in
        ``channel_id``, if given) that has a component with ``custom_id``.
        ``component_type`` 2 is a button, 3 a string select (give ``values``).
        """
        with self._state:
            message = self._find_component_message(custom_id, channel_id, message_id)
            cid = int(message["channel_id"])
            data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
            if values is not None:
                data["values"] = list(values)
            payload = self._interaction_payload(3, cid, user_id, data, message=message)
        self._in_loop(self._broadcast_interaction, payload)
        return int(payload["id"])

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT to every connected client; discord.py then RESUMEs."""
        self._in_loop(self._send_to_live, {"op": 7, "d": None})

    def disconnect_clients(self, code: int = 4000) -> None:
        """Close every gateway connection with ``code`` (4000: the client resumes)."""

        def close_all() -> None:
            for conn in list(self._conns):
                self._spawn(conn.close(code))

        self._in_loop(close_all)

    # ---------------------------------------------------------------- observing
    @property
    def connected(self) -> bool:
        """True while at least one client holds an identified (or resumed) gateway connection."""
        with self._lock:
            return self._live > 0

    @property
    def identifies(self) -> list[dict[str, Any]]:
        """Every IDENTIFY received (token removed, ``session_id`` added), oldest first."""
        with self._lock:
            return list(self._identifies)

    def wait_for_identify(self, timeout: float = 15.0, count: int = 1) -> dict[str, Any]:
        """Block until the ``count``-th IDENTIFY has been answered; return it.

        By then READY and the GUILD_CREATEs are queued ahead of anything injected
        afterwards, so discord.py resolves injected events from its guild cache.
        Do not call it on the event loop the bot runs on (use ``asyncio.to_thread``).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._identifies) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"waited {timeout}s for IDENTIFY #{count}; got {len(self._identifies)}"
                    )
                self._changed.wait(left)
            return self._identifies[count - 1]

    def message(self, message_id: int) -> dict[str, Any] | None:
        """The stored message object (as clients saw it) with that id, or None."""
        with self._state:
            stored = self._messages.get(message_id)
            return None if stored is None else dict(stored)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one); a stopped one may restart."""
        self._stopping = False
        await super().start()

    async def _before_stop(self) -> None:
        # discord.py reconnects at once when we close its socket; refuse it, or
        # the server's shutdown would wait for that new connection.
        self._stopping = True
        conns = list(self._conns)
        for conn in conns:
            conn.queue.put_nowait(None)
        await asyncio.gather(*(c.close(1001) for c in conns), return_exceptions=True)
        for conn in conns:
            if conn.writer is not None:
                conn.writer.cancel()
        self._sessions.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        # Before start() there is nobody to tell: configuration changes simply
        # show up in READY/GUILD_CREATE later.
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(fn, *args)

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", r"/api/v{version:\d+}/{path:.*}", self._rest)
        app.router.add_route("*", "/api/{path:.*}", self._rest)

    # ---------------------------------------------------------------- payloads
    def _user(self, user_id: int) -> dict[str, Any]:
        with self._state:
            if user_id not in self._users:
                self.add_user(user_id)
            return dict(self._users[user_id])

    def _member(self, guild: _Guild, user_id: int, *, permissions: bool = False) -> dict[str, Any]:
        roles = [str(guild.bot_role_id)] if user_id == self.bot_user_id else []
        member: dict[str, Any] = {
            "user": self._user(user_id),
            "roles": roles,
            "joined_at": guild.members.get(user_id, guild.joined),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if permissions:
            admin = user_id in (self.bot_user_id, guild.owner_id)
            member["permissions"] = str(_ALL_PERMISSIONS if admin else _EVERYONE_PERMISSIONS)
        return member

    def _channel_payload(self, channel: _Channel) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "last_message_id": None
            if channel.last_message_id is None
            else str(channel.last_message_id),
            "flags": 0,
        }
        if channel.type == _DM:
            assert channel.recipient_id is not None
            payload["recipients"] = [self._user(channel.recipient_id)]
            return payload
        payload.update(
            guild_id=str(channel.guild_id),
            name=channel.name,
            rate_limit_per_user=0,
        )
        if channel.is_thread:
            payload.update(
                parent_id=str(channel.parent_id),
                owner_id=str(channel.owner_id),
                message_count=0,
                member_count=1,
                total_message_sent=0,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": channel.created,
                    "locked": False,
                    "invitable": True,
                    "create_timestamp": channel.created,
                },
            )
        else:
            payload.update(
                position=channel.position,
                permission_overwrites=[],
                nsfw=False,
                topic=None,
                parent_id=None,
            )
        return payload

    def _guild_payload(self, guild: _Guild) -> dict[str, Any]:
        channels = [self._channels[c] for c in guild.channel_ids if c in self._channels]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": str(guild.id),
                    "name": "@everyone",
                    "permissions": str(_EVERYONE_PERMISSIONS),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(guild.bot_role_id),
                    "name": self.bot_name,
                    "permissions": str(_ADMINISTRATOR | _EVERYONE_PERMISSIONS),
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": True,
                    "mentionable": False,
                    "flags": 0,
                    "tags": {"bot_id": str(self.bot_user_id)},
                },
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            # Gateway-only fields of GUILD_CREATE:
            "joined_at": guild.joined,
            "large": False,
            "unavailable": False,
            "member_count": len(guild.members),
            "members": [self._member(guild, uid) for uid in guild.members],
            "channels": [self._channel_payload(c) for c in channels if not c.is_thread],
            "threads": [self._channel_payload(c) for c in channels if c.is_thread],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_payload(
        self,
        channel_id: int,
        guild_id: int | None,
        author_id: int,
        content: str,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build and store a message; callers hold ``self._state``."""
        mid = self.new_id()
        mentions: list[dict[str, Any]] = []
        guild = self._guilds.get(guild_id) if guild_id is not None else None
        for raw in dict.fromkeys(_MENTION.findall(content)):
            uid = int(raw)
            if uid in self._users:
                user = self._user(uid)
                if guild is not None and uid in guild.members:
                    user["member"] = {
                        k: v for k, v in self._member(guild, uid).items() if k != "user"
                    }
                mentions.append(user)
        payload: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self._user(author_id),
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            if guild is not None and "webhook_id" not in (extra or {}):
                member = self._member(guild, author_id)
                del member["user"]
                payload["member"] = member
        payload.update(extra or {})
        self._messages[mid] = payload
        if len(self._messages) > _MAX_STORED_MESSAGES:
            self._messages.popitem(last=False)
        channel = self._channels.get(channel_id)
        if channel is not None:
            channel.last_message_id = mid
        return payload

    def _interaction_payload(
        self,
        itype: int,
        channel_id: int,
        user_id: int | None,
        data: dict[str, Any],
        *,
        message: dict[str, Any] | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        uid = self.user_id if user_id is None else user_id
        channel = self._channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        gid = channel.guild_id
        iid = self.new_id()
        token = secrets.token_urlsafe(48)
        self._interactions[iid] = _Interaction(
            id=iid,
            token=token,
            type=itype,
            channel_id=channel_id,
            guild_id=gid,
            user_id=uid,
            message_id=None if message is None else int(message["id"]),
        )
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self._channel_payload(channel),
            "locale": locale,
            "app_permissions": str(_ALL_PERMISSIONS),
            "entitlements": [],
            "attachment_size_limit": 26_214_400,
        }
        if gid is not None:
            guild = self._guilds[gid]
            guild.members.setdefault(uid, _now_iso())
            payload.update(
                guild_id=str(gid),
                guild={"id": str(gid), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=self._member(guild, uid, permissions=True),
                authorizing_integration_owners={"0": str(gid)},
                context=0,
            )
        else:
            payload.update(
                user=self._user(uid),
                authorizing_integration_owners={"1": str(uid)},
                context=1,
            )
        if message is not None:
            payload["message"] = message
        return payload

    # ------------------------------------------------------------ app commands
    def _command_id(self, name: str) -> int:
        with self._state:
            if name not in self._command_ids:
                self._command_ids[name] = self.new_id()
            return self._command_ids[name]

    def _find_command(
        self, name: str, channel_guild: int | None, explicit_guild: int | None
    ) -> tuple[dict[str, Any] | None, int | None]:
        if explicit_guild is not None:
            found = next(
                (c for c in self._commands.get(explicit_guild, []) if c["name"] == name), None
            )
            return found, explicit_guild
        if channel_guild is not None:
            found = next(
                (c for c in self._commands.get(channel_guild, []) if c["name"] == name), None
            )
            if found is not None:
                return found, channel_guild
        return next((c for c in self._commands.get(None, []) if c["name"] == name), None), None

    def _stored_command(self, scope: int | None, body: Mapping[str, Any]) -> dict[str, Any]:
        command = dict(body)
        command.update(
            id=str(self._command_id(str(body.get("name", "")))),
            application_id=str(self.application_id),
            version=str(self.new_id()),
            type=body.get("type", 1),
            description=body.get("description", ""),
            default_member_permissions=body.get("default_member_permissions"),
        )
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    def _find_component_message(
        self, custom_id: str, channel_id: int | None, message_id: int | None
    ) -> dict[str, Any]:
        if message_id is not None:
            message = self._messages.get(message_id)
            if message is None:
                cid = self.channel_id if channel_id is None else channel_id
                message = self._message_payload(cid, self._guild_of(cid), self.bot_user_id, "")
            return message
        for message in reversed(self._messages.values()):
            if channel_id is not None and message["channel_id"] != str(channel_id):
                continue
            if message["author"]["id"] == str(self.bot_user_id) and _has_custom_id(
                message.get("components", []), custom_id
            ):
                return message
        raise ValueError(f"no message from the bot has a component with custom_id={custom_id!r}")

    def _guild_of(self, channel_id: int) -> int | None:
        channel = self._channels.get(channel_id)
        return None if channel is None else channel.guild_id

    # --------------------------------------------------------------- broadcast
    def _in_shard(self, session: _Session, guild_id: int | None) -> bool:
        if guild_id is None:
            return session.shard[0] == 0
        shard_id, count = session.shard
        return (guild_id >> 22) % max(count, 1) == shard_id

    def _dispatch(self, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        message = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append((session.seq, message))
        if session.conn is not None:
            session.conn.send(message)

    def _broadcast(
        self,
        event: str,
        data: dict[str, Any],
        guild_id: int | None,
        transform: Callable[[_Session, dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if session.conn is None and now - session.detached_at > _RESUME_WINDOW:
                del self._sessions[sid]
                continue
            if not self._in_shard(session, guild_id):
                continue
            out = data if transform is None else transform(session, data)
            if out is not None:
                self._dispatch(session, event, out)

    def _broadcast_message(self, payload: dict[str, Any]) -> None:
        gid = int(payload["guild_id"]) if "guild_id" in payload else None
        self._broadcast("MESSAGE_CREATE", payload, gid, self._visible_message)

    def _broadcast_interaction(self, payload: dict[str, Any]) -> None:
        gid = int(payload["guild_id"]) if "guild_id" in payload else None
        self._broadcast("INTERACTION_CREATE", payload, gid)

    def _visible_message(self, session: _Session, message: dict[str, Any]) -> dict[str, Any] | None:
        if not self.enforce_intents:
            return message
        in_guild = "guild_id" in message
        if not session.intents & (_GUILD_MESSAGES if in_guild else _DIRECT_MESSAGES):
            return None
        own = message["author"]["id"] == str(self.bot_user_id)
        mentioned = any(m["id"] == str(self.bot_user_id) for m in message.get("mentions", []))
        if in_guild and not own and not mentioned and not session.intents & _MESSAGE_CONTENT:
            return {**message, "content": "", "embeds": [], "attachments": [], "components": []}
        return message

    def _guild_create_for(self, session: _Session, guild: dict[str, Any]) -> dict[str, Any]:
        # Like Discord: GUILD_CREATE lists every member only to a client with the
        # presences intent (small guilds); others get the bot itself and must
        # request the rest (op 8), which discord.py does with the members intent.
        if session.intents & _GUILD_PRESENCES:
            return guild
        me = str(self.bot_user_id)
        return {**guild, "members": [m for m in guild["members"] if m["user"]["id"] == me]}

    def _send_to_live(self, payload: dict[str, Any]) -> None:
        for conn in list(self._conns):
            if conn.session is not None:
                conn.send(payload)

    # ----------------------------------------------------------------- gateway
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            raise web.HTTPServiceUnavailable()
        # A short close timeout: stop() must not wait 10 s for a peer that is gone.
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        self._record_call("GATEWAY CONNECT", dict(request.query))
        conn = _Connection(ws, zlib_stream=request.query.get("compress") == "zlib-stream")
        self._conns.add(conn)
        conn.writer = asyncio.ensure_future(conn.write_forever())
        conn.send({"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}})
        # The code of the client's close frame; None when the socket just died
        # or we closed it (aiohttp reports 1000 for both).
        client_code: int | None = None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    client_code = int(msg.data)
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                await self._on_gateway_payload(conn, payload)
        finally:
            self._conns.discard(conn)
            conn.queue.put_nowait(None)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.detached_at = time.monotonic()
                # A clean close (client.close()) ends the session, as on Discord.
                if client_code == 1000 and not conn.closed_by_server:
                    self._sessions.pop(session.id, None)
                with self._changed:
                    self._live -= 1
                    self._changed.notify_all()
        return ws

    async def _on_gateway_payload(self, conn: _Connection, payload: Mapping[str, Any]) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            conn.send({"op": 11})
        elif op == 2:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif op == 8:
            self._record_call("GATEWAY REQUEST_GUILD_MEMBERS", dict(data or {}))
            if conn.session is not None:
                self._member_chunks(conn.session, data if isinstance(data, dict) else {})
        else:
            names = {3: "PRESENCE_UPDATE", 4: "VOICE_STATE_UPDATE"}
            name = names.get(op, f"OP_{op}") if isinstance(op, int) else "OP_?"
            self._record_call(f"GATEWAY {name}", {"d": data})

    def _token_ok(self, token: Any) -> bool:
        return self.token is None or token == self.token

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        session = _Session(
            id=secrets.token_hex(16),
            intents=int(data.get("intents", 0)),
            shard=(int(shard[0]), int(shard[1])),
            conn=conn,
        )
        self._sessions[session.id] = session
        conn.session = session
        with self._state:
            guilds = [g for g in self._guilds.values() if self._in_shard(session, g.id)]
            creates = [self._guild_payload(g) for g in guilds]
            me = {**self._user(self.bot_user_id), "verified": True, "mfa_enabled": False}
        self._dispatch(
            session,
            "READY",
            {
                "v": API_VERSION,
                "user": me,
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": list(session.shard),
                "application": {"id": str(self.application_id), "flags": _APPLICATION_FLAGS},
                "private_channels": [],
                "relationships": [],
                "user_settings": {},
                "geo_ordered_rtc_regions": [],
            },
        )
        for create in creates:
            self._dispatch(session, "GUILD_CREATE", self._guild_create_for(session, create))
        record = {k: v for k, v in data.items() if k != "token"}
        record["session_id"] = session.id
        self._record_call(GATEWAY_IDENTIFY, record)
        with self._changed:
            self._identifies.append(record)
            self._live += 1
            self._changed.notify_all()

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        self._record_call(GATEWAY_RESUME, {k: v for k, v in data.items() if k != "token"})
        if not self._token_ok(data.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            conn.send({"op": 9, "d": False})
            return
        old = session.conn
        if old is not None:
            # The client gave up on the old socket; it must not keep the session.
            old.session = None
            self._spawn(old.close(4000))
        else:
            with self._changed:
                self._live += 1
                self._changed.notify_all()
        session.conn = conn
        conn.session = session
        seen = data.get("seq")
        for seq, message in list(session.buffer):
            if seen is None or seq > int(seen):
                conn.send(message)
        self._dispatch(session, "RESUMED", {})

    def _member_chunks(self, session: _Session, data: Mapping[str, Any]) -> None:
        raw_ids = data.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        query = str(data.get("query") or "")
        limit = int(data.get("limit") or 0)
        wanted = data.get("user_ids")
        if wanted is not None and not isinstance(wanted, list):
            wanted = [wanted]
        with self._state:
            for raw in guild_ids:
                guild = self._guilds.get(int(raw)) if raw is not None else None
                if guild is None:
                    continue
                members = []
                for uid in guild.members:
                    name = str(self._users.get(uid, {}).get("username", ""))
                    if wanted is not None and str(uid) not in {str(w) for w in wanted}:
                        continue
                    if query and not name.lower().startswith(query.lower()):
                        continue
                    members.append(self._member(guild, uid))
                if limit:
                    members = members[:limit]
                chunk: dict[str, Any] = {
                    "guild_id": str(guild.id),
                    "members": members,
                    "chunk_index": 0,
                    "chunk_count": 1,
                }
                if data.get("nonce") is not None:
                    chunk["nonce"] = data["nonce"]
                if data.get("presences"):
                    chunk["presences"] = []
                if wanted is not None:
                    found = {m["user"]["id"] for m in members}
                    chunk["not_found"] = [w for w in wanted if str(w) not in found]
                self._dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -------------------------------------------------------------------- REST
    def _route_list(self) -> list[tuple[str, str, _Handler]]:
        return [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("GET", "/channels/{channel_id}/messages/pins", self._get_pins),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("POST", "/channels/{channel_id}/threads", self._start_thread),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._start_thread),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            ("POST", "/applications/{application_id}/commands", self._post_command),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
            ),
            (
                "POST",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._post_command,
            ),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._followup),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._get_webhook_message,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._edit_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._delete_webhook_message,
            ),
        ]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await _read_body(request)
        name, params = f"{request.method} {path}", {}
        handler: _Handler = self._fallback
        for method, template, regex, candidate in self._table:
            match = regex.fullmatch(path) if method == request.method else None
            if match is not None:
                name, params, handler = f"{method} {template}", match.groupdict(), candidate
                break
        recorded: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if isinstance(body, list):
            recorded["body"] = body
        recorded.update(params)
        if request.query:
            recorded["query"] = dict(request.query)
        if files:
            recorded["files"] = files
        self._record_call(name, recorded)

        channel = re.match(r"/channels/(\d+)", path)
        chat = channel.group(1) if channel else self._interaction_chat(params)
        call = _Call(name=name, path=params, query=request.query, body=body, files=files, chat=chat)

        # Interaction callbacks and webhooks authenticate by their token, not the bot's.
        webhook_call = path.startswith(("/interactions/", "/webhooks/"))
        authorization = request.headers.get("Authorization")
        if not webhook_call and self.token is not None and authorization != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        if channel is not None:
            cid = int(channel.group(1))
            with self._state:
                if cid in self._deleted:
                    return _error(404, 10003, "Unknown Channel")
                persistent = self._channel_failures.get(cid)
            if persistent is not None:
                return _json_response(persistent[1], persistent[0])
        failure = self._take_failure(name, chat)
        if failure is not None:
            return _json_response(failure.body, failure.status, failure.headers)
        try:
            return await handler(call)
        except Exception as exc:
            # A 500 would make discord.py retry for ~25 s; a 400 surfaces at once.
            _log.exception("stand-in failed to answer %s", name)
            return _error(400, 0, f"restart-guard Discord stand-in failed: {exc!r}")

    def _interaction_chat(self, params: Mapping[str, str]) -> str | None:
        interaction = self._lookup_interaction(params)
        return None if interaction is None else str(interaction.channel_id)

    def _lookup_interaction(self, params: Mapping[str, str]) -> _Interaction | None:
        token = params.get("interaction_token") or params.get("webhook_token")
        if token is None:
            return None
        with self._state:
            raw_id = params.get("interaction_id")
            if raw_id is not None:
                found = self._interactions.get(int(raw_id)) if raw_id.isdigit() else None
                return found if found is not None and found.token == token else None
            return next((i for i in self._interactions.values() if i.token == token), None)

    async def _fallback(self, call: _Call) -> web.StreamResponse:
        method = call.name.split(" ", 1)[0]
        if method in ("PUT", "DELETE"):
            return _no_content()
        last = call.name.rsplit("/", 1)[-1]
        if method == "GET" and not last.isdigit() and not last.startswith("@"):
            return _json_response([])
        return _json_response({})

    # users & application
    async def _get_me(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {**self._user(self.bot_user_id), "verified": True, "mfa_enabled": False}
        )

    async def _get_application(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_name,
                "icon": None,
                "description": "",
                "summary": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": self._user(self.user_id),
                "team": None,
                "flags": _APPLICATION_FLAGS,
                "bot": self._user(self.bot_user_id),
                "rpc_origins": [],
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            }
        )

    async def _get_gateway(self, call: _Call) -> web.StreamResponse:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_user(self, call: _Call) -> web.StreamResponse:
        raw = call.path["user_id"]
        with self._state:
            if not raw.isdigit() or int(raw) not in self._users:
                return _error(404, 10013, "Unknown User")
            return _json_response(self._user(int(raw)))

    async def _create_dm(self, call: _Call) -> web.StreamResponse:
        recipient = call.json.get("recipient_id")
        if recipient is None:
            return _error(400, 50035, "Invalid Form Body")
        cid = self.dm_channel_id(int(recipient))
        with self._state:
            return _json_response(self._channel_payload(self._channels[cid]))

    # channels & messages
    async def _get_channel(self, call: _Call) -> web.StreamResponse:
        with self._state:
            channel = self._channels.get(int(call.path["channel_id"]))
            if channel is None:
                return _error(404, 10003, "Unknown Channel")
            return _json_response(self._channel_payload(channel))

    def _post(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[dict[str, Any]],
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store and broadcast a message from the bot; callers record it."""
        with self._state:
            fields: dict[str, Any] = {
                k: body[k] for k in ("embeds", "components", "tts", "nonce", "poll") if k in body
            }
            if body.get("flags"):
                fields["flags"] = int(body["flags"])
            reference = body.get("message_reference")
            if reference:
                fields["message_reference"] = {
                    "type": 0,
                    "channel_id": str(channel_id),
                    **reference,
                }
                referenced = self._messages.get(int(reference.get("message_id", 0)))
                if referenced is not None:
                    fields["referenced_message"] = referenced
                fields["type"] = 19
            if files:
                fields["attachments"] = [
                    {
                        "id": str(self.new_id()),
                        "filename": f["filename"],
                        "size": f["size"],
                        "url": f"{self.url}/attachments/{channel_id}/{f['filename']}",
                        "proxy_url": f"{self.url}/attachments/{channel_id}/{f['filename']}",
                        "content_type": f.get("content_type"),
                    }
                    for f in files
                ]
            fields.update(extra or {})
            payload = self._message_payload(
                channel_id,
                self._guild_of(channel_id),
                self.bot_user_id,
                str(body.get("content") or ""),
                fields,
            )
        if self.echo_own_messages and not int(payload.get("flags", 0)) & 64:
            self._broadcast_message(payload)
        return payload

    def _record_sent(
        self, channel_id: int, text: str, body: Mapping[str, Any], **marks: Any
    ) -> None:
        with self._state:
            channel = self._channels.get(channel_id)
        params: dict[str, Any] = dict(body)
        params["channel_id"] = str(channel_id)
        if channel is not None and channel.guild_id is not None:
            params["guild_id"] = str(channel.guild_id)
        thread = None
        if channel is not None and channel.is_thread:
            thread = str(channel_id)
            params["parent_id"] = str(channel.parent_id)
        params.update(marks)
        self._record(SentMessage(chat=str(channel_id), thread=thread, text=text, params=params))

    async def _create_message(self, call: _Call) -> web.StreamResponse:
        channel_id = int(call.path["channel_id"])
        body = call.json
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            # As Discord: a nonce this author used in this channel a few minutes ago
            # answers with that message; no second one is created.
            with self._state:
                for earlier in reversed(self._messages.values()):
                    if (
                        earlier["channel_id"] == str(channel_id)
                        and earlier.get("nonce") == body["nonce"]
                        and earlier["author"]["id"] == str(self.bot_user_id)
                        and _snowflake_age(int(earlier["id"])) < _NONCE_WINDOW
                    ):
                        return _json_response(earlier)
        payload = self._post(channel_id, body, call.files)
        self._record_sent(
            channel_id, payload["content"], body, message_id=payload["id"], **_files_mark(call)
        )
        return _json_response(payload)

    async def _get_messages(self, call: _Call) -> web.StreamResponse:
        channel_id = call.path["channel_id"]
        limit = int(call.query.get("limit", "50"))
        before = int(call.query.get("before", "0") or 0)
        after = int(call.query.get("after", "0") or 0)
        with self._state:
            found = [
                m
                for m in reversed(self._messages.values())
                if m["channel_id"] == channel_id
                and (not before or int(m["id"]) < before)
                and (not after or int(m["id"]) > after)
            ]
        return _json_response(found[:limit])

    async def _get_pins(self, call: _Call) -> web.StreamResponse:
        return _json_response({"items": [], "has_more": False})

    async def _get_message(self, call: _Call) -> web.StreamResponse:
        with self._state:
            message = self._messages.get(int(call.path["message_id"]))
            if message is None or message["channel_id"] != call.path["channel_id"]:
                return _error(404, 10008, "Unknown Message")
            return _json_response(message)

    def _edit(self, message: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        with self._state:
            for key in ("content", "embeds", "components", "attachments", "flags"):
                if key in body and body[key] is not None:
                    message[key] = body[key]
            message["edited_timestamp"] = _now_iso()
            updated = dict(message)
        gid = int(updated["guild_id"]) if "guild_id" in updated else None
        self._broadcast("MESSAGE_UPDATE", updated, gid, self._visible_message)
        return updated

    async def _edit_message(self, call: _Call) -> web.StreamResponse:
        with self._state:
            message = self._messages.get(int(call.path["message_id"]))
        if message is None or message["channel_id"] != call.path["channel_id"]:
            return _error(404, 10008, "Unknown Message")
        if message["author"]["id"] != str(self.bot_user_id) and "content" in call.json:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        updated = self._edit(message, call.json)
        self._record_sent(
            int(call.path["channel_id"]),
            updated["content"],
            call.json,
            message_id=updated["id"],
            edit=True,
        )
        return _json_response(updated)

    async def _delete_message(self, call: _Call) -> web.StreamResponse:
        mid = int(call.path["message_id"])
        with self._state:
            message = self._messages.pop(mid, None)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        data: dict[str, Any] = {
            k: message[k] for k in ("id", "channel_id", "guild_id") if k in message
        }
        gid = int(message["guild_id"]) if "guild_id" in message else None
        self._broadcast("MESSAGE_DELETE", data, gid)
        return _no_content()

    async def _typing(self, call: _Call) -> web.StreamResponse:
        return _no_content()

    async def _start_thread(self, call: _Call) -> web.StreamResponse:
        parent_id = int(call.path["channel_id"])
        with self._state:
            parent = self._channels.get(parent_id)
            if parent is None or parent.guild_id is None or parent.is_thread:
                return _error(400, 50024, "Cannot execute action on this channel type")
            raw_mid = call.path.get("message_id")
            tid = int(raw_mid) if raw_mid is not None else self.new_id()
            private = call.json.get("type") == _PRIVATE_THREAD
        payload = self._create_thread(
            parent_id,
            tid,
            str(call.json.get("name") or "thread"),
            private=private,
            owner_id=self.bot_user_id,
        )
        return _json_response(payload)

    # guilds
    async def _get_guild(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            payload = self._guild_payload(guild)
        for key in ("members", "channels", "threads", "joined_at", "large", "member_count"):
            payload.pop(key, None)
        return _json_response(payload)

    async def _get_guild_channels(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            channels = [
                self._channel_payload(self._channels[c])
                for c in guild.channel_ids
                if c in self._channels and not self._channels[c].is_thread
            ]
        return _json_response(channels)

    async def _get_member(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            uid = int(call.path["user_id"]) if call.path["user_id"].isdigit() else -1
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            if uid not in guild.members:
                return _error(404, 10007, "Unknown Member")
            return _json_response(self._member(guild, uid))

    # app commands
    @staticmethod
    def _scope(call: _Call) -> int | None:
        raw = call.path.get("guild_id")
        return None if raw is None else int(raw)

    async def _get_commands(self, call: _Call) -> web.StreamResponse:
        with self._state:
            return _json_response(list(self._commands.get(self._scope(call), [])))

    async def _put_commands(self, call: _Call) -> web.StreamResponse:
        scope = self._scope(call)
        body = call.body if isinstance(call.body, list) else []
        with self._state:
            stored = [self._stored_command(scope, c) for c in body]
            self._commands[scope] = stored
        return _json_response(stored)

    async def _post_command(self, call: _Call) -> web.StreamResponse:
        scope = self._scope(call)
        with self._state:
            command = self._stored_command(scope, call.json)
            commands = [c for c in self._commands.get(scope, []) if c["name"] != command["name"]]
            self._commands[scope] = [*commands, command]
        return _json_response(command, 201)

    # interactions & webhooks
    async def _callback(self, call: _Call) -> web.StreamResponse:
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return _error(404, 10062, "Unknown interaction")
        if interaction.responded:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        interaction.responded = True
        body = call.json
        rtype = int(body.get("type", 0))
        data: dict[str, Any] = body.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & 64)
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": ephemeral,
            },
            "resource": {"type": rtype},
        }
        marks = {
            "interaction_response": True,
            "interaction_id": str(interaction.id),
            "response_type": rtype,
        }
        if rtype in (4, 5):
            extra: dict[str, Any] = {
                "type": 20 if interaction.type == 2 else 0,
                "application_id": str(self.application_id),
                "interaction_metadata": {
                    "id": str(interaction.id),
                    "type": interaction.type,
                    "user": self._user(interaction.user_id),
                    "authorizing_integration_owners": {},
                },
            }
            if rtype == 5:
                # A deferred response shows "thinking" until it is edited.
                extra["flags"] = 128 | (64 if ephemeral else 0)
                message = self._post(interaction.channel_id, {}, [], extra)
            else:
                message = self._post(interaction.channel_id, data, call.files, extra)
                self._record_sent(
                    interaction.channel_id,
                    message["content"],
                    data,
                    message_id=message["id"],
                    ephemeral=ephemeral,
                    **marks,
                    **_files_mark(call),
                )
            interaction.original_id = int(message["id"])
            result["interaction"]["response_message_id"] = message["id"]
            result["resource"]["message"] = message
        elif rtype == 7 and interaction.message_id is not None:
            with self._state:
                target = self._messages.get(interaction.message_id)
            if target is not None:
                updated = self._edit(target, data)
                self._record_sent(
                    interaction.channel_id,
                    updated["content"],
                    data,
                    message_id=updated["id"],
                    edit=True,
                    **marks,
                )
                result["interaction"]["response_message_id"] = updated["id"]
                result["resource"]["message"] = updated
        if "with_response" not in call.query or call.query["with_response"] in ("0", "false"):
            return _no_content()
        return _json_response(result)

    async def _followup(self, call: _Call) -> web.StreamResponse:
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        body = call.json
        extra = {"webhook_id": str(self.application_id), "application_id": str(self.application_id)}
        message = self._post(interaction.channel_id, body, call.files, extra)
        self._record_sent(
            interaction.channel_id,
            message["content"],
            body,
            message_id=message["id"],
            followup=True,
            interaction_id=str(interaction.id),
            **_files_mark(call),
        )
        if call.query.get("wait") in ("1", "true", "True"):
            return _json_response(message)
        return _no_content()

    def _webhook_message(self, call: _Call) -> tuple[_Interaction | None, dict[str, Any] | None]:
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return None, None
        raw = call.path["message_id"]
        mid = (
            interaction.original_id if raw == "@original" else (int(raw) if raw.isdigit() else None)
        )
        with self._state:
            return interaction, None if mid is None else self._messages.get(mid)

    async def _get_webhook_message(self, call: _Call) -> web.StreamResponse:
        interaction, message = self._webhook_message(call)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return _json_response(message)

    async def _edit_webhook_message(self, call: _Call) -> web.StreamResponse:
        interaction, message = self._webhook_message(call)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        body = dict(call.json)
        if "flags" not in body and int(message.get("flags", 0)) & 128:
            # Filling in a deferred response clears "thinking" but keeps "ephemeral".
            body["flags"] = int(message["flags"]) & ~128
        updated = self._edit(message, body)
        self._record_sent(
            interaction.channel_id,
            updated["content"],
            call.json,
            message_id=updated["id"],
            edit=True,
            interaction_id=str(interaction.id),
            **_files_mark(call),
        )
        return _json_response(updated)

    async def _delete_webhook_message(self, call: _Call) -> web.StreamResponse:
        interaction, message = self._webhook_message(call)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        if message is None:
            return _error(404, 10008, "Unknown Message")
        with self._state:
            self._messages.pop(int(message["id"]), None)
        return _no_content()


# -------------------------------------------------------------------------- helpers


async def _read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        body: Any = {}
        files: list[dict[str, Any]] = []
        for key, value in form.items():
            if isinstance(value, web.FileField):
                content = value.file.read()
                files.append(
                    {
                        "field": key,
                        "filename": value.filename,
                        "size": len(content),
                        "content_type": value.content_type,
                    }
                )
            elif key == "payload_json":
                body = json.loads(value if isinstance(value, str) else value.decode())
        return body, files
    if not request.can_read_body:
        return None, []
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        return raw.decode(errors="replace"), []


def _route_param(match: re.Match[str]) -> str:
    # Ids are snowflakes (or "@original"/"@me"), so ".../messages/pins" is not a message.
    name = match.group(1)
    pattern = r"\d+|@[a-z]+" if name.endswith("_id") else r"[^/]+"
    return f"(?P<{name}>{pattern})"


def _files_mark(call: _Call) -> dict[str, Any]:
    return {"files": call.files} if call.files else {}


def _has_custom_id(components: Iterable[Any], custom_id: str) -> bool:
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == custom_id:
            return True
        if _has_custom_id(component.get("components", []), custom_id):
            return True
        accessory = component.get("accessory")
        if isinstance(accessory, dict) and _has_custom_id([accessory], custom_id):
            return True
    return False


def _find_option(definition: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if definition is None:
        return None
    for option in definition.get("options") or []:
        if isinstance(option, dict) and option.get("name") == name:
            return option
    return None


def _option(name: str, value: Any, definition: Mapping[str, Any] | None) -> dict[str, Any]:
    if definition is not None and "type" in definition:
        kind = int(definition["type"])
    elif isinstance(value, bool):
        kind = 5
    elif isinstance(value, int):
        kind = 4
    elif isinstance(value, float):
        kind = 10
    elif isinstance(value, str):
        kind = 3
    else:
        raise TypeError(
            f"option {name!r}: pass str/int/float/bool values, or a raw option list with resolved="
        )
    return {"name": name, "type": kind, "value": value}
