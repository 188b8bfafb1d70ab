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

import asyncio
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import discord
from _common import (
    REPS,
    RUNS,
    DiscardingStore,
    Report,
    Result,
    measure_overhead,
    overhead_main,
)

import restart_guard
from restart_guard.testing.discord import DiscordStandIn, point_discord_at

CHANNELS = 50
REPORT = Report(
    "discord.py benchmark",
    f"discord.py {discord.__version__}",
    f"Medians over {REPS} repetitions × {RUNS:,} events each, over {CHANNELS} channels and "
    "a thread; guarded and unguarded clients alternate in the same run.",
    target=25e-6,  # seconds added per handler run (issue 3)
    run="event handler run",
    cpu="of which loop-thread CPU",
    fsync="fsync on the loop thread",
)


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


def raw_messages(
    template: dict[str, Any], channels: list[int]
) -> Callable[[int], list[dict[str, Any]]]:
    """``make(n)``: ``n`` copies of the stand-in's MESSAGE_CREATE ``template``, spread
    over ``channels``, each with a message id not used before."""
    ids = itertools.count(10**15)

    def make(n: int) -> list[dict[str, Any]]:
        return [
            {**template, "id": str(next(ids)), "channel_id": str(channels[i % len(channels)])}
            for i in range(n)
        ]

    return make


async def handle(client: Counting, batch: list[Any]) -> None:
    """Feed ``batch`` to the client's parser; return when every handler run has ended."""
    parse = client._connection.parsers["MESSAGE_CREATE"]
    client.target = client.handled + len(batch)
    client.reached.clear()
    for data in batch:
        parse(data)
    # Tasks run in order, and the guard ends a run as its handler returns: when
    # the last handler has run, every run is over.
    await client.reached.wait()


async def online(client: discord.Client) -> asyncio.Task[None]:
    await client.login("bench-token")
    connect = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), 30)
    return connect


async def offline(client: discord.Client, connect: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(connect, 30)


async def bench(
    template: dict[str, Any], channels: list[int], marker_dir: Path, what: str, **options: Any
) -> Result:
    plain = Counting()
    guarded = restart_guard.protect(marker_dir=marker_dir, **options)(Counting())
    connections = [await online(plain), await online(guarded)]
    state = guarded.__dict__["_restart_guard"]
    result = await measure_overhead(
        what, state.lifecycle.guard, (guarded, plain), handle, raw_messages(template, channels)
    )
    assert not state.active
    await offline(guarded, connections[1])
    await offline(plain, connections[0])
    return result


async def run_all(path: Path) -> list[Result]:
    async with DiscordStandIn() as api:
        with point_discord_at(api):
            channels = [api.add_channel(api.guild_id, name=f"c{i}") for i in range(CHANNELS)]
            channels.append(api.thread_id)
            # Injected before any client connects, so no one receives it: the
            # stand-in builds the payload (author, member, guild) as Discord does.
            template = api.message(api.inject_message(channels[0], "hello"))
            assert template is not None
            results = []
            for what, options in (
                ("on_message, DirectoryStore", {}),
                ("  same, store keeps nothing", {"store": DiscardingStore()}),
                ("  same, replay=True", {"replay": True}),
            ):
                print(f"{what.strip()} …", file=sys.stderr, flush=True)
                results.append(
                    await bench(template, channels, path / str(len(results)), what, **options)
                )
            return results


def main(argv: list[str] | None = None) -> int:
    return overhead_main(
        __doc__, "rg-bench-discord-", lambda path: asyncio.run(run_all(path)), REPORT, argv
    )


if __name__ == "__main__":
    sys.exit(main())
