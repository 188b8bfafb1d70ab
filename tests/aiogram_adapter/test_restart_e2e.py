"""End to end: real aiogram bot processes, real signals, the loopback Telegram stand-in.

The scenarios of the other platforms (run on polling and on a webhook), then
what only aiogram's polling has: offsets held until the markers are durable,
``handle_as_tasks=False``, ``tasks_concurrency_limit``.
"""

from __future__ import annotations

import inspect
import signal
from pathlib import Path

import pytest
from aiogram import Dispatcher

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.markers import markers_in, wait_for_markers

from .driver import AiogramDriver

pytestmark = pytest.mark.e2e

FORUM = -1001000000001
TOPIC = 7
OTHER = -1001000000002


def is_notice(chat: int, thread: int | None = None):  # type: ignore[no-untyped-def]
    def check(m: SentMessage) -> bool:
        return (
            m.chat == str(chat)
            and (thread is None or m.thread == str(thread))
            and "restarted" in m.text
        )

    return check


def notices(driver: AiogramDriver, chat: int, thread: int | None = None) -> list[str]:
    return [t for t in driver.posted(chat, thread) if "restarted" in t or "could not finish" in t]


def start_work(
    driver: AiogramDriver, chat: int, seconds: float, thread: int | None, marker_dir: Path
) -> int:
    """/work in a chat; return once it runs, its marker is durable and Telegram took it."""
    update_id = driver.say(chat, f"/work {seconds:g}", thread)
    driver.wait_posted(lambda m: m.chat == str(chat) and m.text.startswith("working"))
    wait_for_markers(marker_dir, lambda m: m.conversation.chat == str(chat))
    return update_id


def serve_one(driver: AiogramDriver, chat: int, text: str = "ping") -> None:
    """The bot answers a new message: it is up and serving."""
    driver.say(chat, text)
    driver.wait_posted(lambda m: m.chat == str(chat) and m.text == f"echo: {text}")


def chats_marked(marker_dir: Path) -> list[str]:
    return [m.conversation.chat for m in markers_in(marker_dir)]


def test_sigkill_during_the_drain_gets_one_notice_in_the_topic(
    driver: AiogramDriver, marker_dir: Path
) -> None:
    bot = driver.start("--drain-timeout", "60")
    driver.say(OTHER, "/work 0")  # finishes before the SIGTERM
    driver.wait_posted(lambda m: m.chat == str(OTHER) and m.text.startswith("done"))
    update_id = start_work(driver, FORUM, 60, TOPIC, marker_dir)
    driver.api.wait_until_confirmed(update_id)

    assert bot.terminate_then_kill(after_log="marked before the drain", grace=1.0) == (
        -signal.SIGKILL
    )

    second = driver.start()
    [notice] = driver.wait_posted(is_notice(FORUM, TOPIC))
    assert notice.thread == str(TOPIC)
    assert notices(driver, OTHER) == []
    serve_one(driver, OTHER)
    second.send_signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0

    third = driver.start()
    serve_one(driver, OTHER, "again")  # serving, so start-up recovery is over
    assert notices(driver, FORUM) == [notice.text]
    third.send_signal(signal.SIGTERM)
    assert third.wait_exit(30) == 0
    assert chats_marked(marker_dir) == []


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_graceful_drain_finishes_the_handler_and_leaves_nothing(
    driver: AiogramDriver, marker_dir: Path, stop_signal: int
) -> None:
    bot = driver.start()
    start_work(driver, FORUM, 2, TOPIC, marker_dir)
    bot.send_signal(stop_signal)
    assert bot.wait_exit(30) == 0
    assert driver.posted(FORUM, TOPIC)[-1].startswith("done")
    assert chats_marked(marker_dir) == []

    driver.start()
    serve_one(driver, OTHER)
    assert notices(driver, FORUM) == []
    assert sum(t.startswith("working") for t in driver.posted(FORUM)) == 1  # not redelivered


def test_sigkill_mid_handler_gets_a_notice(driver: AiogramDriver, marker_dir: Path) -> None:
    bot = driver.start()
    start_work(driver, FORUM, 60, TOPIC, marker_dir)
    assert bot.kill() == -signal.SIGKILL

    driver.start()
    driver.wait_posted(is_notice(FORUM, TOPIC))
    serve_one(driver, OTHER)
    assert len(notices(driver, FORUM, TOPIC)) == 1


