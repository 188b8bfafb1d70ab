"""The Discord stand-in against a real discord.py Client / commands.Bot (no mocks).

Every test waits for an observable condition with a deadline; none sleeps.
The stand-in's blocking waits run through ``asyncio.to_thread`` because the
bot shares the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands
from discord.ext import commands

from discord_views import ask_with_a_button
from restart_guard.testing.discord import (
    CREATE_MESSAGE,
    DEFAULT_GUILD_ID,
    ENV_API,
    ENV_GATEWAY,
    GATEWAY_IDENTIFY,
    GATEWAY_RESUME,
    INTERACTION_CALLBACK,
    DiscordStandIn,
    SentMessage,
    online,
    point_discord_at,
    point_discord_at_env,
)

DEADLINE = 10.0


def intents(*, content: bool = True) -> discord.Intents:
    chosen = discord.Intents.default()
    chosen.message_content = content
    return chosen


def make_client(**kwargs: Any) -> discord.Client:
    kwargs.setdefault("intents", intents())
    return discord.Client(guild_ready_timeout=0.2, **kwargs)


def make_bot(**kwargs: Any) -> commands.Bot:
    kwargs.setdefault("intents", intents())
    return commands.Bot(command_prefix="!", guild_ready_timeout=0.2, **kwargs)


@contextlib.asynccontextmanager
async def logged_in(client: discord.Client) -> AsyncIterator[None]:
    """HTTP only, no gateway: enough for posting."""
    await client.login("test-token")
    try:
        yield
    finally:
        await client.close()


async def sent(
    api: DiscordStandIn, predicate: Callable[[SentMessage], bool], count: int = 1
) -> list[SentMessage]:
    return await asyncio.to_thread(api.wait_for_sent, predicate, DEADLINE, count)


async def calls(
    api: DiscordStandIn,
    method: str,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
    count: int = 1,
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(api.wait_for_call, method, predicate, DEADLINE, count)


def first_message(client: discord.Client) -> asyncio.Future[discord.Message]:
    """A future for the next message on_message sees that the bot did not write."""
    future: asyncio.Future[discord.Message] = asyncio.get_running_loop().create_future()

    async def on_message(message: discord.Message) -> None:
        if message.author != client.user and not future.done():
            future.set_result(message)

    client.event(on_message)
    return future


@pytest.fixture
async def api() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn() as standin:
        with point_discord_at(standin):
            yield standin


# ------------------------------------------------------------------ gateway
async def test_login_ready_and_guild_cache(api: DiscordStandIn) -> None:
    client = make_client()
    readied = asyncio.Event()

    @client.event
    async def on_ready() -> None:
        readied.set()

    async with online(client):
        await asyncio.wait_for(readied.wait(), DEADLINE)
        assert client.user is not None
        assert client.user.id == api.bot_user_id
        assert client.application_id == api.application_id
        guild = client.get_guild(api.guild_id)
        assert guild is not None
        assert guild.me is not None
        channel = guild.get_channel(api.channel_id)
        assert isinstance(channel, discord.TextChannel)
        thread = guild.get_thread(api.thread_id)
        assert isinstance(thread, discord.Thread)
        assert thread.parent_id == api.channel_id
        assert api.connected

        names = [name for name, _ in api.calls]
        assert names[:2] == ["GET /users/@me", "GET /oauth2/applications/@me"]
        connect = dict(api.calls)["GATEWAY CONNECT"]
        # discord.py asks for a zlib-compressed stream; the stand-in honours it.
        assert connect["v"] == "10"
        assert connect["encoding"] == "json"
        assert connect["compress"] == "zlib-stream"
        identify = api.identifies[0]
        assert identify["intents"] == client.intents.value
        assert "token" not in identify


async def test_members_intent_chunks_without_stalling_ready(api: DiscordStandIn) -> None:
    # With the members intent (and no presences) discord.py requests members
    # (op 8) and waits up to 5 s per guild for the chunk before on_ready.
    chosen = intents()
    chosen.members = True
    client = make_client(intents=chosen)
    started = time.monotonic()
    async with online(client):
        assert time.monotonic() - started < 4.0
        guild = client.get_guild(api.guild_id)
        assert guild is not None
        assert guild.chunked
        assert guild.get_member(api.user_id) is not None
        await calls(api, "GATEWAY REQUEST_GUILD_MEMBERS")


async def test_on_message_in_thread_and_reply_recorded(api: DiscordStandIn) -> None:
    client = make_client()
    received = first_message(client)
    async with online(client):
        message_id = api.inject_message(api.thread_id, "hello")
        message = await asyncio.wait_for(received, DEADLINE)
        assert message.id == message_id
        assert message.content == "hello"
        assert isinstance(message.channel, discord.Thread)
        assert message.channel.id == api.thread_id
        assert message.guild is not None
        assert message.guild.id == api.guild_id
        assert isinstance(message.author, discord.Member)
        assert message.author.id == api.user_id

        reply = await message.channel.send("re: hello")
        assert reply.author.id == api.bot_user_id

        [posted] = await sent(api, lambda m: m.text == "re: hello")
        assert posted.chat == str(api.thread_id)
        assert posted.thread == str(api.thread_id)
        assert posted.params["parent_id"] == str(api.channel_id)
        assert posted.params["guild_id"] == str(api.guild_id)
        assert posted.params["message_id"] == str(reply.id)
        assert api.sent_to(api.thread_id, api.thread_id) == [posted]
        assert api.message(reply.id) is not None


async def test_message_content_needs_the_intent(api: DiscordStandIn) -> None:
    client = make_client(intents=intents(content=False))
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        await seen.put(message)

    async with online(client):
        api.inject_message(api.channel_id, "secret")
        api.inject_message(api.channel_id, f"<@{api.bot_user_id}> hi")
        api.inject_dm(None, "in a DM")
        got = [await asyncio.wait_for(seen.get(), DEADLINE) for _ in range(3)]
        assert [m.content for m in got] == ["", f"<@{api.bot_user_id}> hi", "in a DM"]
        assert client.user in got[1].mentions


async def test_dm_roundtrip(api: DiscordStandIn) -> None:
    client = make_client()
    received = first_message(client)
    async with online(client):
        api.inject_dm(api.user_id, "hi bot")
        message = await asyncio.wait_for(received, DEADLINE)
        assert isinstance(message.channel, discord.DMChannel)
        assert message.guild is None
        await message.channel.send("hi human")
        user = await client.fetch_user(api.user_id)
        await user.send("second")
        dm = str(api.dm_channel_id(api.user_id))
        posted = await sent(api, lambda m: m.chat == dm, count=2)
        assert [m.text for m in posted] == ["hi human", "second"]
        assert all(m.thread is None for m in posted)


async def test_reconnect_and_dropped_socket_resume_the_session(api: DiscordStandIn) -> None:
    client = make_client()
    resumed: asyncio.Queue[None] = asyncio.Queue()
    received = first_message(client)

    @client.event
    async def on_resumed() -> None:
        await resumed.put(None)

    async with online(client):
        api.request_reconnect()  # op 7
        await asyncio.wait_for(resumed.get(), DEADLINE)
        api.disconnect_clients(4000)  # the server drops the socket
        await asyncio.wait_for(resumed.get(), DEADLINE)
        resumes = await calls(api, GATEWAY_RESUME, count=2)
        assert {r["session_id"] for r in resumes} == {api.identifies[0]["session_id"]}
        assert len(api.identifies) == 1
        api.inject_message(api.channel_id, "after resume")
        message = await asyncio.wait_for(received, DEADLINE)
        assert message.content == "after resume"


# ------------------------------------------------------------------ commands
async def test_prefix_command_runs(api: DiscordStandIn) -> None:
    bot = make_bot()

    @bot.command()
    async def ping(ctx: commands.Context[commands.Bot]) -> None:
        await ctx.reply("pong")

    async with online(bot):
        message_id = api.inject_message(api.channel_id, "!ping")
        [posted] = await sent(api, lambda m: m.text == "pong")
        assert posted.chat == str(api.channel_id)
        assert posted.thread is None
        assert posted.params["message_reference"]["message_id"] == message_id


class SyncingBot(commands.Bot):
    async def setup_hook(self) -> None:
        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(DEFAULT_GUILD_ID))


async def test_slash_command_runs_and_response_recorded(api: DiscordStandIn) -> None:
    bot = SyncingBot(command_prefix="!", intents=intents(), guild_ready_timeout=0.2)

    @bot.tree.command(description="repeat")
    async def echo(interaction: discord.Interaction, text: str, times: int) -> None:
        await interaction.response.send_message(" ".join([text] * times))

    async with online(bot):
        [synced] = await calls(api, "PUT /applications/{application_id}/commands")
        assert [c["name"] for c in synced["body"]] == ["echo"]
        interaction_id = api.inject_slash_command("echo", api.thread_id, {"text": "hi", "times": 2})
        [posted] = await sent(api, lambda m: m.text == "hi hi")
        assert posted.chat == str(api.thread_id)
        assert posted.params["interaction_response"] is True
        assert posted.params["interaction_id"] == str(interaction_id)
        [callback] = await calls(api, INTERACTION_CALLBACK)
        assert callback["type"] == 4
        assert callback["interaction_id"] == str(interaction_id)


async def test_deferred_guild_subcommand_with_followup(api: DiscordStandIn) -> None:
    bot = SyncingBot(command_prefix="!", intents=intents(), guild_ready_timeout=0.2)
    config = app_commands.Group(name="config", description="settings")

    @config.command(name="set", description="set a value")
    async def set_(interaction: discord.Interaction, key: str, on: bool) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"{key}={on}")
        await interaction.followup.send("saved")

    bot.tree.add_command(config, guild=discord.Object(api.guild_id))

    async with online(bot):
        # Found as a guild command because the bot synced it to that guild.
        api.inject_slash_command("config set", api.channel_id, {"key": "mode", "on": True})
        edited, followup = await sent(api, lambda m: m.text in ("mode=True", "saved"), count=2)
        assert edited.params["edit"] is True
        assert followup.params["followup"] is True
        assert {edited.chat, followup.chat} == {str(api.channel_id)}
        [callback] = await calls(api, INTERACTION_CALLBACK)
        assert callback["type"] == 5


async def test_failed_interaction_response_raises_in_the_command(api: DiscordStandIn) -> None:
    # What a bot sees when it answers an interaction after its token expired.
    bot = SyncingBot(command_prefix="!", intents=intents(), guild_ready_timeout=0.2)
    errors: asyncio.Queue[discord.HTTPException] = asyncio.Queue()

    @bot.tree.command(description="late")
    async def late(interaction: discord.Interaction) -> None:
        try:
            await interaction.response.send_message("too late")
        except discord.HTTPException as exc:
            await errors.put(exc)

    async with online(bot):
        api.fail_next(404, 10062, "Unknown interaction", method=INTERACTION_CALLBACK)
        api.inject_slash_command("late", api.channel_id)
        error = await asyncio.wait_for(errors.get(), DEADLINE)
        assert isinstance(error, discord.NotFound)
        assert error.code == 10062
        assert api.sent == []


async def test_button_click_runs_the_view_callback(api: DiscordStandIn) -> None:
    bot = make_bot()
    clicked = asyncio.Event()

    async def confirm(interaction: discord.Interaction) -> None:
        clicked.set()
        await interaction.response.edit_message(content="confirmed", view=None)

    ask_with_a_button(bot, "sure?", "confirm", confirm)

    async with online(bot):
        api.inject_message(api.channel_id, "!ask")
        [question] = await sent(api, lambda m: m.text == "sure?")
        api.inject_component("confirm", api.channel_id)
        await asyncio.wait_for(clicked.wait(), DEADLINE)
        [answer] = await sent(api, lambda m: m.text == "confirmed")
        assert answer.params["edit"] is True
        assert answer.params["response_type"] == 7
        assert answer.params["message_id"] == question.params["message_id"]


# ------------------------------------------------------------------ HTTP & failures
async def test_post_from_setup_hook_before_the_gateway(api: DiscordStandIn) -> None:
    class Announcer(discord.Client):
        async def setup_hook(self) -> None:
            channel = self.get_partial_messageable(
                api.channel_id, guild_id=api.guild_id, type=discord.ChannelType.text
            )
            await channel.send("back online")

    client = Announcer(intents=intents(), guild_ready_timeout=0.2)
    async with online(client):
        [posted] = await sent(api, lambda m: m.text == "back online")
        assert posted.chat == str(api.channel_id)
        names = [name for name, _ in api.calls]
        assert names.index(CREATE_MESSAGE) < names.index(GATEWAY_IDENTIFY)


async def test_injected_failures_raise_discord_exceptions(api: DiscordStandIn) -> None:
    client = make_client()
    async with logged_in(client):
        channel = client.get_partial_messageable(api.channel_id, guild_id=api.guild_id)
        thread = client.get_partial_messageable(api.thread_id, guild_id=api.guild_id)

        api.fail_channel(api.channel_id)
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("nope")
        assert (forbidden.value.status, forbidden.value.code) == (403, 50001)
        assert forbidden.value.text == "Missing Access"
        api.restore_channel(api.channel_id)
        await channel.send("allowed again")

        api.fail_channel(api.channel_id, times=1)
        with pytest.raises(discord.Forbidden):
            await channel.send("once")
        await channel.send("twice")

        api.delete_channel(api.thread_id)
        with pytest.raises(discord.NotFound) as missing:
            await thread.send("into the void")
        assert (missing.value.status, missing.value.code) == (404, 10003)
        assert missing.value.text == "Unknown Channel"

        api.fail_next(400, 50035, "Invalid Form Body")
        with pytest.raises(discord.HTTPException) as invalid:
            await channel.send("bad")
        assert (invalid.value.status, invalid.value.code) == (400, 50035)

        assert [m.text for m in api.sent] == ["allowed again", "twice"]


async def test_rate_limit_is_waited_out_and_retried(api: DiscordStandIn) -> None:
    client = make_client()
    async with logged_in(client):
        channel = client.get_partial_messageable(api.channel_id, guild_id=api.guild_id)
        api.rate_limit(api.channel_id, retry_after=0.3)
        started = time.monotonic()
        message = await channel.send("after the 429")
        assert time.monotonic() - started >= 0.3
        assert message.content == "after the 429"
        attempts = [p for name, p in api.calls if name == CREATE_MESSAGE]
        assert len(attempts) == 2
        assert [m.text for m in api.sent] == ["after the 429"]


async def test_unknown_routes_answer_and_content_type_is_exact(api: DiscordStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api.api_base}/users/@me") as response:
            assert response.headers["Content-Type"] == "application/json"
        async with session.get(f"{api.api_base}/guilds/{api.guild_id}/bans") as response:
            assert await response.json() == []
        async with session.post(f"{api.api_base}/channels/1/pins/2", json={}) as response:
            assert response.status == 200
        async with session.get(f"{api.api_base}/channels/424242") as response:
            assert response.status == 404
            assert await response.json() == {"message": "Unknown Channel", "code": 10003}
    client = make_client()
    async with logged_in(client):
        route = discord.http.Route("GET", "/guilds/{guild_id}/audit-logs", guild_id=api.guild_id)
        assert await client.http.request(route) == []
    assert f"GET /guilds/{api.guild_id}/audit-logs" in [name for name, _ in api.calls]


async def test_stopping_with_a_client_still_connected_is_prompt() -> None:
    # discord.py reconnects the moment its socket is closed; the stand-in must
    # not wait for that new connection while it shuts down.
    standin = DiscordStandIn()
    await standin.start()
    with point_discord_at(standin):
        client = make_client()
        await client.login("test-token")
        connect = asyncio.create_task(client.connect())
        await asyncio.wait_for(client.wait_until_ready(), DEADLINE)
        # A REST connection kept alive holds the server's shutdown open long
        # enough for the gateway reconnect to arrive.
        await client.fetch_channel(standin.channel_id)
        started = time.monotonic()
        await asyncio.wait_for(standin.stop(), DEADLINE)
        assert time.monotonic() - started < 3.0
        assert not standin.connected
        await client.close()
        # connect() is in its reconnect back-off now; no need to sit it out.
        connect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connect


async def test_token_is_checked_when_configured() -> None:
    async with DiscordStandIn(token="right") as strict:
        with point_discord_at(strict):
            client = make_client()
            with pytest.raises(discord.LoginFailure):
                await client.login("wrong")
            await client.close()


# ------------------------------------------------------------------ threads & subprocesses
async def test_thread_runner_with_blocking_waits() -> None:
    with DiscordStandIn.running() as api, point_discord_at(api):
        client = make_client()
        received = first_message(client)
        async with online(client):
            await asyncio.to_thread(api.wait_for_identify, DEADLINE)
            api.inject_message(api.channel_id, "from another thread")
            message = await asyncio.wait_for(received, DEADLINE)
            await message.channel.send("seen")
            await sent(api, lambda m: m.text == "seen")


def test_point_discord_at_env_sets_and_restores() -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    env = {ENV_API: "http://127.0.0.1:1/api/v10", ENV_GATEWAY: "ws://127.0.0.1:1/gateway"}
    pointer = point_discord_at_env(env)
    assert pointer is not None
    with pointer:
        assert discord.http.Route.BASE == "http://127.0.0.1:1/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1/gateway"
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    assert point_discord_at_env({}) is None
    with pytest.raises(ValueError, match=ENV_GATEWAY):
        point_discord_at_env({ENV_API: "http://127.0.0.1:1/api/v10"})
    with point_discord_at("http://127.0.0.1:2"):
        assert discord.http.Route.BASE == "http://127.0.0.1:2/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:2/gateway"
    assert before[0] == discord.http.Route.BASE


async def test_component_presses_are_answered_ephemerally_or_update_the_message(
    api: DiscordStandIn,
) -> None:
    stranger = api.add_user(name="stranger")
    bot = commands.Bot(command_prefix="!", intents=intents(), guild_ready_timeout=0.2)
    presses: list[int] = []

    async def go(interaction: discord.Interaction) -> None:
        presses.append(interaction.user.id)
        if interaction.user.id == stranger:
            await interaction.response.send_message("not yours", ephemeral=True)
        else:
            await interaction.response.edit_message(content="gone", view=None)

    ask_with_a_button(bot, "go?", "go", go)

    async with online(bot):
        api.inject_message(api.channel_id, "!ask")
        [question] = await sent(api, lambda m: m.text == "go?")
        assert question.id is not None
        api.inject_component("go", message_id=int(question.id), user_id=stranger)
        [private] = await sent(api, lambda m: m.text == "not yours")
        assert private.params["ephemeral"] is True
        assert private.params["response_type"] == 4
        api.inject_component("go", message_id=int(question.id))
        await sent(api, lambda m: m.text == "gone")
        message = api.message(int(question.id))
        assert message is not None
        assert message["components"] == []
        with pytest.raises(ValueError, match="no component"):
            api.inject_component("go", message_id=int(question.id))
    assert presses == [stranger, api.user_id]
