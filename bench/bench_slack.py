"""Benchmark: what restart-guard adds to one slack-bolt listener run, sync and async.

Run ``python bench/bench_slack.py`` (about 20 s; ``--dir PATH`` puts the
marker directory on another disk). Needs ``pip install -e ".[slack,testing]"``.

What is timed: ``app.dispatch(request)`` (``App``) and ``await
app.async_dispatch(request)`` (``AsyncApp``) of a Socket Mode ``message``
event to a trivial listener, through Bolt's whole path — middleware,
matching, ack, listener runner, completion handler. Each app is built with
``process_before_response=True`` so the listener, and with it the guard's
whole bracket (begin in ``listener_runner.run``, end in the completion
handler), runs on the dispatching thread and inside the timed call; with
Bolt's default the same work is split between that thread and the pool's.

A protected app and an unprotected one (the *unguarded baseline*), both
against the loopback ``SlackStandIn``, are timed alternately, repetition by
repetition, in the same process; every event is a new top-level message,
so every run is a new conversation and a new marker. The overhead is the
median over repetitions of (guarded − unguarded) per run. During the timed
loops ``os.fsync``/``os.fdatasync`` are wrapped to count calls by thread:
the listener's thread must show 0, the writer thread's count shows that the
markers did reach the disk meanwhile.

Each app is measured twice: with the default ``DirectoryStore``, and with
``protect(store=...)`` given a store that keeps nothing. The second row is
the listener's own path (the adapter's hooks, the conversation key, the
guard's in-memory bookkeeping); the difference is the writer thread's work —
building and JSON-encoding each marker, then the fdatasync — which runs off
the listener's thread but, on a small machine, competes with it for the CPU
and the GIL.

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

from _common import (
    DiscardingStore,
    FsyncCounter,
    Result,
    Timing,
    print_overhead_table,
    scratch_dir,
    summarise,
)
from restart_guard.adapters import slack as slack_guard
from slack_bolt import App, BoltRequest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard.testing.slack import SlackStandIn

# Many short repetitions, finely interleaved: a burst of load from elsewhere on
# the machine then spoils a few pairs, which the median ignores.
REPS = 41  # repetitions (odd: the median is one of them)
RUNS = 500  # dispatches per repetition and app
TARGET = 25e-6  # seconds added per listener run (issue 4)


def bodies(api: SlackStandIn, n: int) -> list[dict[str, Any]]:
    """``n`` Events API bodies, each a new top-level message (a new conversation)."""
    return [api.event_callback(api.message_event(f"C{i % 50:04d}", "hi")) for i in range(n)]


# ---------------------------------------------------------------------- sync
def sync_app(api: SlackStandIn) -> App:
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
        process_before_response=True,
    )

    @app.event("message")
    def listener() -> None:
        pass

    return app


def bench_sync(api: SlackStandIn, marker_dir: Path, what: str, store: Any = None) -> Result:
    plain = sync_app(api)
    guarded = restart_guard.protect(marker_dir=marker_dir, store=store)(sync_app(api))
    slack_guard.startup(guarded)

    def timed(app: App, batch: list[dict[str, Any]]) -> Timing:
        dispatch = app.dispatch
        started, cpu = time.perf_counter(), time.thread_time()
        for body in batch:
            dispatch(BoltRequest(body=body, mode="socket_mode"))
        n = len(batch)
        return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n

    warm = bodies(api, 500)
    timed(plain, warm)
    timed(guarded, warm)
    pairs = []
    state = slack_guard.state_of(guarded)
    assert state is not None
    assert state.lifecycle.guard is not None
    batches_before = state.lifecycle.guard.writer.batches
    with FsyncCounter() as counter:
        for rep in range(REPS):
            batch = bodies(api, RUNS)
            gc.collect()
            # Alternate which goes first so neither always runs on a warmer cache.
            if rep % 2:
                g, u = timed(guarded, batch), timed(plain, batch)
            else:
                u, g = timed(plain, batch), timed(guarded, batch)
            pairs.append((g, u))
    # Outside the counter: this flush commits on this thread on purpose.
    state.lifecycle.guard.flush()
    batches = state.lifecycle.guard.writer.batches - batches_before
    assert state.lifecycle.guard.in_flight == 0
    slack_guard.shutdown(guarded)
    return summarise(what, pairs, counter, batches)


# ---------------------------------------------------------------------- async
def async_app(api: SlackStandIn) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
        process_before_response=True,
    )

    @app.event("message")
    async def listener() -> None:
        pass

    return app


async def bench_async(marker_dir: Path, what: str, store: Any = None) -> Result:
    async with SlackStandIn() as api:
        plain = async_app(api)
        guarded = restart_guard.protect(marker_dir=marker_dir, store=store)(async_app(api))
        await slack_guard.startup_async(guarded)

        async def timed(app: AsyncApp, batch: list[dict[str, Any]]) -> Timing:
            dispatch = app.async_dispatch
            started, cpu = time.perf_counter(), time.thread_time()
            for body in batch:
                await dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
            n = len(batch)
            return (time.perf_counter() - started) / n, (time.thread_time() - cpu) / n

        warm = bodies(api, 500)  # also the one auth.test each app's middleware caches
        await timed(plain, warm)
        await timed(guarded, warm)
        pairs = []
        state = slack_guard.state_of(guarded)
        assert state is not None
        assert state.lifecycle.guard is not None
        batches_before = state.lifecycle.guard.writer.batches
        with FsyncCounter() as counter:
            for rep in range(REPS):
                batch = bodies(api, RUNS)
                gc.collect()
                if rep % 2:
                    g, u = await timed(guarded, batch), await timed(plain, batch)
                else:
                    u, g = await timed(plain, batch), await timed(guarded, batch)
                pairs.append((g, u))
        # Outside the counter: this flush commits on this thread on purpose.
        state.lifecycle.guard.flush()
        batches = state.lifecycle.guard.writer.batches - batches_before
        assert state.lifecycle.guard.in_flight == 0
        await slack_guard.shutdown_async(guarded)
    return summarise(what, pairs, counter, batches)


# ---------------------------------------------------------------------- report
def report(results: list[Result], started: float) -> None:
    print(
        f"restart-guard slack-bolt benchmark — nproc {os.cpu_count()}, Python "
        f"{platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"
    )
    print(f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"Medians over {REPS} repetitions × {RUNS:,} dispatches each; every dispatch is a new "
        "conversation; guarded and unguarded apps alternate in the same run."
    )
    print()
    print_overhead_table(
        results,
        TARGET,
        run="listener run through",
        cpu="of which listener-thread CPU",
        fsync="fsync on listener thread",
    )
    print()
    print(f"total benchmark time {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where the marker directory goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    results = []
    with scratch_dir(args.dir, prefix="rg-bench-slack-") as path:
        print("sync App …", file=sys.stderr, flush=True)
        with SlackStandIn.running() as api:
            results.append(bench_sync(api, path / "sync", "sync App.dispatch()"))
            results.append(
                bench_sync(
                    api, path / "sync-null", "  same, store keeps nothing", DiscardingStore()
                )
            )
        print("async AsyncApp …", file=sys.stderr, flush=True)
        results.append(asyncio.run(bench_async(path / "async", "async AsyncApp.async_dispatch()")))
        results.append(
            asyncio.run(
                bench_async(path / "async-null", "  same, store keeps nothing", DiscardingStore())
            )
        )
    report(results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
