"""End to end, what only discord.py does; the shared scenarios are in tests/scenarios."""

from __future__ import annotations

import signal

import pytest

from scenarios.drivers.discord import DiscordDriver

pytestmark = pytest.mark.e2e


def test_a_slash_command_cut_off_gets_a_plain_message_notice(driver: DiscordDriver) -> None:
    api, thread = driver.api, driver.topic
    bot = driver.start_bot("--drain-timeout", "60")
    api.inject_slash_command("work", api.thread_id, {"seconds": 60.0})
    [answer] = api.wait_for_sent(lambda m: m.text.startswith("working"))
    assert answer.params["interaction_response"] is True

    bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)

    driver.start_bot()
    notice = driver.wait_notice(thread)
    assert notice.thread == str(api.thread_id)
    assert notice.params["parent_id"] == str(api.channel_id)
    assert "interaction_response" not in notice.params  # a channel message, not a response
    assert driver.send_attempts(thread) == 1


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_does_not_cut_the_drain_short(
    driver: DiscordDriver, stop_signal: int
) -> None:
    # A plain discord.py bot dies at once on SIGTERM and cancels its handlers on SIGINT.
    bot = driver.start_bot()
    place = driver.start_work(driver.topic, 1.5, durable=False)
    bot.send_signal(stop_signal)
    bot.wait_for_log("marked before the drain")
    bot.send_signal(signal.SIGINT)  # an impatient second Ctrl-C
    assert bot.wait_exit(30) == 0
    assert driver.posted(place)[-1].text.startswith("done")
    output = bot.log()
    assert f"{signal.Signals(stop_signal).name} received" in output
    assert "SIGINT ignored: the drain is running" in output
    assert "drain complete" in output
    assert driver.markers() == []
