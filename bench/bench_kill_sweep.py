"""Benchmark: conversations lost or duplicated by a SIGKILL 0–50 ms after a message reached the bot.

Run ``python bench/bench_kill_sweep.py`` (``--trials N`` per platform,
default 100; about three seconds a trial; ``--platforms``; ``--burst-only``
/ ``--no-burst``). Needs ``pip install -e ".[dev]"``.

**Sweep.** Per platform, the demo bot (a real process) against the
platform's stand-in: a user says ``work`` in a new chat; the stand-in
SIGKILLs the bot a random 0–50 ms after it handed the message out
(Telegram: the ``getUpdates`` answer; Slack: the Socket Mode envelope;
Discord: the ``MESSAGE_CREATE`` dispatch), timed on its own loop and binned
by when the kill really landed. The bot is started again. The conversation
is *lost* if it then got neither a resume notice nor the message
redelivered and handled; *duplicated* if it got both (see
``tests/scenarios/drivers/kill.py``, shared with the fault tests).

**Burst.** 10,000 updates (in 100 chats) injected at once into the
Telegram stand-in while the demo bot polls; the time until it has echoed
all of them, guarded vs ``--unguarded``, alternating, in the same run.

This is a benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually
from scenarios.drivers.base import Driver
from scenarios.drivers.discord import DiscordDriver
from scenarios.drivers.kill import Trial, kill_trial
from scenarios.drivers.slack import SlackDriver
from scenarios.drivers.telegram import TelegramDriver

BANDS = ((0.0, 2.0), (2.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 50.0))
PLATFORMS: dict[str, tuple[type[Driver], str]] = {
    "telegram": (TelegramDriver, "blocking"),
    "slack": (SlackDriver, "socket"),
    "slack-async": (SlackDriver, "async-socket"),
    "discord": (DiscordDriver, "gateway"),
}
BURST = 10_000
BURST_CHATS = 100


ABORTED: dict[str, int] = {}


def sweep(name: str, trials: int, rng: random.Random, work: Path) -> list[Trial]:
    driver_class, mode = PLATFORMS[name]
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(dir=work) as tmp, driver_class(mode, Path(tmp)).running() as d:
        bot = d.start_bot()
        for n in range(trials):
            try:
                trial, bot = kill_trial(d, bot, n, rng.uniform(0.0, 0.050))
            except (TimeoutError, RuntimeError) as exc:  # the kill never fired: no trial
                print(f"\n{name}: trial {n + 1} aborted: {str(exc)[:300]}", file=sys.stderr)
                ABORTED[name] = ABORTED.get(name, 0) + 1
                bot.stop()
                bot = d.start_bot()
                continue
            results.append(trial)
            del d.bots[:-1]  # only the running bot's log is printed at the end
            print(f"\r{name}: trial {n + 1}/{trials}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        d.bots.clear()
        bot.stop()
    return results


def sweep_rows(name: str, results: list[Trial]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for low, high in BANDS:
        top = high if high < BANDS[-1][1] else float("inf")
        band = [t for t in results if low <= t.delay * 1000 < top]
        rows.append(
            (
                name,
                f"{low:g}–{high:g} ms",
                len(band),
                sum(t.lost for t in band),
                sum(t.duplicated for t in band),
                sum(t.noticed and not t.redone for t in band),
                sum(t.redone and not t.noticed for t in band),
            )
        )
    return rows


def burst(api: TelegramStandIn, work: Path, guarded: bool, run: int) -> float:
    """Seconds from injecting BURST updates to the bot having echoed them all."""
    argv = [sys.executable, "-m", "restart_guard.demo.telegram_bot", "--api-url", api.base_url]
    argv += ["--token", api.token, "--marker-dir", str(work / f"markers-{run}")]
    if not guarded:
        argv.append("--unguarded")
    started = time.monotonic()
    bot = BotProcess.start(argv, log_path=work / f"burst-{run}.log")
    try:
        bot.wait_for_log("Application started", timeout=60)
        api.wait_for_poll(timeout=60, since=started)
        api.clear()
        began = time.perf_counter()
        for i in range(BURST):
            api.inject_message(-1003000000000 - i % BURST_CHATS, f"burst {i}")
        eventually(lambda: len(api.sent) >= BURST, 600, what="every echo", interval=0.05)
        return time.perf_counter() - began
    finally:
        bot.stop()


def burst_table(reps: int, work: Path) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    with TelegramStandIn.running() as api:
        for run in range(reps * 2):
            guarded = run % 2 == 1  # alternate, unguarded first
            times[guarded].append(burst(api, work, guarded, run))
            print(f"\rburst: run {run + 1}/{reps * 2}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    base = statistics.median(times[False])
    rows = []
    for guarded in (False, True):
        median = statistics.median(times[guarded])
        rows.append(
            (
                "guarded" if guarded else "unguarded (baseline)",
                reps,
                f"{median:.2f} s",
                f"{BURST / median:,.0f} updates/s",
                f"{base / median:.2f}×" + ("  (target ≥ 0.8×)" if guarded else ""),
            )
        )
    print(
        f"\n{BURST:,}-update burst through python-telegram-bot (echo handler, "
        f"{BURST_CHATS} chats), {os.cpu_count()} CPUs"
    )
    print_table(("bot", "runs", "median time", "throughput", "vs unguarded"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="kills per platform")
    parser.add_argument("--platforms", nargs="+", default=list(PLATFORMS), choices=PLATFORMS)
    parser.add_argument("--burst-reps", type=int, default=3)
    parser.add_argument("--no-burst", action="store_true")
    parser.add_argument("--burst-only", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="scratch space (marker dirs)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="rg-kill-", dir=args.dir) as scratch:
        work = Path(scratch)
        if not args.burst_only:
            rows: list[tuple[object, ...]] = []
            windows: dict[str, list[float]] = {}
            for name in args.platforms:
                results = sweep(name, args.trials, rng, work)
                rows += sweep_rows(name, results)
                windows[name] = [t.delay * 1000 for t in results if t.lost]
            print(
                f"\nSIGKILL 0–50 ms after the message reached the bot: {args.trials} trials "
                f"per platform, demo bots, {os.cpu_count()} CPUs"
            )
            header = ("platform", "kill delay", "trials", "lost", "duplicated")
            print_table((*header, "notice only", "redelivered only"), rows)
            for name, aborted in ABORTED.items():
                print(f"{name}: {aborted} trial(s) aborted (the kill never fired), not counted")
            for name, lost in windows.items():
                if lost:
                    print(f"{name}: latest kill that lost a conversation: {max(lost):.2f} ms")
        if not args.no_burst:
            burst_table(args.burst_reps, work)


if __name__ == "__main__":
    main()
