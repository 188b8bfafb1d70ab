"""End to end: a real slack-bolt process, real signals, the loopback stand-in.

Socket Mode with a sync ``App`` (listeners in Bolt's thread pool), Socket Mode
with an ``AsyncApp``, and HTTP mode (``App.start()`` / ``AsyncApp.start()``)
receiving signed Events API requests.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.slack import SlackStandIn

from .conftest import Bot, StartBot, is_notice, markers_in, notices

pytestmark = pytest.mark.e2e

CHANNEL = "C0WORK"
OTHER = "C0OTHER"


def start_work(
    api: SlackStandIn,
    bot: Bot,
    channel: str,
    seconds: float,
    thread_ts: str | None = None,
    marker_dir: Path | None = None,
) -> dict[str, object]:
    """Start ``work N`` in a channel; return once it runs and Slack will not redeliver it.

    With ``marker_dir``, also wait until its marker is durable: the guarantee
    for a SIGKILL with no SIGTERM covers turns that ran longer than the
    write-ahead takes, and on a loaded machine an fsync can take a while.
    """
    event = bot.send(api, channel, f"work {seconds:g}", thread_ts)
    api.wait_for_sent(lambda m: m.chat == channel and m.text.startswith("working"))
    bot.acked(api, event)
    if marker_dir is not None:
        wait_for_markers(marker_dir, lambda m: m.conversation.chat == channel)
    return event


def serve_one(api: SlackStandIn, bot: Bot, channel: str = OTHER, text: str = "ping") -> None:
    """The bot answers a new message: it is up and serving."""
    bot.send(api, channel, text)
    api.wait_for_sent(lambda m: m.chat == channel and m.text == f"echo: {text}", timeout=15)


@pytest.mark.parametrize("mode", ["socket", "async-socket", "http"])
def test_a_sigkill_during_drain_gets_one_notice_in_the_thread(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path, mode: str
) -> None:
    bot = start_bot("--drain-timeout", "60", mode=mode)
    bot.send(api, OTHER, "work 0")  # finishes before the SIGTERM
    api.wait_for_sent(lambda m: m.chat == OTHER and m.text.startswith("done"))
    root = api.next_ts()  # an existing thread the user writes in
    start_work(api, bot, CHANNEL, 60, thread_ts=root, marker_dir=marker_dir)

    assert bot.terminate_then_kill(grace=1.0) == -signal.SIGKILL

    second = start_bot(mode=mode)
    [notice] = api.wait_for_sent(is_notice(CHANNEL, root))
    assert notice.thread == root
    assert notices(api, CHANNEL) == [notice.text]
    assert notices(api, OTHER) == []
    serve_one(api, second)
    assert second.stop_gracefully() == 0

    third = start_bot(mode=mode)
    serve_one(api, third, text="again")  # serving, so start-up recovery is over
    assert notices(api, CHANNEL) == [notice.text]
    assert third.stop_gracefully() == 0
    assert markers_in(marker_dir) == []


@pytest.mark.parametrize("mode", ["socket", "async-socket", "async-http"])
def test_b_graceful_drain_finishes_the_listener_and_leaves_nothing(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path, mode: str
) -> None:
    bot = start_bot(mode=mode)
    event = start_work(api, bot, CHANNEL, 2)
    assert bot.stop_gracefully() == 0
    thread = api.sent_to(CHANNEL, str(event["ts"]))
    assert thread[-1].text.startswith("done")
    assert markers_in(marker_dir) == []
    assert list(marker_dir.iterdir()) == []  # the journal of a clean exit is removed

    bot = start_bot(mode=mode)
    serve_one(api, bot)
    assert notices(api, CHANNEL) == []
    assert bot.stop_gracefully() == 0


def test_c_sigkill_without_sigterm_gets_a_notice_under_the_message(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    # A top-level message: its ts is the thread root.
    event = start_work(api, bot, CHANNEL, 60, marker_dir=marker_dir)
    assert bot.process.kill() == -signal.SIGKILL

    start_bot()
    [notice] = api.wait_for_sent(is_notice(CHANNEL))
    assert notice.thread == event["ts"]
    assert len(notices(api, CHANNEL)) == 1


def test_d_garbage_in_the_marker_directory_is_skipped(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, bot, CHANNEL, 60, marker_dir=marker_dir)
    bot.process.kill()
    (marker_dir / "journal-00000000000000aa.log").write_bytes(b"\x00\xff garbage\n" * 50)
    (marker_dir / "journal-00000000000000bb.log").write_bytes(b"")
    (marker_dir / "journal-00000000000000cc.log").write_bytes(b'0badc0de {"op":"put","v":1')
    (marker_dir / "journal-00000000000000dd.log").write_bytes(
        b'00000000 {"op":"put","v":99,"key":"x"}\n'
    )
    (marker_dir / "notes.txt").write_text("not a journal")

    bot = start_bot()
    api.wait_for_sent(is_notice(CHANNEL))
    serve_one(api, bot)
    assert bot.stop_gracefully() == 0
    output = bot.process.log()
    assert "skipped" in output
    assert "unreadable record" in output
    assert "unexpected file" in output
    # The unreadable journals are set aside for inspection, not deleted.
    assert (marker_dir / "journal-00000000000000aa.log.corrupt").exists()


def test_e_channel_gone_while_down_drops_the_marker_after_one_try(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, bot, CHANNEL, 60, marker_dir=marker_dir)
    bot.process.kill()
    api.fail_channel(CHANNEL, "channel_not_found")

    bot = start_bot()
    bot.process.wait_for_log("dropped slack chat")
    assert "channel_not_found" in bot.process.log()
    serve_one(api, bot)
    tries = [p for m, p in api.calls if m == "chat.postMessage" and p.get("channel") == CHANNEL]
    assert len(tries) == 2  # the "working" reply before the kill, and one notice try
    assert bot.stop_gracefully() == 0
    assert markers_in(marker_dir) == []


def test_drain_timeout_leaves_the_conversation_marked_and_exits(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--drain-timeout", "1")
    start_work(api, bot, CHANNEL, 60, marker_dir=marker_dir)
    assert bot.stop_gracefully() == 0
    assert "drain timed out" in bot.process.log()
    assert markers_in(marker_dir) == [CHANNEL]

    start_bot()
    api.wait_for_sent(is_notice(CHANNEL))


@pytest.mark.parametrize("mode", ["socket", "async-socket"])
def test_sigint_drains_like_sigterm(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path, mode: str
) -> None:
    bot = start_bot(mode=mode)
    event = start_work(api, bot, CHANNEL, 1)
    assert bot.stop_gracefully(signal.SIGINT) == 0
    assert api.sent_to(CHANNEL, str(event["ts"]))[-1].text.startswith("done")
    assert markers_in(marker_dir) == []


def test_http_requests_during_the_drain_are_refused_for_redelivery(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--lazy", mode="http")
    event = start_work(api, bot, CHANNEL, 2)
    bot.process.send_signal(signal.SIGTERM)
    bot.process.wait_for_log("marked before the drain")
    assert bot.url is not None
    status, _ = api.post_event(bot.url, api.message_event(OTHER, "too late"))
    assert status == 503  # not acked: Slack delivers it again later
    assert bot.process.wait_exit(30) == 0
    assert api.sent_to(CHANNEL, str(event["ts"]))[-1].text.startswith("done")
    assert not any(m.chat == OTHER for m in api.sent)
    assert markers_in(marker_dir) == []


def test_replay_reruns_the_interrupted_turn_then_clears_the_marker(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot("--replay")
    event = start_work(api, bot, CHANNEL, 3, marker_dir=marker_dir)
    bot.process.kill()

    bot = start_bot("--replay")
    api.wait_for_sent(is_notice(CHANNEL))
    api.wait_for_sent(lambda m: m.chat == CHANNEL and m.text.startswith("done"))
    texts = [m.text for m in api.sent_to(CHANNEL, str(event["ts"]))]
    assert texts[1].startswith("♻️")
    assert "Picking it up again" in texts[1]
    assert texts[2:] == ["working on it (3s)…", "done: 3s of work finished"]
    assert bot.stop_gracefully() == 0
    assert markers_in(marker_dir) == []


def test_crash_loop_gives_up_after_max_attempts(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    args = ("--replay", "--max-attempts", "2")
    bot = start_bot(*args)
    event = bot.send(api, CHANNEL, "crash")
    assert bot.process.wait_exit(30) == -signal.SIGKILL
    # Two resumed turns, each crashing the bot again as it replays.
    for attempt in (1, 2):
        bot = start_bot(*args, wait_ready=False)
        assert bot.process.wait_exit(30) == -signal.SIGKILL, f"attempt {attempt}"
    assert len(notices(api, CHANNEL, str(event["ts"]))) == 1  # told once, not per resumed turn

    bot = start_bot(*args)
    [giveup] = api.wait_for_sent(lambda m: m.chat == CHANNEL and "could not finish" in m.text)
    assert giveup.thread == event["ts"]
    serve_one(api, bot)
    assert bot.process.process.poll() is None  # the turn was not replayed a third time
    assert sum("crashing" in m.text for m in api.sent) == 3
    assert bot.stop_gracefully() == 0
    assert markers_in(marker_dir) == []


def test_rate_limited_notice_is_retried_and_sent_once(
    api: SlackStandIn, start_bot: StartBot, marker_dir: Path
) -> None:
    bot = start_bot()
    start_work(api, bot, CHANNEL, 60, marker_dir=marker_dir)
    bot.process.kill()
    api.rate_limit(CHANNEL, retry_after=1, times=2)

    bot = start_bot()
    api.wait_for_sent(is_notice(CHANNEL))
    assert len(notices(api, CHANNEL)) == 1
    assert "rate limited" in bot.process.log()
    tries = [p for m, p in api.calls if m == "chat.postMessage" and p.get("channel") == CHANNEL]
    assert len(tries) == 4  # "working", two 429s, the notice
