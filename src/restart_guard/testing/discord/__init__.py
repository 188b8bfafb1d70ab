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
  :meth:`~DiscordStandIn.hold_handshakes` makes it a slow gateway: sockets
  open, HELLO waits for :meth:`~DiscordStandIn.release_handshakes`.
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

# The package is split by job: _model (constants, the model's records), _world
# (state and payloads), _gateway, _controls (what a test changes), _rest,
# _interactions, _server (DiscordStandIn) and _pointing. Each layer is a base
# class of the next, so DiscordStandIn keeps the one-object API it always had.

from .._standin import Failure, SentMessage
from .._standin import StandIn as StandIn  # importable from here before the split
from ._model import (
    API_VERSION,
    CREATE_MESSAGE,
    DEFAULT_BOT_USER_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_THREAD_ID,
    DEFAULT_USER_ID,
    EDIT_MESSAGE,
    EDIT_WEBHOOK_MESSAGE,
    ENV_API,
    ENV_GATEWAY,
    EXECUTE_WEBHOOK,
    GATEWAY_IDENTIFY,
    GATEWAY_RESUME,
    INTERACTION_CALLBACK,
)
from ._pointing import DiscordPointer, online, point_discord_at, point_discord_at_env
from ._server import DiscordStandIn

__all__ = [
    "API_VERSION",
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
    "online",
    "point_discord_at",
    "point_discord_at_env",
]
