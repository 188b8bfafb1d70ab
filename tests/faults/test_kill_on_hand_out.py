"""SIGKILL a few milliseconds after the platform handed the bot a message: never lost.

Real demo bots in subprocesses against the platforms' stand-ins (Telegram's
offsets, Slack's envelope redelivery, Discord's unacknowledged gateway), a
real SIGKILL timed on the stand-in's loop from the moment the message went
out (``StandIn.kill_on_hand_out``). Then the bot is started again: the
conversation must get a notice or its message redelivered and handled
(``drivers/kill.py``). ``bench/bench_kill_sweep.py`` sweeps 0–50 ms with
hundreds of trials; these are its fixed points.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.drivers.aiogram import AiogramDriver
from scenarios.drivers.base import Driver
from scenarios.drivers.discord import DiscordDriver
from scenarios.drivers.kill import Trial, kill_trial
from scenarios.drivers.slack import SlackDriver
from scenarios.drivers.telegram import TelegramDriver

#: Milliseconds after the hand-out: before the handler can begin, during the
#: marker's batch, after it.
DELAYS = (0.0, 3.0, 8.0)


def run_trials(driver: Driver, delays: tuple[float, ...]) -> list[Trial]:
    bot = driver.start_bot()
    trials = []
    for n, delay in enumerate(delays):
        trial, bot = kill_trial(driver, bot, n, delay / 1000)
        trials.append(trial)
    return trials


@pytest.fixture(
    params=[
        pytest.param((TelegramDriver, "blocking"), id="telegram"),
        pytest.param((AiogramDriver, "polling"), id="aiogram"),
        pytest.param((SlackDriver, "socket"), id="slack-App"),
        pytest.param((SlackDriver, "async-socket"), id="slack-AsyncApp"),
    ]
)
def acknowledging(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """A platform that acknowledges delivery: an unacknowledged message comes again."""
    driver_class, mode = request.param
    pytest.importorskip(driver_class.framework)
    with driver_class(mode, tmp_path).running() as driver:
        yield driver


def test_a_kill_right_after_the_hand_out_loses_no_conversation(acknowledging: Driver) -> None:
    trials = run_trials(acknowledging, DELAYS)
    lost = [t for t in trials if t.lost]
    assert not lost, f"lost at {[f'{t.delay * 1000:.1f} ms' for t in lost]}: {trials}"


def test_discord_loses_only_inside_the_write_ahead_window(tmp_path: Path) -> None:
    # The gateway has no acknowledgement: a kill before the marker's one fsync loses
    # the conversation (measured by the benchmark). Well past it, never; and with no
    # redelivery there is nothing to duplicate.
    pytest.importorskip("discord")
    with DiscordDriver("gateway", tmp_path).running() as driver:
        trials = run_trials(driver, (*DELAYS, 500.0))
    assert not trials[-1].lost, trials[-1]
    assert not any(t.duplicated for t in trials), trials
