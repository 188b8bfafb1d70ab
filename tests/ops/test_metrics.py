"""Observability: log records and ``protect(metrics=...)``, from a real bot and in-process."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

import restart_guard
from core.conftest import FakeLink
from restart_guard import Conversation, DirectoryStore, Guard, Marker, Resumer, Settings
from restart_guard.testing.wait import eventually

from .conftest import FORUM, PRIVATE, TOKENS, Bots, Fleet, folder_of, start_work, wait_for_markers

prometheus_client = pytest.importorskip("prometheus_client")


def metric_lines(log: str) -> list[tuple[str, int]]:
    return [
        (parts[1], int(parts[2]))
        for parts in (line.split() for line in log.splitlines() if line.startswith("METRIC "))
    ]


def total(events: list[tuple[str, int]], name: str) -> int:
    return sum(value for event, value in events if event == name)


@pytest.mark.e2e
def test_a_real_bot_logs_and_counts_every_mark_clear_resume_and_drop(
    fleet: Fleet, bots: Bots, tmp_path: Path
) -> None:
    base = fleet.copy_dead(tmp_path / "state")
    api = bots.api(TOKENS["killed"])
    api.forget_chat(FORUM)  # its notice gets "chat not found": dropped
    env = {"RESTART_GUARD_DIR": str(base)}
    bot = bots.start(TOKENS["killed"], env, "--metrics", "--debug", "--drain-timeout", "0.5")
    log = bot.wait_for_log("start-up recovery done: 1 resumed, 1 dropped (0 given up)")
    assert f"restart-guard: dropped telegram chat {FORUM} thread 7: rejected by Telegram" in log
    assert f"restart-guard: notified telegram chat {PRIVATE}" in log
    start_work(api, 9, "/work 600")
    wait_for_markers(base / folder_of(TOKENS["killed"]), 1)
    log = bot.wait_for_log("METRIC marked 1 telegram")
    # The gauge is sampled after each batch: it counts the handler's run (and, depending
    # on when the sample lands, the update's own run still finishing beside it).
    busy = re.compile(r"^METRIC in_flight [1-9]\d* telegram$", re.MULTILINE)
    log = eventually(lambda: bot.log() if busy.search(bot.log()) else None, what="in_flight > 0")
    assert "restart-guard: marked telegram chat 9 (phase in_flight, attempts 0; batch of 1" in log
    assert f"restart-guard: cleared telegram chat {PRIVATE}: no longer in flight" in log
    events = metric_lines(log)
    assert (total(events, "resumed"), total(events, "dropped"), total(events, "gave_up")) == (
        1,
        1,
        0,
    )
    assert (total(events, "marked"), total(events, "cleared")) == (1, 2)
    # Marks and clears of handler runs are DEBUG only: nothing of the kind at INFO.
    info = [line for line in log.splitlines() if " INFO " in line]
    assert not [line for line in info if "marked telegram chat 9" in line]


def run_async(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def left_behind(path: Path, *markers: Marker) -> None:
    """Markers in a journal whose owner is gone, as a killed process leaves them."""
    store = DirectoryStore(path)
    store.open("dead:1:00")
    store.commit(list(markers), [])
    store.close()  # a journal with live markers stays, unlocked: claimable


def test_prometheus_registry_counters_and_a_lazy_in_flight_gauge(tmp_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    old = Marker(Conversation("telegram", "1"), time.time(), attempts=3)
    left_behind(tmp_path, old, Marker(Conversation("telegram", "2"), time.time() - 10 * 86400))
    guard = Guard("telegram", DirectoryStore(tmp_path), Settings(metrics=registry))
    claimed = guard.start()

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"platform": "telegram"})  # type: ignore[no-any-return]

    async def resume() -> None:
        resumer = Resumer(guard, FakeLink())
        resumer.start(claimed)
        assert await resumer.wait(10)

    run_async(resume())
    guard.flush()
    assert value("restart_guard_gave_up_total") == 1
    assert value("restart_guard_dropped_total") == 1  # older than max_age
    assert value("restart_guard_cleared_total") == 2
    run = guard.begin(Conversation("telegram", "3"))
    assert value("restart_guard_in_flight") == 1  # read when scraped, not on begin()
    guard.flush()
    assert value("restart_guard_marked_total") == 1
    guard.end(run)
    guard.flush()
    assert (value("restart_guard_in_flight"), value("restart_guard_cleared_total")) == (0, 3)
    guard.close()
    # A second guard on the same registry shares the metrics instead of clashing.
    again = Guard("telegram", DirectoryStore(tmp_path), Settings(metrics=registry))
    assert again.metrics is not None
    assert value("restart_guard_cleared_total") == 3
    assert b"restart_guard_marked_total" in prometheus_client.generate_latest(registry)


def test_a_callable_hook_that_fails_never_stops_the_guard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("statsd is down")

    guard = Guard("telegram", DirectoryStore(tmp_path), Settings(metrics=broken))
    guard.start()
    for chat in ("1", "2"):
        run = guard.begin(Conversation("telegram", chat))
        assert guard.flush()
        guard.end(run)
        assert guard.flush()
    guard.close()
    assert caplog.text.count("the metrics hook failed") == 1


def test_metrics_must_be_a_callable_or_a_registry() -> None:
    with pytest.raises(TypeError, match="metrics must be a callable receiving"):
        restart_guard.protect(metrics=42)
