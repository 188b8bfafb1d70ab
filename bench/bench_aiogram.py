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

import asyncio
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common
import aiogram
from aiogram import Bot, Dispatcher
from aiogram.types import Message, Update

import restart_guard

CHATS = 50
TOKEN = "123456:BENCH-TOKEN"
REPORT = common.Report(
    title="aiogram benchmark",
    framework=f"aiogram {aiogram.__version__}",
    medians=f"Medians over {common.REPS} repetitions × {common.RUNS:,} updates each, over "
    f"{CHATS} chats and a forum topic; guarded and unguarded dispatchers alternate.",
    target=25e-6,  # seconds added per update (issue 12)
    run="update (feed_update)",
    cpu="of which loop-thread CPU",
    fsync="fsync on the loop thread",
)
#: The rows: what each measures, and the protect() options it adds.
ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("feed_update, DirectoryStore", {}),
    ("  same, store keeps nothing", {"store": common.DiscardingStore()}),
    ("  same, replay=True", {"replay": True}),
)


def counting_dispatcher() -> Dispatcher:
    """A dispatcher whose only handler does nothing (a message handler, so it matches)."""
    dp = Dispatcher()

    @dp.message()
    async def count(message: Message) -> None:
        pass

    return dp


def text_updates(bot: Bot) -> Callable[[int], list[Update]]:
    """``make(n)``: ``n`` text messages from users over ``CHATS`` chats and one forum
    topic, each with an update_id not used before."""
    ids = itertools.count(1)

    def make(n: int) -> list[Update]:
        return [_update(bot, next(ids), i) for i in range(n)]

    return make


def _update(bot: Bot, update_id: int, i: int) -> Update:
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": 1_700_000_000,
        "chat": {"id": -1001000000000 - (i % (CHATS + 1)), "type": "supergroup", "title": "c"},
        "from": {"id": 1000 + i % 7, "is_bot": False, "first_name": "u"},
        "text": "hello",
    }
    if i % (CHATS + 1) == CHATS:
        message.update(message_thread_id=7, is_topic_message=True)
        message["chat"]["is_forum"] = True
    return Update.model_validate({"update_id": update_id, "message": message}, context={"bot": bot})


async def bench(marker_dir: Path, what: str, options: dict[str, Any]) -> common.Result:
    bot = Bot(TOKEN)
    plain = counting_dispatcher()
    guarded = restart_guard.protect(marker_dir=marker_dir, **options)(counting_dispatcher())
    await guarded.emit_startup(bot=bot, bots=[bot])
    guard = type(guarded)._restart_guard.bots[bot.id].lifecycle.guard

    async def feed(dp: Dispatcher, batch: list[Update]) -> None:
        for update in batch:  # what polling and the webhook handler do with each update
            await dp.feed_update(bot, update)

    pair = (guarded, plain)
    result = await common.measure_overhead(what, guard, pair, feed, text_updates(bot))
    await guarded.emit_shutdown(bot=bot, bots=[bot])
    await bot.session.close()
    return result


async def run_all(path: Path) -> list[common.Result]:
    results = []
    for n, (what, options) in enumerate(ROWS):
        print(f"{what.strip()} …", file=sys.stderr, flush=True)
        results.append(await bench(path / str(n), what, options))
    return results


def main(argv: list[str] | None = None) -> int:
    return common.overhead_main(
        __doc__, "rg-bench-aiogram-", lambda path: asyncio.run(run_all(path)), REPORT, argv
    )


if __name__ == "__main__":
    sys.exit(main())
