"""Faults during start-up recovery, with real bot processes and real signals, on every platform.

Each notice goes out once: a stop during the notices lets the one in flight
finish and records it; a delivered notice is durable before the next one is
sent; a conversation the platform keeps refusing does not hold up the
others. What is left — a kill after the platform accepted a notice and
before the bot heard back — is shown here too: Discord drops the repeat by
its nonce, Telegram and Slack post it twice.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from restart_guard import Conversation
from restart_guard.testing.wait import eventually

from .conftest import Driver, keys

pytestmark = pytest.mark.e2e

#: How long the stand-in holds its answer to the trapped notice: a send in flight.
IN_FLIGHT = 0.5


def test_a_sigterm_while_startup_notices_go_out_repeats_none(driver: Driver) -> None:
    # On Discord the stop may end while discord.py is in its gateway handshake
    # (tests/discord_adapter/test_handshake_stop_e2e.py holds it there every time).
    conversations = driver.conversations(4)
    driver.leave_markers(conversations)
    bot = None

    def stop_mid_send(n: int) -> None:
        if n == 2:
            assert bot is not None
            os.kill(bot.pid, signal.SIGTERM)
            time.sleep(IN_FLIGHT)  # the answer to notice 2 comes after the SIGTERM

    driver.api.on_notice = stop_mid_send
    bot = driver.start_bot()
    assert bot.wait_exit(60) == 0
    told = {m.chat for m in driver.api.sent if "restarted" in m.text}
    assert len(told) >= 2
    # What was posted is recorded; what was not is still marked.
    assert {m.conversation.chat for m in driver.markers()} == {c.chat for c in conversations} - told

    driver.api.on_notice = None
    driver.start_bot()
    driver.wait_for_notices(4)
    eventually(lambda: not driver.markers(), 30, "the markers to be cleared")
    assert [len(driver.notices_to(c)) for c in conversations] == [1, 1, 1, 1]


def test_a_delivered_notice_is_durable_before_the_next_is_sent(driver: Driver) -> None:
    conversations = driver.conversations(3)
    markers = driver.leave_markers(conversations)
    on_disk_at: dict[int, set[str]] = {}
    driver.api.on_notice = lambda n: on_disk_at.setdefault(n, keys(driver.markers()))
    driver.start_bot()
    driver.wait_for_notices(3)
    eventually(lambda: len(on_disk_at) == 3, 30, "the look at the disk at the third notice")
    # While notice n is being answered, the ones before it are already off the disk.
    assert on_disk_at == {
        1: keys(markers),
        2: keys(markers[1:]),
        3: keys(markers[2:]),
    }


def test_one_conversation_in_backoff_does_not_hold_up_the_others(driver: Driver) -> None:
    stuck, *others = driver.conversations(3)
    driver.leave_markers([stuck, *others])  # the stuck one is the oldest: first in line
    driver.fail_transiently(stuck)
    bot = driver.start_bot()
    driver.wait_for_notices(2, timeout=30)
    assert [len(driver.notices_to(c)) for c in others] == [1, 1]
    eventually(
        lambda: [m.conversation.chat for m in driver.markers()] == [stuck.chat],
        30,
        "only the stuck conversation to stay marked",
    )
    assert bot.process.poll() is None  # still retrying it, in the background


def test_a_kill_before_the_answer_repeats_the_notice_except_on_discord(driver: Driver) -> None:
    """The one window left: the platform took the notice, the bot died before it heard back."""
    [conversation] = driver.conversations(1)
    driver.leave_markers([conversation])
    bot = None

    def kill_before_answering(n: int) -> None:
        if n == 1:
            assert bot is not None
            os.kill(bot.pid, signal.SIGKILL)

    driver.api.on_notice = kill_before_answering
    bot = driver.start_bot()
    assert bot.wait_exit(60) == -signal.SIGKILL
    assert len(driver.markers()) == 1  # the bot never heard the platform's answer

    driver.api.on_notice = None
    driver.start_bot()
    eventually(lambda: not driver.markers(), 60, "the marker to be cleared")
    # Discord answers the repeated nonce with the message it already has.
    expected = 1 if driver.platform == "discord" else 2
    assert len(driver.notices_to(conversation)) == expected


@pytest.mark.parametrize("driver", ["telegram"], indirect=True)
def test_a_group_upgraded_to_a_supergroup_gets_its_notice_in_the_supergroup(
    driver: Driver,
) -> None:
    group = Conversation("telegram", "-4001")
    supergroup = "-1004001"
    [other] = driver.conversations(1)
    driver.leave_markers([group, other])
    driver.api.fail_next(
        "sendMessage",
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        chat_id=group.chat,
        times=10**6,  # every later call names the old id: Telegram keeps answering so
        parameters={"migrate_to_chat_id": int(supergroup)},
    )
    bot = driver.start_bot()
    driver.wait_for_notices(2)
    notified = sorted(m.chat for m in driver.api.sent if "restarted" in m.text)
    assert notified == sorted([supergroup, other.chat])  # none in the old group
    eventually(lambda: not driver.markers(), 30, "the markers to be cleared")
    bot.wait_for_log("moved to chat -1004001")
