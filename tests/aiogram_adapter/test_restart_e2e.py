"""End to end, what only aiogram's polling has: real bot processes, real signals.

The restart scenarios every platform shares (polling and webhook) are in
``tests/scenarios``; these are aiogram's own: the offset held until the
markers are durable, ``handle_as_tasks=False``, ``tasks_concurrency_limit``.
"""

from __future__ import annotations

import inspect
import signal

import pytest
from aiogram import Dispatcher

from restart_guard.testing.markers import wait_for_markers
from scenarios.drivers.aiogram import AiogramDriver

pytestmark = pytest.mark.e2e


def workings(driver: AiogramDriver) -> int:
    return sum(m.text.startswith("working") for m in driver.posted(driver.topic))


def test_sequential_handler_is_drained_not_cancelled_and_confirmed(polling: AiogramDriver) -> None:
    # handle_as_tasks=False: aiogram alone would cancel the handler on SIGTERM,
    # and the update, never confirmed, would be delivered again.
    bot = polling.start_bot("--sequential")
    said = polling.say(polling.topic, polling.command("work", 2))
    polling.api.wait_for_sent(lambda m: m.text.startswith("working"))
    wait_for_markers(polling.marker_dir)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert polling.posted(polling.topic)[-1].text.startswith("done")
    assert polling.api.confirmed_offset > said.handle
    assert polling.markers() == []

    polling.start_bot("--sequential")
    polling.serve_one()
    assert workings(polling) == 1


def test_redelivered_update_is_not_run_twice_after_a_replay(polling: AiogramDriver) -> None:
    # Sequential: the running update is not confirmed yet, so Telegram delivers
    # it again to the next process — which replays it from the marker as well.
    bot = polling.start_bot("--sequential", "--replay")
    said = polling.say(polling.topic, polling.command("work", 3))
    polling.api.wait_for_sent(lambda m: m.text.startswith("working"))
    wait_for_markers(polling.marker_dir)
    assert said.handle in polling.api.pending_update_ids
    bot.kill()

    bot = polling.start_bot("--sequential", "--replay")
    polling.api.wait_for_sent(lambda m: m.text.startswith("done"))
    bot.wait_for_log("the platform's copy is skipped", timeout=30)
    polling.serve_one()
    assert workings(polling) == 2  # once, then the replay
    assert polling.api.confirmed_offset > said.handle
    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(30) == 0
    assert polling.markers() == []


def test_update_waiting_for_a_task_slot_is_marked(polling: AiogramDriver) -> None:
    if "tasks_concurrency_limit" not in inspect.signature(Dispatcher.start_polling).parameters:
        pytest.skip("this aiogram release has no tasks_concurrency_limit")
    # tasks_concurrency_limit=1: the second update is taken from Telegram but
    # waits for the first handler's slot; killed then, both conversations are marked.
    # The waiting update was never confirmed either: Telegram delivers it again, and
    # it runs instead of a notice.
    bot = polling.start_bot("--tasks-limit", "1", "--drain-timeout", "60")
    polling.start_work(polling.topic, 60)
    polling.say(polling.other, polling.command("work", 60))
    wait_for_markers(polling.marker_dir, lambda m: m.conversation.chat == polling.other.chat)
    assert polling.posted(polling.other) == []
    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)

    polling.start_bot()
    polling.wait_notice(polling.topic)
    polling.api.wait_for_sent(lambda m: polling.other.holds(m) and m.text.startswith("working"))
    assert polling.notices(polling.other) == []
