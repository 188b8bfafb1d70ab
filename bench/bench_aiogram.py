"""Benchmark: what restart-guard adds to one aiogram update.

Run ``python bench/bench_aiogram.py`` (about 20 s; ``--dir PATH`` puts the
marker directory on another disk). Needs ``pip install -e ".[aiogram,testing]"``.

What is timed: ``Dispatcher.feed_update(bot, update)`` — the call both
aiogram's polling and its webhook handler make for every update — through
aiogram's outer middlewares (errors, user context, FSM) and a router to a
trivial message handler, for text messages spread over 50 chats and a
forum topic. The handler makes no API call, so the Bot never touches the
network.

A protected dispatcher and an unprotected one (the *unguarded baseline*)
are timed alternately, repetition by repetition, in the same process. The
overhead is the median over repetitions of (guarded − unguarded) per
update. ``os.fsync``/``os.fdatasync`` are counted by thread during the
timed loops: the event loop's thread must show 0.

Rows: the default ``DirectoryStore``; a store that keeps nothing (the
adapter's hooks, the key, the guard's bookkeeping alone); ``replay=True``,
where each update is also kept for the marker — serialised to JSON by the
guard's writer thread, so the loop thread only hands it over.

This is a benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aiogram
from _common import (
    DiscardingStore,
    FsyncCounter,
    Result,
    Timing,
    print_overhead_table,
    scratch_dir,
    summarise,
)
from aiogram import Bot, Dispatcher
from aiogram.types import Message, Update

import restart_guard

REPS = 41  # repetitions (odd: the median is one of them)
RUNS = 500  # updates per repetition and dispatcher
CHATS = 50
TARGET = 25e-6  # seconds added per update (issue 12)
TOKEN = "123456:BENCH-TOKEN"


def counting_dispatcher() -> tuple[Dispatcher, list[int]]:
    """A dispatcher whose only handler counts."""
    dp = Dispatcher()
    handled = [0]

    @dp.message()
    async def count(message: Message) -> None:
        handled[0] += 1

    return dp, handled


def updates(bot: Bot, n: int, first: int) -> list[Update]:
    """``n`` text messages from users, over ``CHATS`` chats and one forum topic."""
    result = []
    for i in range(n):
        chat = -1001000000000 - (i % (CHATS + 1))
        message: dict[str, Any] = {
            "message_id": i + 1,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "supergroup", "title": "c"},
            "from": {"id": 1000 + i % 7, "is_bot": False, "first_name": "u"},
            "text": "hello",
        }
        if i % (CHATS + 1) == CHATS:
            message.update(message_thread_id=7, is_topic_message=True)
            message["chat"]["is_forum"] = True
        raw = {"update_id": first + i, "message": message}
        result.append(Update.model_validate(raw, context={"bot": bot}))
    return result


async def timed(dp: Dispatcher, bot: Bot, batch: list[Update]) -> Timing:
    started, cpu = time.perf_counter(), time.thread_time()
    for update in batch:
        await dp.feed_update(bot, update)
    n = len(batch)
    return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n


async def bench(marker_dir: Path, what: str, **options: Any) -> Result:
    bot = Bot(TOKEN)
    plain, _ = counting_dispatcher()
    guarded, handled = counting_dispatcher()
    restart_guard.protect(marker_dir=marker_dir, **options)(guarded)
    await guarded.emit_startup(bot=bot, bots=[bot])
    state = type(guarded)._restart_guard  # type: ignore[attr-defined]
    guard = state.bots[bot.id].lifecycle.guard
    assert guard is not None
    warm = updates(bot, 500, 1)
    await timed(plain, bot, warm)
    await timed(guarded, bot, warm)
    pairs = []
    batches_before = guard.writer.batches
    with FsyncCounter() as counter:
        for rep in range(REPS):
            batch = updates(bot, RUNS, (rep + 1) * RUNS + 1000)
            gc.collect()
            # Alternate which goes first so neither always runs on a warmer cache.
            if rep % 2:
                g, u = await timed(guarded, bot, batch), await timed(plain, bot, batch)
            else:
                u, g = await timed(plain, bot, batch), await timed(guarded, bot, batch)
            pairs.append((g, u))
        await asyncio.get_running_loop().run_in_executor(None, guard.flush)
    batches = guard.writer.batches - batches_before
    assert guard.in_flight == 0
    assert handled[0] == 500 + REPS * RUNS
    await guarded.emit_shutdown(bot=bot, bots=[bot])
    await bot.session.close()
    return summarise(what, pairs, counter, batches)


async def run_all(path: Path) -> list[Result]:
    results = []
    for what, options in (
        ("feed_update, DirectoryStore", {}),
        ("  same, store keeps nothing", {"store": DiscardingStore()}),
        ("  same, replay=True", {"replay": True}),
    ):
        print(f"{what.strip()} …", file=sys.stderr, flush=True)
        results.append(await bench(path / str(len(results)), what, **options))
    return results


def report(results: list[Result], started: float) -> None:
    print(
        f"restart-guard aiogram benchmark — nproc {os.cpu_count()}, Python "
        f"{platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, aiogram {aiogram.__version__}"
    )
    print(f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"Medians over {REPS} repetitions × {RUNS:,} updates each, over {CHATS} chats and a "
        "forum topic; guarded and unguarded dispatchers alternate in the same run."
    )
    print()
    print_overhead_table(
        results,
        TARGET,
        run="update (feed_update)",
        cpu="of which loop-thread CPU",
        fsync="fsync on the loop thread",
    )
    print()
    print(f"total benchmark time {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where the marker directory goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with scratch_dir(args.dir, prefix="rg-bench-aiogram-") as path:
        results = asyncio.run(run_all(path))
    report(results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
