"""In-process: which handler runs are tracked, under which key, for how long; and the drain.

A real discord.py client or bot against the loopback stand-in, in the test's
event loop; the markers are read back from the real marker directory. Every
wait is for an observable condition with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from restart_guard.adapters import discord as discord_guard

import restart_guard
from discord_views import ask_with_a_button
from held_runs import Gate, Key, fdatasync_threads, held_then_released, stored
from restart_guard import Conversation, DirectoryStore, Guard, Phase, Settings
from restart_guard.testing.discord import (
    CREATE_MESSAGE,
    GATEWAY_IDENTIFY,
    DiscordStandIn,
    online,
    point_discord_at,
)
from restart_guard.testing.wait import eventually_async

DEADLINE = 10.0


def intents() -> discord.Intents:
    chosen = discord.Intents.default()
    chosen.message_content = True
    return chosen


def make_bot(cls: type[commands.Bot] = commands.Bot, **kwargs: Any) -> commands.Bot:
    return cls(command_prefix="!", intents=intents(), guild_ready_timeout=0.2, **kwargs)


def make_client(cls: type[discord.Client] = discord.Client, **kwargs: Any) -> discord.Client:
    return cls(intents=intents(), guild_ready_timeout=0.2, **kwargs)


@pytest.fixture
async def api() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn() as standin:
        with point_discord_at(standin):
            yield standin


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers"


@pytest.fixture
def protect(markers: Path) -> Callable[..., Any]:
    """``restart_guard.protect`` with this test's marker directory and a short drain."""

    def apply(**options: Any) -> Any:
        options.setdefault("marker_dir", markers)
        options.setdefault("drain_timeout", 5)
        return restart_guard.protect(**options)

    return apply


async def answered(api: DiscordStandIn, text: str) -> None:
    """Until the bot has posted ``text`` (the stand-in waits in a thread: the loop runs on)."""
    await asyncio.to_thread(api.wait_for_sent, lambda m: m.text == text, DEADLINE)


def thread_key(api: DiscordStandIn) -> Key:
    return (str(api.channel_id), str(api.thread_id), str(api.guild_id))


def channel_key(api: DiscordStandIn, channel: int | None = None) -> Key:
    return (str(channel or api.channel_id), None, str(api.guild_id))


def inject_interaction(
    api: DiscordStandIn, kind: int, channel_id: int, data: dict[str, Any]
) -> int:
    """INTERACTION_CREATE of a kind the stand-in has no helper for (context menu, modal).

    Uses the stand-in's payload builder so that responses to it are accepted.
    """
    with api._state:
        payload = api._interaction_payload(kind, channel_id, None, data)
    api._in_loop(api._broadcast_interaction, payload)
    return int(payload["id"])


