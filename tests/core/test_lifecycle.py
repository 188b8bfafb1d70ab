"""The one start-up/stop sequence every adapter uses (``restart_guard._lifecycle``).

Driven with a real DirectoryStore and the recording link of the resume tests;
the adapters' end-to-end suites run it inside the real frameworks.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from restart_guard import Phase, Settings
from restart_guard._lifecycle import Lifecycle, Stage

from .conftest import conv, leave_markers, marker, stored
from .test_resume import FakeLink


def lifecycle(marker_dir: Path, **options: float) -> Lifecycle:
    return Lifecycle("telegram", Settings(marker_dir=marker_dir, **options))  # type: ignore[arg-type]


async def test_markers_are_durable_before_the_framework_drain_runs(marker_dir: Path) -> None:
    life = lifecycle(marker_dir)
    await life.start("bot", FakeLink())
    assert life.stage is Stage.RUNNING
    run = life.begin(conv(1))
    assert run is not None
    seen: dict[str, Phase] = {}

    async def framework_drain() -> None:
        assert life.guard is not None
        seen.update({k: m.phase for k, m in stored(life.guard.store).items()})
        assert not life.accepting  # intake is off before the drain
        life.end(run)

    assert await life.stop(framework_drain) is True
    assert seen == {conv(1).key: Phase.DRAINING}
    assert life.stage is Stage.STOPPED
    assert life.guard is None
    fresh = lifecycle(marker_dir)
    await fresh.start("bot", FakeLink())
    assert fresh.guard is not None
    assert fresh.guard.markers() == []
    await fresh.stop()


async def test_a_drain_past_drain_timeout_is_cut_and_its_conversation_stays_marked(
    marker_dir: Path,
) -> None:
    life = lifecycle(marker_dir, drain_timeout=0.2)
    await life.start("bot", FakeLink())
    assert life.begin(conv(2)) is not None
    never = asyncio.Event()

    async def stuck_drain() -> None:
        await never.wait()

    assert await life.stop(stuck_drain) is False
    assert life.drained is False
    link = FakeLink()
    again = lifecycle(marker_dir)
    await again.start("bot", link)
    assert [c for c, _ in link.sent] == [conv(2)]  # told on the next start
    await again.stop()


async def test_a_run_cut_off_during_the_stop_keeps_its_marker(marker_dir: Path) -> None:
    life = lifecycle(marker_dir)
    await life.start("bot", FakeLink())
    cancelled = life.begin(conv(3))
    finished = life.begin(conv(4))
    assert cancelled is not None
    assert finished is not None

    async def drain() -> None:
        life.end(cancelled, cut_off=True)  # cancelled by the framework at shutdown
        life.end(finished, cut_off=False)

    assert await life.stop(drain) is True
    link = FakeLink()
    again = lifecycle(marker_dir)
    await again.start("bot", link)
    assert [c for c, _ in link.sent] == [conv(3)]
    await again.stop()


async def test_start_is_idempotent_and_claims_again_after_a_stop(marker_dir: Path) -> None:
    leave_markers(marker_dir, [marker(5)])
    link = FakeLink()
    life = lifecycle(marker_dir)
    await asyncio.gather(life.start("bot", link), life.start("bot", link))
    await life.start("bot", link)
    assert [c for c, _ in link.sent] == [conv(5)]  # one start-up, one notice
    assert await life.stop() is True
    leave_markers(marker_dir, [marker(6)])
    await life.start("bot", link)
    assert life.stage is Stage.RUNNING
    assert [c for c, _ in link.sent] == [conv(5), conv(6)]
    await life.stop()


async def test_concurrent_stops_share_one_drain(marker_dir: Path) -> None:
    life = lifecycle(marker_dir)
    await life.start("bot", FakeLink())
    drains = 0

    async def drain() -> None:
        nonlocal drains
        drains += 1
        await asyncio.sleep(0.01)

    assert await asyncio.gather(life.stop(drain), life.stop(drain)) == [True, True]
    assert drains == 1


def test_the_blocking_form_drains_handler_threads(marker_dir: Path) -> None:
    leave_markers(marker_dir, [marker(7)])
    link = FakeLink()
    life = lifecycle(marker_dir)
    life.start_blocking(lambda: "bot", link)
    assert life.stage is Stage.RUNNING
    assert [c for c, _ in link.sent] == [conv(7)]  # posted from the resume loop thread
    run = life.begin(conv(8))
    assert run is not None
    release = threading.Event()

    def handler() -> None:
        release.wait(30)
        life.end(run)

    worker = threading.Thread(target=handler)
    worker.start()
    threading.Timer(0.05, release.set).start()
    assert life.stop_blocking() is True
    worker.join(30)
    assert life.stage is Stage.STOPPED
    again = lifecycle(marker_dir)
    again.start_blocking("bot", FakeLink())
    assert again.guard is not None
    assert again.guard.markers() == []
    assert again.stop_blocking() is True


async def test_stop_now_ends_the_drain_cancels_what_runs_and_keeps_it_marked(
    marker_dir: Path,
) -> None:
    life = lifecycle(marker_dir, drain_timeout=60)
    await life.start("bot", FakeLink())
    run = life.begin(conv(9))
    assert run is not None
    assert life.stop_now("SIGINT") is False  # no drain running: nothing to cut short
    drain_started = asyncio.Event()
    handler_cancelled = asyncio.Event()

    async def handler() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            handler_cancelled.set()
            life.end(run, cut_off=True)
            raise

    task = asyncio.ensure_future(handler())

    async def stuck_drain() -> None:
        drain_started.set()
        await asyncio.Event().wait()

    stopping = asyncio.ensure_future(life.stop(stuck_drain, handler_tasks=lambda: [task]))
    await drain_started.wait()
    assert life.stop_now("SIGINT") is True
    assert life.stop_now("SIGINT") is False  # once
    assert await asyncio.wait_for(stopping, 5) is False
    assert handler_cancelled.is_set()
    assert task.cancelled()
    assert life.stage is Stage.STOPPED
    assert life.cut_short == "SIGINT"
    link = FakeLink()
    again = lifecycle(marker_dir)
    await again.start("bot", link)
    assert [c for c, _ in link.sent] == [conv(9)]
    await again.stop()


def test_stop_now_ends_the_blocking_drain(marker_dir: Path) -> None:
    life = lifecycle(marker_dir, drain_timeout=60)
    life.start_blocking("bot", FakeLink())
    run = life.begin(conv(10))
    assert run is not None
    life.pre_mark()
    threading.Timer(0.05, life.stop_now, args=("SIGTERM",)).start()
    assert life.stop_blocking() is False  # not the 60 s drain
    life.end(run)  # the handler thread ends later: the marker stays (sealed)
    link = FakeLink()
    again = lifecycle(marker_dir)
    again.start_blocking("bot", link)
    assert [c for c, _ in link.sent] == [conv(10)]
    again.stop_blocking()


async def test_a_stop_before_the_store_is_open_makes_start_open_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No marker_dir: the folder is named after the identity, so start() asks for it.
    monkeypatch.setenv("RESTART_GUARD_DIR", str(tmp_path))
    life = Lifecycle("telegram", Settings())
    link = FakeLink()
    asked = asyncio.Event()

    async def identity() -> str:  # a request in flight (Slack's auth.test) when the stop comes
        asked.set()
        await asyncio.sleep(0.05)
        return "bot"

    starting = asyncio.ensure_future(life.start(identity, link))
    await asked.wait()
    life.pre_mark()
    await starting
    assert life.guard is None
    assert life.stage is Stage.STOPPED
    assert not os.listdir(tmp_path)  # no store opened, nothing claimed
    assert await life.stop() is True
