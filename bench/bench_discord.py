"""Benchmark: what restart-guard adds to one discord.py event handler run.

Run ``python bench/bench_discord.py`` (about 30 s; ``--dir PATH`` puts the
marker directory on another disk). Needs ``pip install -e ".[discord,testing]"``.

What is timed: a raw gateway MESSAGE_CREATE fed to the client's own parser
(what discord.py's websocket does with each event) → ``Message`` built →
``dispatch`` → ``_schedule_event`` → a task running a trivial ``on_message``
→ the handler's return (where the guard ends the run).
The clients are logged in and connected to the loopback ``DiscordStandIn``,
so channels resolve from a real guild cache; messages go to 50 channels and
a thread in turn.

A protected client and an unprotected one (the *unguarded baseline*) are
timed alternately, repetition by repetition, in the same process. The
overhead is the median over repetitions of (guarded − unguarded) per event.
During the timed loops ``os.fsync``/``os.fdatasync`` are wrapped to count
calls by thread: the event loop's thread must show 0; the writer thread's
count shows that the markers did reach the disk meanwhile.

Rows: the default ``DirectoryStore``; the same with a store that keeps
nothing (the handler's own path: the adapter's hooks, the conversation key,
the guard's bookkeeping — the difference is the writer thread's encoding and
fdatasync competing for the CPU and the GIL); and ``replay=True``, where
each run also keeps a copy of the raw event for the marker.

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

import discord
from _common import (
    DiscardingStore,
    FsyncCounter,
    Result,
    Timing,
    print_overhead_table,
    scratch_dir,
    summarise,
)

import restart_guard
from restart_guard.testing.discord import DiscordStandIn, point_discord_at

# Many short repetitions, finely interleaved: a burst of load from elsewhere on
# the machine then spoils a few pairs, which the median ignores.
REPS = 41  # repetitions (odd: the median is one of them)
RUNS = 500  # events per repetition and client
CHANNELS = 50
TARGET = 25e-6  # seconds added per handler run (issue 3)


class Counting(discord.Client):
    """A client whose ``on_message`` only counts: the handler costs next to nothing."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.2)
        self.handled = 0
        self.target = 0
        self.reached = asyncio.Event()

    async def on_message(self, message: discord.Message) -> None:
        self.handled += 1
        if self.handled == self.target:
            self.reached.set()


def raw_messages(api: DiscordStandIn, channels: list[int], n: int, first: int) -> list[Any]:
    """``n`` MESSAGE_CREATE payloads from a user, spread over ``channels``."""
    author = {
        "id": str(api.user_id),
        "username": "tester",
        "discriminator": "0",
        "global_name": "tester",
        "avatar": None,
        "bot": False,
    }
    return [
        {
            "id": str(first + i),
            "channel_id": str(channels[i % len(channels)]),
            "guild_id": str(api.guild_id),
            "author": author,
            "member": {"roles": [], "joined_at": "2025-01-01T00:00:00+00:00", "deaf": False},
            "content": "hello",
            "timestamp": "2025-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        for i in range(n)
    ]


async def timed(client: Counting, batch: list[Any]) -> Timing:
    parse = client._connection.parsers["MESSAGE_CREATE"]
    client.target = client.handled + len(batch)
    client.reached.clear()
    started, cpu = time.perf_counter(), time.thread_time()
    for data in batch:
        parse(data)
    # Tasks run in order, and the guard ends a run as its handler returns: when
    # the last handler has run, every run is over.
    await client.reached.wait()
    n = len(batch)
    return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n


async def online(client: discord.Client) -> asyncio.Task[None]:
    await client.login("bench-token")
    connect = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), 30)
    return connect


async def offline(client: discord.Client, connect: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(connect, 30)


async def bench(
    api: DiscordStandIn, channels: list[int], marker_dir: Path, what: str, **options: Any
) -> Result:
    plain = Counting()
    guarded = restart_guard.protect(marker_dir=marker_dir, **options)(Counting())
    connections = [await online(plain), await online(guarded)]
    state = guarded.__dict__["_restart_guard"]
    guard = state.lifecycle.guard
    assert guard is not None
    first = 10**15
    warm = raw_messages(api, channels, 500, first)
    await timed(plain, warm)
    await timed(guarded, warm)
    pairs = []
    batches_before = guard.writer.batches
    with FsyncCounter() as counter:
        for rep in range(REPS):
            batch = raw_messages(api, channels, RUNS, first + (rep + 1) * RUNS)
            gc.collect()
            # Alternate which goes first so neither always runs on a warmer cache.
            if rep % 2:
                g, u = await timed(guarded, batch), await timed(plain, batch)
            else:
                u, g = await timed(plain, batch), await timed(guarded, batch)
            pairs.append((g, u))
        # Let the writer catch up inside the counter, on its own thread.
        await asyncio.get_running_loop().run_in_executor(None, guard.flush)
    batches = guard.writer.batches - batches_before
    assert guard.in_flight == 0
    assert not state.active
    await offline(guarded, connections[1])
    await offline(plain, connections[0])
    return summarise(what, pairs, counter, batches)


async def run_all(path: Path) -> list[Result]:
    async with DiscordStandIn() as api:
        with point_discord_at(api):
            channels = [api.add_channel(api.guild_id, name=f"c{i}") for i in range(CHANNELS)]
            channels.append(api.thread_id)
            results = []
            for what, options in (
                ("on_message, DirectoryStore", {}),
                ("  same, store keeps nothing", {"store": DiscardingStore()}),
                ("  same, replay=True", {"replay": True}),
            ):
                print(f"{what.strip()} …", file=sys.stderr, flush=True)
                results.append(
                    await bench(api, channels, path / str(len(results)), what, **options)
                )
            return results


def report(results: list[Result], started: float) -> None:
    print(
        f"restart-guard discord.py benchmark — nproc {os.cpu_count()}, Python "
        f"{platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, discord.py {discord.__version__}"
    )
    print(f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"Medians over {REPS} repetitions × {RUNS:,} events each, over {CHANNELS} channels and "
        "a thread; guarded and unguarded clients alternate in the same run."
    )
    print()
    print_overhead_table(
        results,
        TARGET,
        run="event handler run",
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
    with scratch_dir(args.dir, prefix="rg-bench-discord-") as path:
        results = asyncio.run(run_all(path))
    report(results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
