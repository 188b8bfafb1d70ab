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

import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

import slack_bolt
from _common import (
    REPS,
    RUNS,
    DiscardingStore,
    Report,
    Result,
    measure_overhead,
    overhead_main,
)
from restart_guard.adapters import slack as slack_guard
from slack_bolt import App, BoltRequest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard.testing.slack import SlackStandIn

REPORT = Report(
    "slack-bolt benchmark",
    f"slack-bolt {slack_bolt.version.__version__}",
    f"Medians over {REPS} repetitions × {RUNS:,} dispatches each; every dispatch is a new "
    "conversation; guarded and unguarded apps alternate in the same run.",
    target=25e-6,  # seconds added per listener run (issue 4)
    run="listener run through",
    cpu="of which listener-thread CPU",
    fsync="fsync on listener thread",
)


def bodies(api: SlackStandIn, n: int) -> list[dict[str, Any]]:
    """``n`` Events API bodies, each a new top-level message (a new conversation)."""
    return [api.event_callback(api.message_event(f"C{i % 50:04d}", "hi")) for i in range(n)]


def measure(api: SlackStandIn, what: str, guarded: Any, plain: Any, dispatch: Any) -> Any:
    """:func:`measure_overhead` of the two apps on fresh bodies (a coroutine)."""
    state = slack_guard.state_of(guarded)
    assert state is not None
    # The warm-up bodies also fill the cache of the one auth.test each app's middleware makes.
    return measure_overhead(
        what, state.lifecycle.guard, (guarded, plain), dispatch, functools.partial(bodies, api)
    )


def listener() -> None:
    """``App``'s listener: it does nothing, so what is timed is Bolt's path and the guard's."""


async def async_listener() -> None:
    """``AsyncApp``'s listener, likewise."""


def listening_app(api: SlackStandIn, app_class: Any, client_class: Any) -> Any:
    """An ``App`` or ``AsyncApp`` on the stand-in whose ``message`` listener does nothing.

    ``process_before_response=True``: the listener, and with it the guard's whole
    bracket, runs inside the dispatch the benchmark times.
    """
    app = app_class(
        client=client_class(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
        process_before_response=True,
    )
    app.event("message")(async_listener if app_class is AsyncApp else listener)
    return app


# ---------------------------------------------------------------------- sync
async def dispatch_sync(app: App, batch: list[dict[str, Any]]) -> None:
    # A plain loop of app.dispatch() on this thread: the coroutine only lets
    # measure_overhead() drive it, and nothing awaited falls inside the timing.
    dispatch = app.dispatch
    for body in batch:
        dispatch(BoltRequest(body=body, mode="socket_mode"))


def bench_sync(api: SlackStandIn, marker_dir: Path, what: str, store: Any = None) -> Result:
    plain = listening_app(api, App, WebClient)
    guarded = restart_guard.protect(marker_dir=marker_dir, store=store)(
        listening_app(api, App, WebClient)
    )
    slack_guard.startup(guarded)
    result: Result = asyncio.run(measure(api, what, guarded, plain, dispatch_sync))
    slack_guard.shutdown(guarded)
    return result


# ---------------------------------------------------------------------- async
async def dispatch_async(app: AsyncApp, batch: list[dict[str, Any]]) -> None:
    dispatch = app.async_dispatch
    for body in batch:
        await dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))


async def bench_async(marker_dir: Path, what: str, store: Any = None) -> Result:
    async with SlackStandIn() as api:
        plain = listening_app(api, AsyncApp, AsyncWebClient)
        guarded = restart_guard.protect(marker_dir=marker_dir, store=store)(
            listening_app(api, AsyncApp, AsyncWebClient)
        )
        await slack_guard.startup_async(guarded)
        result: Result = await measure(api, what, guarded, plain, dispatch_async)
        await slack_guard.shutdown_async(guarded)
    return result


# ---------------------------------------------------------------------- run
def run_all(path: Path) -> list[Result]:
    results = []
    print("sync App …", file=sys.stderr, flush=True)
    with SlackStandIn.running() as api:
        results.append(bench_sync(api, path / "sync", "sync App.dispatch()"))
        results.append(
            bench_sync(api, path / "sync-null", "  same, store keeps nothing", DiscardingStore())
        )
    print("async AsyncApp …", file=sys.stderr, flush=True)
    results.append(asyncio.run(bench_async(path / "async", "async AsyncApp.async_dispatch()")))
    results.append(
        asyncio.run(
            bench_async(path / "async-null", "  same, store keeps nothing", DiscardingStore())
        )
    )
    return results


def main(argv: list[str] | None = None) -> int:
    return overhead_main(__doc__, "rg-bench-slack-", run_all, REPORT, argv)


if __name__ == "__main__":
    sys.exit(main())
