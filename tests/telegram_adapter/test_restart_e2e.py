"""End to end: a real python-telegram-bot process, real signals, the loopback stand-in."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from restart_guard import DirectoryStore
from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.telegram import TelegramStandIn

from .conftest import StartBot

pytestmark = pytest.mark.e2e

FORUM = -1001000000001
TOPIC = 7
OTHER = -1001000000002


def notices(api: TelegramStandIn, chat: int, thread: int | None = None) -> list[str]:
    return [
        m.text
        for m in api.sent_to(chat, thread)
        if "restarted" in m.text or "could not finish" in m.text
    ]


def is_notice(chat: int, thread: int | None = None):  # type: ignore[no-untyped-def]
    def check(m) -> bool:  # type: ignore[no-untyped-def]
        return (
            m.chat == str(chat)
            and (thread is None or m.thread == str(thread))
            and "restarted" in m.text
        )

    return check


def markers_in(path: Path) -> list[str]:
    return [s.marker.conversation.chat for s in DirectoryStore(path).load()]


def start_work(
    api: TelegramStandIn,
    chat: int,
    seconds: float,
    thread: int | None = None,
    marker_dir: Path | None = None,
) -> None:
    """Start /work in a chat; return once it runs and Telegram will not redeliver it.

    With ``marker_dir``, also wait until its marker is durable: the guarantee
    for a SIGKILL with no SIGTERM covers turns that ran longer than the
    write-ahead takes, and on a loaded machine an fsync can take a while.
    """
    update_id = api.inject_message(chat, f"/work {seconds:g}", message_thread_id=thread)
    api.wait_for_sent(lambda m: m.chat == str(chat) and m.text.startswith("working"))
    api.wait_until_confirmed(update_id)
    if marker_dir is not None:
        wait_for_markers(marker_dir, lambda m: m.conversation.chat == str(chat))


def serve_one(api: TelegramStandIn, chat: int, text: str = "ping") -> None:
    """The bot answers a new message: it is up and serving."""
    api.inject_message(chat, text)
    api.wait_for_sent(lambda m: m.chat == str(chat) and m.text == f"echo: {text}", timeout=15)


def test_a_sigkill_during_drain_gets_one_notice_in_the_topic(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "60")
    api.inject_message(OTHER, "/work 0")  # finishes before the SIGTERM
    api.wait_for_sent(lambda m: m.chat == str(OTHER) and m.text.startswith("done"))
    start_work(api, FORUM, 60, TOPIC, marker_dir)

    status = bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
    assert status == -signal.SIGKILL

    second = start_bot()
    [notice] = api.wait_for_sent(is_notice(FORUM, TOPIC))
    assert notice.thread == str(TOPIC)
    assert notices(api, FORUM) == [notice.text]
    assert notices(api, OTHER) == []
    serve_one(api, OTHER)
    second.send_signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0

    third = start_bot()
    serve_one(api, OTHER, "again")  # serving, so start-up recovery is over
    assert notices(api, FORUM) == [notice.text]
    third.send_signal(signal.SIGTERM)
    assert third.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_b_graceful_drain_finishes_the_handler_and_leaves_nothing(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 2, TOPIC)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert [m.text for m in api.sent_to(FORUM, TOPIC)][-1].startswith("done")
    assert markers_in(marker_dir) == []
    assert list(marker_dir.iterdir()) == []  # the journal of a clean exit is removed

    start_bot()
    serve_one(api, OTHER)
    assert notices(api, FORUM) == []


def test_c_sigkill_without_sigterm_gets_a_notice(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    assert bot.kill() == -signal.SIGKILL

    start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    assert len(notices(api, FORUM, TOPIC)) == 1


def test_d_garbage_in_the_marker_directory_is_skipped(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()
    (marker_dir / "journal-00000000000000aa.log").write_bytes(b"\x00\xff garbage\n" * 50)
    (marker_dir / "journal-00000000000000bb.log").write_bytes(b"")
    (marker_dir / "journal-00000000000000cc.log").write_bytes(b'0badc0de {"op":"put","v":1')
    (marker_dir / "journal-00000000000000dd.log").write_bytes(
        b'00000000 {"op":"put","v":99,"key":"x"}\n'
    )
    (marker_dir / "notes.txt").write_text("not a journal")

    bot = start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    serve_one(api, OTHER)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    output = bot.log()
    assert "skipped" in output
    assert "unreadable record" in output
    assert "unexpected file" in output
    # The unreadable journals are set aside for inspection, not deleted.
    assert (marker_dir / "journal-00000000000000aa.log.corrupt").exists()


def test_e_bot_removed_while_down_drops_the_marker_after_one_try(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()
    api.kick_bot(FORUM)

    bot = start_bot()
    bot.wait_for_log("dropped telegram chat")
    serve_one(api, OTHER)
    tries = [p for m, p in api.calls if m == "sendMessage" and str(p.get("chat_id")) == str(FORUM)]
    assert len(tries) == 2  # the "working" reply before the kill, and one notice try
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_fetched_but_unprocessed_updates_count_as_in_flight(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "60")
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    # Blocking handler, no concurrent_updates: this one waits in the update queue.
    queued = api.inject_message(OTHER, "/work 60")
    api.wait_for_call("getUpdates", lambda p: int(p.get("offset", 0)) > queued)
    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
    # python-telegram-bot confirmed it to Telegram at stop: it will never come back.
    assert queued < api.confirmed_offset
    assert not any(m.chat == str(OTHER) for m in api.sent)

    start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    api.wait_for_sent(is_notice(OTHER))


def test_drain_timeout_leaves_the_conversation_marked_and_exits(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "1")
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert "drain timed out" in bot.log()
    assert markers_in(marker_dir) == [str(FORUM)]

    start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_waits_for_non_blocking_handlers(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path, stop_signal: int
) -> None:
    bot = start_bot("--non-blocking")
    start_work(api, FORUM, 2, TOPIC)
    bot.send_signal(stop_signal)
    assert bot.wait_exit(30) == 0
    assert api.sent_to(FORUM, TOPIC)[-1].text.startswith("done")
    assert markers_in(marker_dir) == []


def test_non_blocking_handler_killed_gets_a_notice(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--non-blocking")
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()
    start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))


def test_replay_reruns_the_interrupted_turn_then_clears_the_marker(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--replay")
    start_work(api, FORUM, 3, TOPIC, marker_dir)
    bot.kill()

    bot = start_bot("--replay")
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    api.wait_for_sent(lambda m: m.chat == str(FORUM) and m.text.startswith("done"))
    texts = [m.text for m in api.sent_to(FORUM, TOPIC)]
    assert texts[1].startswith("♻️")
    assert "Picking it up again" in texts[1]
    assert texts[2:] == ["working on it (3s)…", "done: 3s of work finished"]
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_crash_loop_gives_up_after_max_attempts(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    args = ("--replay", "--max-attempts", "2")
    bot = start_bot(*args)
    api.inject_message(FORUM, "/crash", message_thread_id=TOPIC)
    assert bot.wait_exit(30) == -signal.SIGKILL
    # Two resumed turns, each crashing the bot again as it replays.
    for attempt in (1, 2):
        bot = start_bot(*args, wait_ready=False)
        assert bot.wait_exit(30) == -signal.SIGKILL, f"attempt {attempt}"
    assert len(notices(api, FORUM, TOPIC)) == 1  # told once, not per resumed turn

    bot = start_bot(*args)
    [giveup] = api.wait_for_sent(lambda m: m.chat == str(FORUM) and "could not finish" in m.text)
    assert giveup.thread == str(TOPIC)
    serve_one(api, OTHER)
    assert bot.process.poll() is None  # the turn was not replayed a third time
    assert sum("crashing" in m.text for m in api.sent) == 3
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_rate_limited_notice_is_retried_and_sent_once(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()
    api.rate_limit(FORUM, retry_after=1, times=2)

    bot = start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    assert len(notices(api, FORUM, TOPIC)) == 1
    assert "rate limited" in bot.log()
    tries = [p for m, p in api.calls if m == "sendMessage" and p.get("chat_id") == FORUM]
    assert len(tries) == 4  # "working", two 429s, the notice


def test_deleted_topic_gets_the_notice_in_the_main_chat(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()
    api.delete_topic(FORUM, TOPIC)

    start_bot()
    [notice] = api.wait_for_sent(is_notice(FORUM))
    assert notice.thread is None
    serve_one(api, OTHER)
    assert len(notices(api, FORUM)) == 1


def test_chat_not_found_drops_the_marker(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, OTHER, 60, None, marker_dir)
    bot.kill()
    api.forget_chat(OTHER)

    bot = start_bot()
    bot.wait_for_log("dropped telegram chat")
    assert "chat not found" in bot.log().lower()
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert markers_in(marker_dir) == []


def test_one_notice_per_conversation_however_many_updates_were_in_flight(
    api: TelegramStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--non-blocking")
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    start_work(api, FORUM, 60, TOPIC, marker_dir)
    bot.kill()

    start_bot()
    api.wait_for_sent(is_notice(FORUM, TOPIC))
    serve_one(api, OTHER)  # start-up recovery is over
    assert len(notices(api, FORUM)) == 1