def test_drain_timeout_leaves_the_conversation_marked_and_exits(
    driver: AiogramDriver, marker_dir: Path
) -> None:
    bot = driver.start("--drain-timeout", "1")
    start_work(driver, FORUM, 60, TOPIC, marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert "drain timed out" in bot.log()
    assert chats_marked(marker_dir) == [str(FORUM)]

    driver.start()
    driver.wait_posted(is_notice(FORUM, TOPIC))


def test_replay_reruns_the_interrupted_turn_once(driver: AiogramDriver, marker_dir: Path) -> None:
    bot = driver.start("--replay")
    start_work(driver, FORUM, 3, TOPIC, marker_dir)
    bot.kill()

    bot = driver.start("--replay")
    driver.wait_posted(is_notice(FORUM, TOPIC))
    driver.wait_posted(lambda m: m.chat == str(FORUM) and m.text.startswith("done"))
    texts = driver.posted(FORUM, TOPIC)
    assert "Picking it up again" in texts[1]
    assert texts[2:] == ["working on it (3s)…", "done: 3s of work finished"]
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert chats_marked(marker_dir) == []


def test_crash_loop_gives_up_after_max_attempts(driver: AiogramDriver, marker_dir: Path) -> None:
    args = ("--replay", "--max-attempts", "2")
    bot = driver.start(*args)
    driver.say(FORUM, "/crash", TOPIC)
    assert bot.wait_exit(30) == -signal.SIGKILL
    for attempt in (1, 2):  # two resumed turns, each crashing the bot again
        bot = driver.start(*args, wait_ready=False)
        assert bot.wait_exit(30) == -signal.SIGKILL, f"attempt {attempt}"
    assert len(notices(driver, FORUM, TOPIC)) == 2

    bot = driver.start(*args)
    [giveup] = driver.wait_posted(lambda m: m.chat == str(FORUM) and "could not finish" in m.text)
    assert giveup.thread == str(TOPIC)
    serve_one(driver, OTHER)
    assert bot.process.poll() is None  # not replayed a third time
    assert sum("crashing" in t for t in driver.posted(FORUM)) == 3
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert chats_marked(marker_dir) == []


# ------------------------------------------------------------------ polling only
def test_sequential_handler_is_drained_not_cancelled_and_confirmed(
    polling: AiogramDriver, marker_dir: Path
) -> None:
    # handle_as_tasks=False: aiogram alone would cancel the handler on SIGTERM,
    # and the update, never confirmed, would be delivered again.
    bot = polling.start("--sequential")
    update_id = start_work(polling, FORUM, 2, TOPIC, marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert polling.posted(FORUM, TOPIC)[-1].startswith("done")
    assert polling.api.confirmed_offset > update_id
    assert chats_marked(marker_dir) == []

    polling.start("--sequential")
    serve_one(polling, OTHER)
    assert sum(t.startswith("working") for t in polling.posted(FORUM)) == 1


def test_redelivered_update_is_not_run_twice_after_a_replay(
    polling: AiogramDriver, marker_dir: Path
) -> None:
    # Sequential: the running update is not confirmed yet, so Telegram delivers
    # it again to the next process — which replays it from the marker as well.
    bot = polling.start("--sequential", "--replay")
    update_id = start_work(polling, FORUM, 3, TOPIC, marker_dir)
    assert update_id in polling.api.pending_update_ids
    bot.kill()

    bot = polling.start("--sequential", "--replay")
    polling.wait_posted(lambda m: m.chat == str(FORUM) and m.text.startswith("done"))
    bot.wait_for_log("already replayed; skipped", timeout=30)
    serve_one(polling, OTHER)
    assert sum(t.startswith("working") for t in polling.posted(FORUM)) == 2  # once, then replay
    assert polling.api.confirmed_offset > update_id
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert chats_marked(marker_dir) == []


def test_update_waiting_for_a_task_slot_is_marked(polling: AiogramDriver, marker_dir: Path) -> None:
    if "tasks_concurrency_limit" not in inspect.signature(Dispatcher.start_polling).parameters:
        pytest.skip("this aiogram release has no tasks_concurrency_limit")
    # tasks_concurrency_limit=1: the second update is taken from Telegram but
    # waits for the first handler's slot; killed then, both conversations are marked.
    bot = polling.start("--tasks-limit", "1", "--drain-timeout", "60")
    start_work(polling, FORUM, 60, TOPIC, marker_dir)
    polling.say(OTHER, "/work 60")
    wait_for_markers(marker_dir, lambda m: m.conversation.chat == str(OTHER))
    assert not any(m.chat == str(OTHER) for m in polling.api.sent)
    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)

    polling.start()
    polling.wait_posted(is_notice(FORUM, TOPIC))
    polling.wait_posted(is_notice(OTHER))
