"""Clean ends (issue 9, item 7): what a stop looks like when the drain does not finish.

On every platform:

- a drain that times out exits with one WARNING summary and no asyncio
  noise ("Task was destroyed but it is pending", "Event loop is closed",
  tracebacks);
- a second SIGTERM or SIGINT during the drain means "stop now": one log
  line, the store closed cleanly with the unfinished turn still marked,
  and a prompt exit.
"""

from __future__ import annotations

import signal
import time

import pytest

from restart_guard import Conversation
from restart_guard.testing.process import BotProcess

from .conftest import Driver

pytestmark = pytest.mark.e2e

ASYNCIO_NOISE = ("Task was destroyed but it is pending", "Event loop is closed", "Traceback")


def sigterm_during_a_turn(driver: Driver, drain_timeout: str) -> tuple[BotProcess, Conversation]:
    """A ready bot, one 60 s turn running in one conversation, then SIGTERM: its drain begins."""
    since = time.monotonic()
    bot = driver.start_bot("--drain-timeout", drain_timeout)
    driver.wait_ready(bot, since)
    [conversation] = driver.conversations(1)
    driver.start_work(conversation, 60)
    bot.send_signal(signal.SIGTERM)
    return bot, conversation


def assert_ended_cleanly_with_the_turn_marked(
    driver: Driver, log: str, conversation: Conversation
) -> None:
    assert not [noise for noise in ASYNCIO_NOISE if noise in log], log
    assert [m.conversation.chat for m in driver.markers()] == [conversation.chat]


def test_a_timed_out_drain_ends_with_one_warning_and_no_asyncio_noise(driver: Driver) -> None:
    bot, conversation = sigterm_during_a_turn(driver, "1")
    bot.wait_exit(60)
    log = bot.log()
    assert [line for line in log.splitlines() if " WARNING " in line and "restart" in line] == [
        next(line for line in log.splitlines() if "drain timed out" in line)
    ]
    assert_ended_cleanly_with_the_turn_marked(driver, log, conversation)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_during_the_drain_stops_now_with_the_turn_still_marked(
    driver: Driver, second: signal.Signals
) -> None:
    bot, conversation = sigterm_during_a_turn(driver, "8")
    bot.wait_for_log("marked before the drain", timeout=30)
    asked = time.monotonic()
    bot.send_signal(second)
    bot.wait_exit(60)
    assert time.monotonic() - asked < 5.0  # a prompt exit, not the 8 s drain
    log = bot.log()
    assert log.count("stop now") == 1, log  # one line says the drain was cut short
    assert "closed; 1 conversation(s) left marked" in log  # the store closed cleanly
    assert_ended_cleanly_with_the_turn_marked(driver, log, conversation)
