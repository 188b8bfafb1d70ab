"""``durable()``: what an adapter holds a platform's acknowledgement on.

A real DirectoryStore behind the FlakyStore wrapper (which can hold the
writer inside a batch, or fail like a full disk); real threads, real loops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from restart_guard import DirectoryStore, Guard
from restart_guard.testing.wait import eventually

from .conftest import FlakyStore, conv, stored

MakeGuard = Callable[..., Guard]


def gated(marker_dir: Path) -> FlakyStore:
    store = FlakyStore(DirectoryStore(marker_dir))
    store.gate = threading.Event()
    return store


async def test_durable_returns_once_the_marks_made_so_far_are_on_disk(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = gated(marker_dir)
    guard = make_guard(store=store)
    run = guard.begin(conv(1))
    waiting = asyncio.ensure_future(guard.writer.durable())
    assert await asyncio.to_thread(store.entered.wait, 2)  # the writer holds the batch
    assert not waiting.done()  # the batch is not committed: nothing acknowledged yet
    assert store.gate is not None
    store.gate.set()
    assert await waiting is True
    # At the moment durable() returned, the marker was in the store.
    assert conv(1).key in await asyncio.to_thread(stored, store.inner)
    guard.end(run)


async def test_durable_with_nothing_marked_returns_without_a_batch(make_guard: MakeGuard) -> None:
    guard = make_guard()
    assert await guard.writer.durable() is True
    assert guard.writer.batches == 0


async def test_the_batch_is_written_off_the_event_loop(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    threads: list[int] = []
    store = FlakyStore(DirectoryStore(marker_dir))
    inner_commit = store.commit

    def commit(*args: object, **kwargs: object) -> None:
        threads.append(threading.get_ident())
        inner_commit(*args, **kwargs)  # type: ignore[arg-type]

    store.commit = commit  # type: ignore[method-assign]
    guard = make_guard(store=store)
    run = guard.begin(conv(1))
    assert await guard.writer.durable() is True
    assert threads
    assert threading.get_ident() not in threads
    guard.end(run)


def test_durable_blocking_waits_for_the_batch_of_its_marks(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = gated(marker_dir)
    guard = make_guard(store=store)
    run = guard.begin(conv(1))
    assert store.entered.wait(2)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(guard.writer.durable_blocking()))
    waiter.start()
    waiter.join(0.05)  # still blocked: its batch is held at the gate
    assert waiter.is_alive()
    assert not result
    later = guard.begin(conv(2))  # a later update's mark: its own acknowledgement waits for it
    assert store.gate is not None
    store.gate.set()
    waiter.join(5)
    assert result == [True]
    assert conv(1).key in stored(store.inner)
    guard.end(run)
    guard.end(later)


async def test_a_failing_store_releases_the_acknowledgement_with_one_warning(
    make_guard: MakeGuard, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir), fail_commits=10**6)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        guard = make_guard(store=store)
        runs = [guard.begin(conv(n)) for n in range(3)]
        assert await guard.writer.durable() is False  # released by the failed batch
        assert await guard.writer.durable() is False  # known failing: at once
        assert await asyncio.to_thread(guard.writer.durable_blocking) is False
    warnings = [r.getMessage() for r in caplog.records if "acknowledging" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "failing" in warnings[0]
    store.fail_commits = 0  # the writer's retry succeeds within its backoff
    await asyncio.to_thread(eventually, lambda: len(stored(store.inner)) == 3, 5)
    # The writer clears its failing state just after the batch lands: wait for that too.
    await asyncio.to_thread(eventually, guard.writer.durable_blocking, 5)
    assert await guard.writer.durable() is True
    for run in runs:
        guard.end(run)


async def test_a_hung_store_releases_the_acknowledgement_after_the_timeout(
    make_guard: MakeGuard, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = gated(marker_dir)  # never opened: the commit hangs until the gate's deadline
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        guard = make_guard(store=store)
        run = guard.begin(conv(1))
        assert await guard.writer.durable(timeout=0.1) is False
    assert "took over 0.1s" in caplog.text
    assert store.gate is not None
    store.gate.set()
    guard.end(run)


async def test_lifecycle_durable_without_a_guard_does_not_wait(marker_dir: Path) -> None:
    from restart_guard import Settings
    from restart_guard._lifecycle import Lifecycle

    life = Lifecycle("telegram", Settings(marker_dir=marker_dir))
    assert await life.durable() is True
    assert life.durable_blocking() is True
