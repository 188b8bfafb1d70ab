"""Benchmark: duplicate notices when the bot is SIGKILLed right after a notice was accepted.

Run ``python bench/bench_notice_kill.py`` (``--trials N``, default 80; about
two seconds a trial). Needs ``pip install -e ".[telegram,testing]"``.

Each trial leaves one marker, as a killed process does, and starts the
Telegram demo bot (a real python-telegram-bot process) against the loopback
``TelegramStandIn``. When the stand-in accepts the bot's ``sendMessage`` of
the notice it starts a timer, and SIGKILLs the bot a random delay later
(0–20 ms asked for, and 50–100 ms as a control; binned by when the kill
really landed); the stand-in answers the bot at
once, as Telegram does. A notice is duplicated when the marker is still on
disk after the kill: the bot is then started again and its notices counted
(with no marker left, a restart has nothing to post).

The window: between the platform accepting the notice and the bot's one
flush of the outcome (the marker's removal, or its ``noticed`` flag) — the
answer's trip back to the bot plus one fsync. The control band is the
baseline of the same run: far past the window, it must show no duplicate.

This is a benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

from _common import print_table, scratch_dir

from restart_guard import Conversation, DirectoryStore, Marker
from restart_guard.demo._options import bot_argv
from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn

CHAT = "-1001000000042"
BANDS = ((0.0, 2.0), (2.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 50.0))
#: Asked for 50–100 ms; binned as everything that really landed at 50 ms or later.
CONTROL = (50.0, 100.0)


class KillingStandIn(TelegramStandIn):
    """Kills ``victim`` ``delay`` seconds after it accepts the first notice."""

    victim: BotProcess | None = None
    delay = 0.0
    killed_after: float | None = None

    def _record(self, message: SentMessage) -> None:
        super()._record(message)
        victim = self.victim
        if victim is None or "restarted" not in message.text:
            return
        self.victim = None
        accepted = time.perf_counter()

        def kill() -> None:
            os.kill(victim.pid, signal.SIGKILL)
            self.killed_after = time.perf_counter() - accepted

        # On the stand-in's loop, which answers the bot as soon as this returns: a
        # timer there fires within about a millisecond (a thread would wait for the GIL).
        asyncio.get_running_loop().call_later(self.delay, kill)


def leave_marker(marker_dir: Path) -> None:
    now = time.time()
    store = DirectoryStore(marker_dir)
    store.open("elsewhere:1:dead")
    store.commit([Marker(Conversation("telegram", CHAT), now - 30, owner="elsewhere:1:dead")], [])
    store.close()


def start_bot(api: TelegramStandIn, marker_dir: Path, log: Path) -> BotProcess:
    module = "restart_guard.demo.telegram_bot"
    options = ("--api-url", api.base_url, "--token", api.token)
    return BotProcess.start(bot_argv(module, *options, marker_dir=marker_dir), log_path=log)


def notices(api: TelegramStandIn) -> int:
    return sum(1 for m in api.sent_to(CHAT) if "restarted" in m.text)


def trial(api: KillingStandIn, work: Path, delay_ms: float) -> tuple[float, int]:
    """One kill; returns (the real delay in ms, duplicated notices)."""
    marker_dir = work / "markers"
    leave_marker(marker_dir)
    api.clear()
    api.killed_after = None
    api.delay = delay_ms / 1000
    bot = start_bot(api, marker_dir, work / "bot-1.log")
    api.victim = bot
    status = bot.wait_exit(60)
    if status != -signal.SIGKILL or api.killed_after is None:
        raise RuntimeError(f"the bot exited with {status} before the kill:\n{bot.log()}")
    duplicates = 0
    if DirectoryStore(marker_dir).load():
        again = start_bot(api, marker_dir, work / "bot-2.log")
        try:
            api.wait_for_sent(lambda m: m.chat == CHAT and "restarted" in m.text, 60, count=2)
            deadline = time.monotonic() + 60
            while DirectoryStore(marker_dir).load():  # its own removal: the trial is over
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the marker stayed after the restart:\n{again.log()}")
                time.sleep(0.01)
        finally:
            again.process.send_signal(signal.SIGTERM)
            again.wait_exit(60)
        duplicates = notices(api) - 1
    return api.killed_after * 1000, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--dir", type=Path, default=None, help="where the marker dirs go")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    control = max(args.trials // 8, 4)
    delays = [rng.uniform(0.0, 20.0) for _ in range(args.trials - control)]
    delays += [rng.uniform(*CONTROL) for _ in range(control)]
    rng.shuffle(delays)
    results: list[tuple[float, int]] = []
    with KillingStandIn.running() as api:
        for n, delay in enumerate(delays, 1):
            with scratch_dir(args.dir) as work:
                results.append(trial(api, work, delay))
            print(f"\rtrial {n}/{len(delays)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = []
    for low, high in (*BANDS, CONTROL):
        top = high if (low, high) != CONTROL else float("inf")
        band = [d for real, d in results if low <= real < top]
        hit = sum(1 for d in band if d)
        label = f"{low:g}–{high:g} ms" if (low, high) != CONTROL else f"≥ {low:g} ms (control)"
        rows.append((label, len(band), sum(band), f"{hit / len(band):.0%}" if band else "–"))
    print(
        f"SIGKILL after the stand-in accepted a notice: {len(results)} trials, "
        f"python-telegram-bot demo bot, {os.cpu_count()} CPUs"
    )
    print_table(("kill delay", "trials", "duplicate notices", "trials with a duplicate"), rows)
    dup_delays = [real for real, d in results if d]
    if dup_delays:
        print(
            f"latest kill that still duplicated: {max(dup_delays):.2f} ms after acceptance "
            f"(median of duplicating kills {statistics.median(dup_delays):.2f} ms)"
        )


if __name__ == "__main__":
    main()
