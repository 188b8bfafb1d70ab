"""One SIGKILL trial: kill the bot a set delay after the platform handed it a message.

Shared by ``tests/faults/test_kill_on_hand_out.py`` (a few fixed delays) and
``bench/bench_kill_sweep.py`` (a random sweep). Trials chain: the bot
started to recover one trial is the victim of the next.

A trial's conversation is

- **lost** when, after the restart, neither a resume notice was posted in it
  nor the message redelivered and handled — the user's turn vanished;
- **duplicated** when both happened: a notice *and* the turn run again.
"""

from __future__ import annotations

import contextlib
import json
import signal
from dataclasses import dataclass
from typing import Any

from restart_guard.testing.process import BotProcess
from restart_guard.testing.wait import eventually

from .base import NOTICE, Driver

#: Seconds of work a trial's turn asks for: in flight at any kill delay swept (≤ 50 ms).
WORK = 1.0
#: After the restart has served, how long a redelivery may take before the turn counts lost.
LOST_AFTER = 3.0


@dataclass(frozen=True)
class Trial:
    """What one kill did to its conversation."""

    delay: float  # measured seconds from the hand-out to the kill
    noticed: bool
    redone: bool

    @property
    def lost(self) -> bool:
        return not (self.noticed or self.redone)

    @property
    def duplicated(self) -> bool:
        return self.noticed and self.redone


def kill_trial(driver: Driver, bot: BotProcess, n: int, delay: float) -> tuple[Trial, BotProcess]:
    """Kill ``bot`` ``delay`` s after its ``n``-th message is handed out; restart; judge.

    Returns the trial and the restarted bot (running, ready for the next trial).
    """
    if delay >= WORK:
        raise ValueError(f"a kill {delay}s in must come before the {WORK}s turn finishes")
    place = driver.new_place(n)
    tag = f"trial-{n}-{id(driver)}"  # unique text: picks the message out of the hand-outs

    def carries_tag(event: dict[str, Any]) -> bool:
        return tag in json.dumps(event)

    armed = driver.api.kill_on_hand_out(bot.pid, delay, carries_tag)
    said = driver.say(place, f"{driver.command('work', WORK)} {tag}")
    status = bot.wait_exit(60)
    if status != -signal.SIGKILL or armed.killed_after is None:
        raise RuntimeError(f"the bot exited with {status} before the kill:\n{bot.log()}")
    before = len(driver.api.sent)
    restarted = driver.start_bot()

    def since_restart() -> list[str]:
        return [m.text for m in driver.api.sent[before:] if said.place.holds(m)]

    def settled() -> bool:
        texts = since_restart()
        return any(NOTICE in t for t in texts) or any(t.startswith("working") for t in texts)

    with contextlib.suppress(TimeoutError):  # neither within LOST_AFTER: lost
        eventually(settled, LOST_AFTER, what="a notice or the redelivered turn")
    if any(t.startswith("working") for t in since_restart()):
        # Only a finished turn counts as redone: the killed bot's own "working…" can
        # be in flight at the kill and reach the stand-in's record after `before` was
        # taken. It never finishes (every delay is shorter than WORK); a redelivered
        # turn does — and the next kill must not catch it still running.
        with contextlib.suppress(TimeoutError):
            driver.api.wait_for_sent(
                lambda m: said.place.holds(m) and m.text.startswith("done"),
                timeout=WORK + LOST_AFTER,
            )
    texts = since_restart()
    redone = any(t.startswith("done") for t in texts)
    # Any notice of this conversation goes out before the restarted bot serves.
    return Trial(armed.killed_after, any(NOTICE in t for t in texts), redone), restarted
