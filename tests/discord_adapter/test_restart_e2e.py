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
def test_a_second_signal_stops_now_and_keeps_the_turn_marked(
    driver: DiscordDriver, stop_signal: int
) -> None:
    # A plain discord.py bot dies at once on SIGTERM and cancels its handlers on SIGINT;
    # guarded, the first signal drains and a second (an impatient Ctrl-C) stops now.
    bot = driver.start_bot("--drain-timeout", "60")
    place = driver.start_work(driver.topic, 60)
    bot.send_signal(stop_signal)
    bot.wait_for_log("marked before the drain")
    bot.send_signal(signal.SIGINT)
    assert bot.wait_exit(30) == 0
    output = bot.log()
    assert f"{signal.Signals(stop_signal).name} received" in output
    assert output.count("SIGINT during the drain: stop now") == 1
    assert "drain cut short" in output
    assert not driver.posted(place)[-1].text.startswith("done")
    assert driver.markers() == [place.conversation]
