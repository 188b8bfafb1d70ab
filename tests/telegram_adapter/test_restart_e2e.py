"""End to end, what only python-telegram-bot does; the shared scenarios are in tests/scenarios."""

from __future__ import annotations

import pytest

from scenarios.drivers.telegram import TelegramDriver

pytestmark = pytest.mark.e2e


def test_fetched_but_unprocessed_updates_count_as_in_flight(driver: TelegramDriver) -> None:
    bot = driver.start_bot("--drain-timeout", "60")
    place = driver.start_work(driver.topic, 60)
    # Blocking handler, no concurrent_updates: this one waits in the update queue.
    queued = driver.say(driver.other, driver.command("work", 60)).handle
    driver.api.wait_for_call("getUpdates", lambda p: int(p.get("offset", 0)) > queued)
    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
    # python-telegram-bot confirmed it to Telegram at stop: it will never come back.
    assert queued < driver.api.confirmed_offset
    assert driver.posted(driver.other) == []

    driver.start_bot()
    driver.wait_notice(place)
    driver.wait_notice(driver.other)