# ------------------------------------------------------------------ what is tracked
async def test_event_handler_is_tracked_in_its_thread_until_it_returns(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    client, gate = gated_client(protect)
    async with online(client):
        api.inject_message(api.thread_id, "hi")
        await held_then_released(gate, markers, thread_key(api))


def gated_client(
    protect: Callable[..., Any], event: str = "on_message", **options: Any
) -> tuple[discord.Client, Gate]:
    """A guarded client whose ``event`` handler is a fresh gate."""
    client = protect(**options)(make_client())
    gate = Gate()
    client.event(_named(event, gate))
    return client, gate


def _named(name: str, gate: Gate) -> Callable[..., Any]:
    async def handler(*args: Any) -> None:
        await gate(*args)

    handler.__name__ = name
    return handler


async def test_write_ahead_is_durable_while_the_handler_runs_and_never_fsyncs_on_the_loop(
    api: DiscordStandIn,
    protect: Callable[..., Any],
    markers: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    syncing_threads = fdatasync_threads(monkeypatch)
    client, gate = gated_client(protect)
    async with online(client):
        api.inject_message(api.channel_id, "hi")
        await gate.entered.wait()
        # Durable while the handler is still held (how fast: bench/bench_kill_sweep.py).
        await eventually_async(lambda: channel_key(api) in stored(markers))
        assert syncing_threads
        assert threading.get_ident() not in syncing_threads
        gate.release.set()


async def test_listeners_and_prefix_commands_are_tracked(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    bot = protect()(make_bot())
    listener, command = Gate(), Gate()
    bot.add_listener(_named("on_message", listener))

    @bot.command()
    async def slow(ctx: commands.Context[commands.Bot]) -> None:
        await command()

    async with online(bot):
        api.inject_message(api.thread_id, "!slow")
        await listener.entered.wait()
        await command.entered.wait()
        await eventually_async(lambda: stored(markers) == {thread_key(api): Phase.IN_FLIGHT})
        listener.release.set()  # the command (inside Bot.on_message) still runs
        await eventually_async(
            lambda: discord_guard_state(bot).active == {_key(thread_key(api)): 1}
        )
        assert stored(markers) == {thread_key(api): Phase.IN_FLIGHT}
        command.release.set()
        await eventually_async(lambda: stored(markers) == {})


def discord_guard_state(client: discord.Client) -> Any:
    return client.__dict__["_restart_guard"]


def _key(key: Key) -> str:
    chat, thread, scope = key
    return Conversation("discord", chat, thread, scope).key


class Audit:
    """A plain mixin in a user's tree class (changes the class layout CPython checks)."""

    checked = 0


class AuditedTree(Audit, app_commands.CommandTree[Any]):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        self.checked += 1
        return True


@pytest.mark.parametrize("tree_made", ["by Bot, before protect", "after protect", "tree_cls"])
async def test_slash_commands_are_tracked_wherever_the_tree_came_from(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path, tree_made: str
) -> None:
    gate = Gate()
    client: discord.Client
    if tree_made == "after protect":
        client = protect()(make_client())
        tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)
    elif tree_made == "tree_cls":
        bot = make_bot(tree_cls=AuditedTree)
        tree = bot.tree
        client = protect()(bot)
    else:
        bot = make_bot()
        tree = bot.tree
        client = protect()(bot)

    @tree.command(description="slow")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await gate()
        await interaction.followup.send("done")

    async with online(client):
        api.inject_slash_command("slow", api.thread_id)
        await held_then_released(gate, markers, thread_key(api))
        await answered(api, "done")
    if isinstance(tree, AuditedTree):
        assert tree.checked == 1  # the user's tree class keeps working


# An interaction kind: registers a handler that waits at the gate on the bot; returns how
# to use it: inject what runs it, and say where its run is keyed and what it answers.
UseInteraction = Callable[[DiscordStandIn, Path], Awaitable[tuple[Key, str]]]


def context_menu(bot: commands.Bot, gate: Gate) -> UseInteraction:
    @bot.tree.context_menu(name="Inspect")
    async def inspect(interaction: discord.Interaction, message: discord.Message) -> None:
        await gate()
        await interaction.response.send_message(f"inspected {message.content}")

    async def use(api: DiscordStandIn, markers: Path) -> tuple[Key, str]:
        message_id = api.inject_message(api.channel_id, "look at me")
        data = {
            "id": str(api.new_id()),
            "name": "Inspect",
            "type": 3,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): api.message(message_id)}},
        }
        inject_interaction(api, 2, api.channel_id, data)
        return channel_key(api), "inspected look at me"

    return use


def view_button(bot: commands.Bot, gate: Gate) -> UseInteraction:
    async def confirm(interaction: discord.Interaction) -> None:
        await gate()
        await interaction.response.edit_message(content="confirmed", view=None)

    ask_with_a_button(bot, "sure?", "confirm", confirm)

    async def use(api: DiscordStandIn, markers: Path) -> tuple[Key, str]:
        api.inject_message(api.thread_id, "!ask")
        await answered(api, "sure?")
        await eventually_async(lambda: stored(markers) == {})
        api.inject_component("confirm", api.thread_id)
        return thread_key(api), "confirmed"

    return use


def modal(bot: commands.Bot, gate: Gate) -> UseInteraction:
    class Feedback(discord.ui.Modal, title="Feedback"):
        text: discord.ui.TextInput[Feedback] = discord.ui.TextInput(label="text", custom_id="text")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await gate()
            await interaction.response.send_message(f"thanks for {self.text.value}")

    form = Feedback(custom_id="feedback")

    @bot.tree.command(description="feedback")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(form)

    async def use(api: DiscordStandIn, markers: Path) -> tuple[Key, str]:
        api.inject_slash_command("feedback", api.channel_id)
        await asyncio.to_thread(
            api.wait_for_call,
            "POST /interactions/{interaction_id}/{interaction_token}/callback",
            None,
            DEADLINE,
        )
        await eventually_async(lambda: stored(markers) == {})
        row = {"type": 1, "components": [{"type": 4, "custom_id": "text", "value": "cake"}]}
        inject_interaction(api, 5, api.channel_id, {"custom_id": "feedback", "components": [row]})
        return channel_key(api), "thanks for cake"

    return use


