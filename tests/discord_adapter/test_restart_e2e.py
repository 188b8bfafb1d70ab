"""End to end: a real discord.py bot process, real signals, the loopback Discord stand-in.

The bot (``restart_guard.demo.discord_bot``) works in a thread of a guild
channel. Every wait is for an observable condition with a deadline: a line
in the bot's log, a message the stand-in recorded, the process's exit.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from restart_guard import DirectoryStore
from restart_guard.testing.discord import CREATE_MESSAGE, DiscordStandIn, SentMessage
from restart_guard.testing.markers import wait_for_markers

from .conftest import READY, StartBot

pytestmark = pytest.mark.e2e

NOTICE_SIGNS = ("restarted", "could not finish")


@pytest.fixture
def other(api: DiscordStandIn) -> int:
    """A second text channel of the guild, for conversations that must not be touched."""
    return api.add_channel(api.guild_id, name="other")


def notices(api: DiscordStandIn, channel: int) -> list[SentMessage]:
    return [m for m in api.sent_to(channel) if any(s in m.text for s in NOTICE_SIGNS)]


def is_notice(channel: int) -> Callable[[SentMessage], bool]:
    def check(m: SentMessage) -> bool:
        return m.chat == str(channel) and "restarted" in m.text

    return check


def markers_in(path: Path) -> list[tuple[str, str | None]]:
    return [
        (s.marker.conversation.chat, s.marker.conversation.thread)
        for s in DirectoryStore(path).load()
    ]


def start_work(api: DiscordStandIn, channel: int, seconds: float, marker_dir: Path) -> None:
    """``!work N`` in a channel or thread; return once its handler runs and is marked."""
    api.inject_message(channel, f"!work {seconds:g}")
    api.wait_for_sent(lambda m: m.chat == str(channel) and m.text.startswith("working"))
    # The write-ahead is asynchronous: kill only once the marker is on disk.
    wait_for_markers(
        marker_dir,
        lambda m: str(channel) in (m.conversation.chat, m.conversation.thread),
        timeout=5.0,
    )


def serve_one(api: DiscordStandIn, channel: int, text: str = "ping") -> None:
    """The bot answers a new message: it is up and serving."""
    api.inject_message(channel, text)
    api.wait_for_sent(lambda m: m.chat == str(channel) and m.text == f"echo: {text}")


def posts_to(api: DiscordStandIn, channel: int) -> int:
    return sum(
        1 for name, p in api.calls if name == CREATE_MESSAGE and p["channel_id"] == str(channel)
    )


def test_a_sigkill_during_drain_gets_one_notice_in_the_thread(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot("--drain-timeout", "60")
    api.inject_message(other, "!work 0")  # finishes before the SIGTERM
    api.wait_for_sent(lambda m: m.chat == str(other) and m.text.startswith("done"))
    start_work(api, api.thread_id, 60, marker_dir)

    status = bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
    assert status == -signal.SIGKILL
    assert markers_in(marker_dir) == [(str(api.channel_id), str(api.thread_id))]

    second = start_bot()
    [notice] = api.wait_for_sent(is_notice(api.thread_id))
    assert notice.thread == str(api.thread_id)
    assert notice.params["parent_id"] == str(api.channel_id)
    assert notices(api, api.channel_id) == []
    assert notices(api, other) == []
    serve_one(api, other)
    second.send_signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0

    third = start_bot()
    serve_one(api, other, "again")  # serving, so start-up recovery is over
    assert notices(api, api.thread_id) == [notice]
    third.send_signal(signal.SIGTERM)
    assert third.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_a_slash_command_cut_off_gets_a_plain_message_notice(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "60")
    api.inject_slash_command("work", api.thread_id, {"seconds": 60.0})
    [answer] = api.wait_for_sent(lambda m: m.text.startswith("working"))
    assert answer.params["interaction_response"] is True

    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)

    start_bot()
    [notice] = api.wait_for_sent(is_notice(api.thread_id))
    assert notice.thread == str(api.thread_id)
    assert "interaction_response" not in notice.params  # a channel message, not a response
    assert posts_to(api, api.thread_id) == 1


def test_b_graceful_drain_finishes_the_handler_and_leaves_nothing(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 2, marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert api.sent_to(api.thread_id)[-1].text.startswith("done")
    assert "drain complete" in bot.log()
    assert markers_in(marker_dir) == []
    assert list(marker_dir.iterdir()) == []  # the journal of a clean exit is removed

    start_bot()
    serve_one(api, other)
    assert notices(api, api.thread_id) == []


def test_c_sigkill_without_sigterm_gets_a_notice(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 60, marker_dir)
    assert bot.kill() == -signal.SIGKILL

    start_bot()
    api.wait_for_sent(is_notice(api.thread_id))
    assert len(notices(api, api.thread_id)) == 1


def test_d_garbage_in_the_marker_directory_is_skipped(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 60, marker_dir)
    bot.kill()
    (marker_dir / "journal-00000000000000aa.log").write_bytes(b"\x00\xff garbage\n" * 50)
    (marker_dir / "journal-00000000000000bb.log").write_bytes(b"")
    (marker_dir / "journal-00000000000000cc.log").write_bytes(b'0badc0de {"op":"put","v":1')
    (marker_dir / "journal-00000000000000dd.log").write_bytes(
        b'00000000 {"op":"put","v":99,"key":"x"}\n'
    )
    (marker_dir / "notes.txt").write_text("not a journal")

    bot = start_bot()
    api.wait_for_sent(is_notice(api.thread_id))
    serve_one(api, other)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    output = bot.log()
    assert "skipped" in output
    assert "unreadable record" in output
    assert "unexpected file" in output
    assert (marker_dir / "journal-00000000000000aa.log.corrupt").exists()


def test_e_thread_forbidden_while_down_drops_the_marker_after_one_try(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 60, marker_dir)
    bot.kill()
    api.fail_channel(api.thread_id)  # 403 Missing Access: the bot lost the thread

    bot = start_bot()
    bot.wait_for_log("dropped discord chat")
    assert "403 Missing Access" in bot.log()
    serve_one(api, other)
    assert posts_to(api, api.thread_id) == 2  # the "working" reply, and one notice try
    assert posts_to(api, api.channel_id) == 0  # never announced in the parent channel
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_e_channel_deleted_while_down_drops_the_marker_after_one_try(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot()
    start_work(api, other, 60, marker_dir)
    bot.kill()
    api.delete_channel(other)  # 404 Unknown Channel

    bot = start_bot()
    bot.wait_for_log("dropped discord chat")
    assert "404 Unknown Channel" in bot.log()
    serve_one(api, api.channel_id)
    assert posts_to(api, other) == 2
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_deleted_thread_gets_the_notice_in_its_parent_channel(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 60, marker_dir)
    bot.kill()
    api.delete_channel(api.thread_id)

    bot = start_bot()
    [notice] = api.wait_for_sent(is_notice(api.channel_id))
    assert notice.thread is None
    serve_one(api, other)
    assert len(notices(api, api.channel_id)) == 1
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_rate_limited_notice_is_waited_out_and_sent_once(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, api.thread_id, 60, marker_dir)
    bot.kill()
    api.rate_limit(api.thread_id, retry_after=0.3, times=2)

    start_bot()
    api.wait_for_sent(is_notice(api.thread_id))
    assert len(notices(api, api.thread_id)) == 1
    assert posts_to(api, api.thread_id) == 4  # "working", two 429s, the notice


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_lets_the_handler_finish(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, stop_signal: int
) -> None:
    # A plain discord.py bot dies at once on SIGTERM and cancels its handlers on SIGINT.
    bot = start_bot()
    start_work(api, api.thread_id, 1.5, marker_dir)
    bot.send_signal(stop_signal)
    bot.wait_for_log("marked before the drain")
    bot.send_signal(signal.SIGINT)  # an impatient second Ctrl-C does not cut the drain short
    assert bot.wait_exit(30) == 0
    assert api.sent_to(api.thread_id)[-1].text.startswith("done")
    output = bot.log()
    assert f"{signal.Signals(stop_signal).name} received" in output
    assert "SIGINT ignored: the drain is running" in output
    assert markers_in(marker_dir) == []


def test_drain_timeout_leaves_the_conversation_marked_and_exits(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "1")
    start_work(api, api.thread_id, 60, marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert "drain timed out" in bot.log()
    assert markers_in(marker_dir) == [(str(api.channel_id), str(api.thread_id))]

    start_bot()
    api.wait_for_sent(is_notice(api.thread_id))


def test_replay_reruns_the_interrupted_message_then_clears_the_marker(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--replay")
    start_work(api, api.thread_id, 1, marker_dir)
    bot.kill()

    bot = start_bot("--replay")
    api.wait_for_sent(lambda m: m.chat == str(api.thread_id) and m.text.startswith("done"))
    texts = [m.text for m in api.sent_to(api.thread_id)]
    assert "Picking it up again" in texts[1]
    assert texts[2:] == ["working on it (1s)…", "done: 1s of work finished"]
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_crash_loop_gives_up_after_max_attempts(
    api: DiscordStandIn, start_bot: StartBot, marker_dir: Path, other: int
) -> None:
    args = ("--replay", "--max-attempts", "2")
    bot = start_bot(*args)
    api.inject_message(api.thread_id, "!crash")
    assert bot.wait_exit(30) == -signal.SIGKILL
    # Two resumed turns, each crashing the bot again as it replays.
    for attempt in (1, 2):
        bot = start_bot(*args, wait_ready=False)
        assert bot.wait_exit(30) == -signal.SIGKILL, f"attempt {attempt}"
        assert READY in bot.log()  # replayed once the gateway was up
    assert len(notices(api, api.thread_id)) == 1  # told once: the second turn is not re-announced

    bot = start_bot(*args)
    [giveup] = api.wait_for_sent(lambda m: "could not finish" in m.text)
    assert giveup.chat == str(api.thread_id)
    serve_one(api, other)
    assert bot.process.poll() is None  # the turn was not replayed a third time
    assert sum("crashing" in m.text for m in api.sent) == 3
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []
