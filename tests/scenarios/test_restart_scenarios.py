"""The restart scenarios, written once and run against every platform's real bot process.

Each test starts the platform's demo bot in a subprocess against its loopback
stand-in (see ``drivers/``), talks to it in a thread or topic, sends real
signals, restarts it and reads what it posted. Every wait is for an
observable condition with a deadline: a log line, a posted message, a
marker on disk, the process's exit.
"""

from __future__ import annotations

import signal

import pytest

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.process import BotProcess

from .drivers.base import GIVE_UP, Driver, Place

pytestmark = pytest.mark.e2e

GARBAGE = {
    "journal-00000000000000aa.log": b"\x00\xff garbage\n" * 50,
    "journal-00000000000000bb.log": b"",
    "journal-00000000000000cc.log": b'0badc0de {"op":"put","v":1',
    "journal-00000000000000dd.log": b'00000000 {"op":"put","v":99,"key":"x"}\n',
    "notes.txt": b"not a journal",
}


def stop_gracefully(bot: BotProcess, sig: int = signal.SIGTERM) -> None:
    """Signal the bot and expect a clean exit."""
    bot.send_signal(sig)
    assert bot.wait_exit(30) == 0


def restart_for_one_notice(d: Driver, place: Place) -> tuple[BotProcess, SentMessage]:
    """Start the bot again; its notice in ``place``, which stays the only notice posted
    anywhere once start-up recovery is over (the bot serves)."""
    bot = d.start_bot()
    notice = d.wait_notice(place)
    d.serve_one()
    assert d.notices() == [notice]
    return bot, notice


# ------------------------------------------------------------ the original bug
def test_sigkill_during_the_drain_gets_one_notice_in_the_thread(driver_any_mode: Driver) -> None:
    d = driver_any_mode
    bot = d.start_bot("--drain-timeout", "60")
    quick = d.say(d.other, d.command("work", 0))  # finishes before the SIGTERM
    d.api.wait_for_sent(lambda m: quick.place.holds(m) and m.text.startswith("done"))
    place = d.start_work(d.topic, 60)

    status = bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
    assert status == -signal.SIGKILL
    assert d.markers() == [place.conversation]

    second, notice = restart_for_one_notice(d, place)  # not in the main chat, nor the other
    assert notice.thread == place.thread
    stop_gracefully(second)

    third = d.start_bot()
    d.serve_one("again")  # serving, so start-up recovery is over
    assert d.notices() == [notice]
    stop_gracefully(third)
    assert d.markers() == []


# ------------------------------------------------------------- a clean stop
def test_graceful_drain_finishes_the_handler_and_leaves_nothing(driver_any_mode: Driver) -> None:
    d = driver_any_mode
    bot = d.start_bot()
    place = d.start_work(d.topic, 2, durable=False)
    stop_gracefully(bot)
    assert d.posted(place)[-1].text.startswith("done")
    assert d.markers() == []
    assert list(d.marker_dir.iterdir()) == []  # the journal of a clean exit is removed

    bot = d.start_bot()
    d.serve_one()
    assert d.notices() == []
    stop_gracefully(bot)


def test_sigint_drains_like_sigterm(driver_any_mode: Driver) -> None:
    d = driver_any_mode
    bot = d.start_bot()
    place = d.start_work(d.topic, 1.5, durable=False)
    stop_gracefully(bot, signal.SIGINT)
    assert d.posted(place)[-1].text.startswith("done")
    assert d.markers() == []


def test_drain_timeout_leaves_the_conversation_marked_and_exits(driver: Driver) -> None:
    bot = driver.start_bot("--drain-timeout", "1")
    place = driver.start_work(driver.topic, 60)
    stop_gracefully(bot)
    assert "drain timed out" in bot.log()
    assert driver.markers() == [place.conversation]

    driver.start_bot()
    driver.wait_notice(place)


# -------------------------------------------------------------- kill -9
def test_sigkill_mid_handler_gets_a_notice(driver_any_mode: Driver) -> None:
    d = driver_any_mode
    bot = d.start_bot()
    place = d.start_work(d.topic, 60)
    assert bot.kill() == -signal.SIGKILL

    d.start_bot()
    d.wait_notice(place)
    assert len(d.notices(place)) == 1


def test_sigkill_in_a_plain_chat_gets_the_notice_where_the_bot_answered(driver: Driver) -> None:
    bot = driver.start_bot()
    # Where the platform threads answers (Slack), the user's message is the thread root.
    place = driver.start_work(driver.chat, 60)
    bot.kill()

    _, notice = restart_for_one_notice(driver, place)
    assert notice.thread == place.thread


def test_one_notice_per_conversation_however_many_turns_were_in_flight(
    concurrent_driver: Driver,
) -> None:
    d = concurrent_driver
    bot = d.start_bot()
    turns = [d.say(d.topic, d.command("work", 60)) for _ in range(3)]
    d.api.wait_for_sent(lambda m: d.topic.holds(m) and m.text.startswith("working"), count=3)
    for said in turns:
        d.wait_delivered(said)
    d.start_work(d.topic, 60)  # a fourth, and the conversation's marker is durable
    bot.kill()

    d.start_bot()
    d.wait_notice(d.topic)
    d.serve_one()  # start-up recovery is over
    assert len(d.notices()) == 1


# ----------------------------------------------------- hostile marker files
def test_garbage_in_the_marker_directory_is_skipped(driver: Driver) -> None:
    bot = driver.start_bot()
    place = driver.start_work(driver.topic, 60)
    bot.kill()
    for name, content in GARBAGE.items():
        (driver.marker_dir / name).write_bytes(content)

    bot = driver.start_bot()
    driver.wait_notice(place)
    driver.serve_one()
    stop_gracefully(bot)
    output = bot.log()
    assert "skipped" in output
    assert "unreadable record" in output
    assert "unexpected file" in output
    # The unreadable journals are set aside for inspection, not deleted.
    assert (driver.marker_dir / "journal-00000000000000aa.log.corrupt").exists()


# ------------------------------------------------ the platform says no
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("remove_bot", id="bot-removed-from-the-thread"),  # 403 and the like
        pytest.param("delete_chat", id="chat-deleted"),  # 404 and the like
    ],
)
def test_lasting_refusal_while_down_drops_the_marker_after_one_try(
    driver: Driver, fault: str
) -> None:
    bot = driver.start_bot()
    place = driver.start_work(driver.topic if fault == "remove_bot" else driver.chat, 60)
    bot.kill()
    error = getattr(driver, fault)(place)

    bot = driver.start_bot()
    bot.wait_for_log(f"dropped {driver.platform} chat")
    assert error.lower() in bot.log().lower()
    driver.serve_one()
    assert driver.send_attempts(place) == 2  # the "working" reply, and one notice try
    assert driver.notices() == []  # nor posted anywhere else instead
    parent = Place(place.conversation[0])
    if parent.chat != place.chat:  # a Discord thread: not even tried in its channel
        assert driver.send_attempts(parent) == 0
    stop_gracefully(bot)
    assert driver.markers() == []


def test_deleted_thread_gets_the_notice_in_its_chat(driver: Driver) -> None:
    if not driver.deletable_threads:
        pytest.skip(f"a {driver.platform} thread cannot be deleted apart from its chat")
    bot = driver.start_bot()
    place = driver.start_work(driver.topic, 60)
    bot.kill()
    main = driver.delete_thread(place)
    assert main is not None

    bot = driver.start_bot()
    notice = driver.wait_notice(main)
    assert notice.thread is None
    driver.serve_one()
    assert len(driver.notices()) == 1
    stop_gracefully(bot)
    assert driver.markers() == []


def test_rate_limited_notice_is_retried_and_sent_once(driver: Driver) -> None:
    bot = driver.start_bot()
    place = driver.start_work(driver.topic, 60)
    bot.kill()
    driver.rate_limit(place, times=2)

    bot = driver.start_bot()
    driver.wait_notice(place)
    assert len(driver.notices(place)) == 1
    if driver.rate_limit_log is not None:
        assert driver.rate_limit_log in bot.log()
    assert driver.send_attempts(place) == 4  # "working", two 429s, the notice


# --------------------------------------------------------- replay, crash loop
def test_replay_reruns_the_interrupted_turn_once_then_clears_the_marker(driver: Driver) -> None:
    bot = driver.start_bot("--replay")
    place = driver.start_work(driver.topic, 3)
    bot.kill()

    bot = driver.start_bot("--replay")
    driver.wait_notice(place)
    driver.api.wait_for_sent(lambda m: place.holds(m) and m.text.startswith("done"))
    texts = [m.text for m in driver.posted(place)]
    assert "♻️ I was restarted" in texts[1]  # after the asker's mention, where there is one
    assert "Picking it up again" in texts[1]
    assert texts[2:] == ["working on it (3s)…", "done: 3s of work finished"]
    driver.serve_one()
    assert [m.text for m in driver.posted(place)] == texts  # replayed once, not again
    stop_gracefully(bot)
    assert driver.markers() == []


def test_crash_loop_gives_up_after_max_attempts(driver: Driver) -> None:
    args = ("--replay", "--max-attempts", "2")
    bot = driver.start_bot(*args)
    driver.say(driver.topic, driver.command("crash"))
    assert bot.wait_exit(30) == -signal.SIGKILL
    # Two resumed turns, each crashing the bot again as it replays.
    for attempt in (1, 2):
        bot = driver.start_bot(*args, wait_ready=False)
        assert bot.wait_exit(30) == -signal.SIGKILL, f"attempt {attempt}"
        if driver.ready_log is not None:
            assert driver.ready_log in bot.log()  # replayed once the bot was up
    assert len(driver.notices(driver.topic)) == 1  # told once, not per resumed turn

    bot = driver.start_bot(*args)
    giveup = driver.wait_notice(driver.topic, GIVE_UP)
    assert giveup.thread == driver.topic.thread
    driver.serve_one()
    assert bot.process.poll() is None  # the turn was not replayed a third time
    assert sum("crashing" in m.text for m in driver.api.sent) == 3
    stop_gracefully(bot)
    assert driver.markers() == []


# ------------------------------------------------ whom the notice answers (issue 13)
def test_the_notice_answers_the_interrupted_message_and_notifies_its_asker(driver: Driver) -> None:
    asker = driver.users[1]
    bot = driver.start_bot()
    place = driver.start_work(driver.chat, 60, user=asker)  # in a group / server channel
    said = driver.said[-1]
    assert bot.kill() == -signal.SIGKILL

    _, notice = restart_for_one_notice(driver, place)
    assert notice.reply_to == driver.reply_target(said)
    assert notice.mentions == (asker,)


def test_two_askers_cut_off_in_one_conversation_get_one_notice_for_both(
    concurrent_driver: Driver,
) -> None:
    d = concurrent_driver
    first, second = d.users
    bot = d.start_bot()
    place = d.start_work(d.topic, 60, user=first)
    d.start_work(d.topic, 60, user=second)
    wait_for_markers(
        d.marker_dir,
        lambda m: {o.user for o in m.origins} == {first, second},
    )
    assert bot.kill() == -signal.SIGKILL

    _, notice = restart_for_one_notice(d, place)  # one notice for the conversation
    assert notice.reply_to == d.reply_target(d.said[-1])  # the latest message
    assert set(notice.mentions) == {first, second}


def test_a_no_replay_handler_gets_the_plain_notice_under_replay(driver: Driver) -> None:
    bot = driver.start_bot("--replay")
    place = driver.start_work(driver.chat, 60, command="charge")
    wait_for_markers(driver.marker_dir, lambda m: m.origins and not m.replayable)
    assert bot.kill() == -signal.SIGKILL

    driver.start_bot("--replay")
    notice = driver.wait_notice(place)
    assert "send it again" in notice.text  # not "picking it up again"
    driver.serve_one()
    working = [m for m in driver.posted(place) if m.text.startswith("working")]
    assert len(working) == 1  # the charge never ran a second time
    stop_gracefully(driver.bots[-1])
    assert driver.markers() == []