@pytest.mark.parametrize(
    "interaction",
    [
        pytest.param(context_menu, id="context-menu-command"),
        pytest.param(view_button, id="view-button-callback"),
        pytest.param(modal, id="modal-submission"),
    ],
)
async def test_interactions_are_tracked(
    interaction: Callable[[commands.Bot, Gate], UseInteraction],
    api: DiscordStandIn,
    protect: Callable[..., Any],
    markers: Path,
) -> None:
    bot = protect()(make_bot())
    gate = Gate()
    use = interaction(bot, gate)
    async with online(bot):
        key, answer = await use(api, markers)
        await held_then_released(gate, markers, key)
        await answered(api, answer)


async def test_dms_are_keyed_by_their_dm_channel(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    client, gate = gated_client(protect)
    async with online(client):
        api.inject_dm(None, "hi")
        await gate.entered.wait()
        dm = str(api.dm_channel_id())
        await eventually_async(lambda: stored(markers) == {(dm, None, None): Phase.IN_FLIGHT})
        gate.release.set()


async def test_events_without_a_conversation_are_not_tracked(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    client, gate = gated_client(protect, "on_guild_channel_create")
    async with online(client):
        api.add_channel(api.guild_id, name="new")
        await gate.entered.wait()
        assert discord_guard_state(client).lifecycle.guard.in_flight == 0
        gate.release.set()
    assert stored(markers) == {}


# ------------------------------------------------------------------ how it is applied
class RecordingBot(commands.Bot):
    """A user's bot with its own lifecycle hooks, which must keep running."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(command_prefix="!", intents=intents(), guild_ready_timeout=0.2, **kwargs)
        self.calls: list[str] = []
        self.gate = Gate()

    async def setup_hook(self) -> None:
        self.calls.append("setup_hook")

    async def on_ready(self) -> None:
        self.calls.append("on_ready")

    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:
            await self.gate()

    async def close(self) -> None:
        self.calls.append("close")
        await super().close()


@pytest.mark.parametrize("how", ["class", "factory", "instance"])
async def test_class_factory_and_instance_are_guarded_and_keep_the_users_hooks(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path, how: str
) -> None:
    bot: RecordingBot
    if how == "class":
        guarded_class = protect()(RecordingBot)
        assert guarded_class.__name__ == "RecordingBot"
        assert issubclass(guarded_class, RecordingBot)
        bot = guarded_class()
    elif how == "factory":

        @protect()
        def build() -> RecordingBot:
            return RecordingBot()

        bot = build()
    else:
        bot = protect()(RecordingBot())
    assert isinstance(bot, RecordingBot)
    async with online(bot):
        assert bot.calls == ["setup_hook", "on_ready"]
        api.inject_message(api.thread_id, "hi")
        await held_then_released(bot.gate, markers, thread_key(api))
    assert bot.calls == ["setup_hook", "on_ready", "close"]


async def test_protect_unprotect_protect(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    bot = make_bot()
    parser = bot._connection.parsers["INTERACTION_CREATE"]
    assert protect()(bot) is bot
    assert protect()(bot) is bot  # idempotent
    assert type(bot) is not commands.Bot
    assert restart_guard.unprotect(bot) is bot
    assert type(bot) is commands.Bot
    assert type(bot.tree) is app_commands.CommandTree
    assert bot._connection.parsers["INTERACTION_CREATE"] == parser
    assert "_restart_guard" not in bot.__dict__
    assert restart_guard.unprotect(bot) is bot  # idempotent

    protect()(bot)
    gate = Gate()
    bot.add_listener(_named("on_message", gate))
    async with online(bot):
        api.inject_message(api.channel_id, "hi")
        await held_then_released(gate, markers, channel_key(api))
        with pytest.raises(RuntimeError, match="closed client"):
            restart_guard.unprotect(bot)
    restart_guard.unprotect(bot)
    assert type(bot) is commands.Bot


async def test_protect_after_login_is_refused(
    api: DiscordStandIn, protect: Callable[..., Any]
) -> None:
    client = make_client()
    await client.login("test-token")
    try:
        with pytest.raises(RuntimeError, match="before the client logs in"):
            protect()(client)
    finally:
        await client.close()


# ------------------------------------------------------------------ the stop
async def test_close_pre_marks_then_drains_and_refuses_new_conversations(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    other = api.add_channel(api.guild_id, name="other")
    bot = protect(drain_timeout=30)(make_bot())
    gate = Gate()
    seen: list[str] = []

    @bot.listen("on_message")
    async def record(message: discord.Message) -> None:
        if not message.author.bot:
            seen.append(message.content)

    @bot.command()
    async def slow(ctx: commands.Context[commands.Bot]) -> None:
        await gate()

    @bot.tree.command(description="anything")
    async def anything(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ran")

    async with online(bot):
        api.inject_message(api.thread_id, "!slow")
        await gate.entered.wait()
        closing = asyncio.create_task(bot.close())
        # Durable before the drain: the running conversation is marked "draining".
        await eventually_async(lambda: stored(markers) == {thread_key(api): Phase.DRAINING})
        api.inject_message(other, "chatter")  # an idle conversation: not handled
        api.inject_dm(None, "a DM")  # addressed to the bot: not handled, marked
        api.inject_slash_command("anything", other)  # likewise
        api.inject_message(api.thread_id, "still here")  # the running conversation: handled
        await eventually_async(lambda: "still here" in seen)
        assert seen == ["!slow", "still here"]
        assert not closing.done()
        gate.release.set()
        await asyncio.wait_for(closing, DEADLINE)
    dm = str(api.dm_channel_id())
    # The drain completed: the thread's marker is gone; the refused requests stay.
    assert stored(markers) == {
        (dm, None, None): Phase.DRAINING,
        channel_key(api, other): Phase.DRAINING,
    }
    assert not any(m.text == "ran" for m in api.sent)


async def test_drain_timeout_leaves_the_marker_and_closes(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    client, gate = gated_client(protect, drain_timeout=0.3)
    async with online(client):
        api.inject_message(api.thread_id, "hi")
        await gate.entered.wait()
        started = time.monotonic()
    assert 0.3 <= time.monotonic() - started < 3
    assert client.is_closed()
    assert stored(markers) == {thread_key(api): Phase.DRAINING}
    gate.release.set()  # finishing after the timeout changes nothing on disk
    await eventually_async(lambda: not discord_guard_state(client).active)  # the run has ended
    assert stored(markers) == {thread_key(api): Phase.DRAINING}


async def test_close_from_inside_a_handler_closes_after_the_drain(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    bot = protect()(make_bot())
    returned = asyncio.Event()

    @bot.command()
    async def shutdown(ctx: commands.Context[commands.Bot]) -> None:
        await bot.close()  # must not wait for itself
        returned.set()
        await ctx.send("bye")  # the HTTP session is still open: the drain waits for us

    await bot.login("test-token")
    connect = asyncio.create_task(bot.connect())
    await asyncio.wait_for(bot.wait_until_ready(), DEADLINE)
    api.inject_message(api.channel_id, "!shutdown")
    await asyncio.wait_for(connect, DEADLINE)
    assert returned.is_set()
    assert bot.is_closed()
    assert [m.text for m in api.sent] == ["bye"]
    assert stored(markers) == {}


# ------------------------------------------------------------------ start-up
def leave_marker(markers: Path, conversation: Conversation) -> None:
    """What a process killed mid-handler leaves behind."""
    guard = Guard("discord", DirectoryStore(markers), Settings())
    guard.start()
    guard.begin(conversation)
    guard.flush()
    guard.seal()
    guard.close()


async def test_notice_goes_out_from_setup_hook_before_the_gateway(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    chat, thread, scope = thread_key(api)
    leave_marker(markers, Conversation("discord", chat, thread, scope, chat))
    bot = protect()(RecordingBot())
    async with online(bot):
        [notice] = api.sent
        assert notice.chat == str(api.thread_id)
        assert "restarted" in notice.text
        names = [name for name, _ in api.calls]
        assert names.index(CREATE_MESSAGE) < names.index(GATEWAY_IDENTIFY)
        assert bot.calls == ["setup_hook", "on_ready"]
    assert stored(markers) == {}


async def test_setup_hook_replaced_on_the_instance_still_gets_the_notices_out(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    leave_marker(markers, Conversation("discord", str(api.channel_id), None, str(api.guild_id)))
    client = protect()(make_client())
    ran: list[str] = []

    async def own_setup_hook() -> None:
        ran.append("own setup_hook")

    client.setup_hook = own_setup_hook  # type: ignore[method-assign]
    async with online(client):
        assert ran == ["own setup_hook"]
        [notice] = api.sent
        assert notice.chat == str(api.channel_id)
        names = [name for name, _ in api.calls]
        assert names.index(CREATE_MESSAGE) < names.index(GATEWAY_IDENTIFY)


def test_outside_the_main_thread_close_still_drains(
    protect: Callable[..., Any], markers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No signal handlers there (Python allows none): a warning, and close() drains.
    finished: list[str] = []

    async def scenario() -> None:
        async with DiscordStandIn() as standin:
            with point_discord_at(standin):
                client = protect()(make_client())
                gate = Gate()
                client.event(_named("on_message", gate))

                async def release_soon() -> None:
                    await gate.entered.wait()
                    closing = asyncio.ensure_future(client.close())
                    await eventually_async(
                        lambda: not discord_guard_state(client).lifecycle.accepting
                    )
                    assert not closing.done()  # waiting for the handler
                    gate.release.set()
                    await closing
                    finished.append("closed after the handler")

                async with online(client):
                    standin.inject_message(standin.channel_id, "hi")
                    await release_soon()

    thread = threading.Thread(target=asyncio.run, args=(scenario(),))
    with caplog.at_level("WARNING", logger="restart_guard"):
        thread.start()
        thread.join(DEADLINE * 2)
    assert finished == ["closed after the handler"]
    assert "cannot handle SIGTERM/SIGINT on this event loop" in caplog.text
    assert stored(markers) == {}


async def test_dm_notice_and_forbidden_dm(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    reachable = api.dm_channel_id()
    blocked = api.dm_channel_id(api.add_user(name="blocked"))
    api.fail_channel(blocked, 403, 50007, "Cannot send messages to this user")
    leave_marker(markers, Conversation("discord", str(reachable)))
    leave_marker(markers, Conversation("discord", str(blocked)))
    client = protect()(make_client())
    async with online(client):
        assert await discord_guard_state(client).lifecycle.resumer.wait(DEADLINE)
    assert [(m.chat, "restarted" in m.text) for m in api.sent] == [(str(reachable), True)]
    tries = [p for name, p in api.calls if name == CREATE_MESSAGE]
    assert [p["channel_id"] for p in tries].count(str(blocked)) == 1
    assert stored(markers) == {}


async def test_thread_of_a_deleted_channel_is_dropped_after_trying_thread_and_parent(
    api: DiscordStandIn, protect: Callable[..., Any], markers: Path
) -> None:
    chat, thread, scope = thread_key(api)
    leave_marker(markers, Conversation("discord", chat, thread, scope, chat))
    api.delete_channel(api.channel_id)  # its thread goes with it
    client = protect()(make_client())
    async with online(client):
        assert await discord_guard_state(client).lifecycle.resumer.wait(DEADLINE)
    tries = [p["channel_id"] for name, p in api.calls if name == CREATE_MESSAGE]
    assert tries == [str(api.thread_id), str(api.channel_id)]
    assert api.sent == []
    assert stored(markers) == {}


async def test_a_429_discord_py_gives_up_on_is_retried_after_retry_after(
    api: DiscordStandIn,
    protect: Callable[..., Any],
    markers: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leave_marker(markers, Conversation("discord", str(api.channel_id), None, str(api.guild_id)))
    # discord.py waits out a 429 and tries again, five times in all, then raises.
    api.rate_limit(api.channel_id, retry_after=0.05, times=5)
    client = protect()(make_client())
    with caplog.at_level("INFO", logger="restart_guard"):
        async with online(client):
            assert await discord_guard_state(client).lifecycle.resumer.wait(DEADLINE)
    [notice] = api.sent
    assert "restarted" in notice.text
    assert [name for name, _ in api.calls].count(CREATE_MESSAGE) == 6
    assert "rate limited posting to discord chat" in caplog.text
    assert stored(markers) == {}


def test_conversation_of_needs_a_message_or_an_interaction() -> None:
    assert discord_guard.conversation_of(object()) is None
    assert discord_guard.conversation_of("text") is None
