"""Guard and its group-commit writer against a real DirectoryStore."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from restart_guard import DirectoryStore, Guard, Marker, Origin, Phase, Settings
from restart_guard.testing.wait import eventually

from .conftest import FlakyStore, claim_fresh, conv, journals, leave_markers, marker, stored

MakeGuard = Callable[..., Guard]


def durable(guard: Guard, *keys: str) -> Callable[[], bool]:
    return lambda: set(keys) <= set(stored(guard.store))


def gone(guard: Guard, *keys: str) -> Callable[[], bool]:
    return lambda: not set(keys) & set(stored(guard.store))


def settle(guard: Guard) -> None:
    """Wait for the background writer to finish what it has (flush waits for its batch)."""
    eventually(lambda: guard.writer.pending == 0, what="writer idle")
    assert guard.flush()


# ------------------------------------------------------------------ write-ahead
def test_begin_makes_the_marker_durable_shortly_after(make_guard: MakeGuard) -> None:
    guard = make_guard()
    c = conv(1, thread="7")
    run = guard.begin(c)
    eventually(durable(guard, c.key), what="write-ahead marker")
    [seen] = guard.store.load()
    assert seen.held
    assert seen.marker.conversation == c
    assert seen.marker.phase is Phase.IN_FLIGHT
    assert seen.marker.owner == guard.owner
    assert guard.in_flight == 1
    guard.end(run)


def test_begin_and_end_between_two_batches_write_nothing(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir))
    store.gate = threading.Event()
    guard = make_guard(store=store)
    a, b = conv(1), conv(2)
    run_a = guard.begin(a)
    assert store.entered.wait(2)  # the writer is inside the batch for a, held at the gate
    run_b = guard.begin(b)
    guard.end(run_b)  # b starts and ends before the writer's next batch
    store.gate.set()
    eventually(durable(guard, a.key))
    settle(guard)
    touched = {key for puts, removes in store.commits for key in (*puts, *removes)}
    assert touched == {a.key}
    [name] = journals(marker_dir)
    assert (marker_dir / name).read_bytes().count(b"\n") == 1  # a's put, nothing for b
    guard.end(run_a)


def test_end_of_the_last_run_removes_the_marker(make_guard: MakeGuard) -> None:
    guard = make_guard()
    c = conv(1)
    run = guard.begin(c)
    eventually(durable(guard, c.key))
    guard.end(run)
    eventually(gone(guard, c.key), what="removal")
    assert guard.in_flight == 0
    assert guard.markers() == []


def test_two_runs_of_one_conversation_keep_it_until_both_end(make_guard: MakeGuard) -> None:
    guard = make_guard()
    c = conv(1)
    first, second = guard.begin(c), guard.begin(c)
    assert first.entry is second.entry
    eventually(durable(guard, c.key))
    guard.end(first)
    settle(guard)
    assert c.key in stored(guard.store)
    assert [m.key for m in guard.markers()] == [c.key]
    guard.end(second)
    eventually(gone(guard, c.key))


def test_many_threads_begin_and_end_leave_nothing(make_guard: MakeGuard, marker_dir: Path) -> None:
    guard = make_guard()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                run = guard.begin(conv((n * 7 + i) % 40))
                guard.end(run)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert guard.in_flight == 0
    settle(guard)
    assert stored(guard.store) == {}
    guard.close()
    assert list(marker_dir.iterdir()) == []


# ------------------------------------------------------------------ shutdown
def test_pre_mark_marks_everything_draining_in_one_batch(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir))
    guard = make_guard(store=store)
    convs = [conv(n) for n in range(50)]
    runs = [guard.begin(c) for c in convs]
    eventually(durable(guard, *(c.key for c in convs)))
    settle(guard)
    before = guard.writer.batches
    commits_before = len(store.commits)

    assert guard.pre_mark() is True

    assert guard.writer.batches == before + 1
    assert len(store.commits) == commits_before + 1
    puts, removes = store.commits[-1]
    # Every marker is on disk already: the batch is the one "draining" record.
    assert (puts, removes, store.drains[-1]) == ([], [], True)
    on_disk = stored(store.inner)
    assert {m.phase for m in on_disk.values()} == {Phase.DRAINING}
    assert guard.stopping
    assert guard.pre_mark() is True  # once is enough: no second batch
    assert guard.writer.batches == before + 1

    late = conv(99)
    late_run = guard.begin(late)  # a queued update that starts during the drain
    eventually(durable(guard, late.key))
    assert stored(store.inner)[late.key].phase is Phase.DRAINING
    for run in [*runs, late_run]:
        guard.end(run)


def test_runs_ending_during_the_drain_are_cleared(make_guard: MakeGuard, marker_dir: Path) -> None:
    guard = make_guard()
    a, b = conv(1), conv(2)
    run_a, run_b = guard.begin(a), guard.begin(b)
    guard.pre_mark()
    guard.end(run_a)
    guard.end(run_b)
    settle(guard)
    assert stored(guard.store) == {}
    guard.close()
    assert list(marker_dir.iterdir()) == []


def test_after_seal_ending_runs_keeps_their_markers(
    make_guard: MakeGuard, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard = make_guard(Settings(drain_timeout=3))
    a, b = conv(1), conv(2, thread="9")
    run_a, run_b = guard.begin(a), guard.begin(b)
    guard.pre_mark()
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        guard.seal()
    assert "drain timed out after 3.0s; 2 conversation(s) stay marked" in caplog.text
    guard.end(run_a)
    guard.end(run_b, completed=False)
    settle(guard)
    assert set(stored(guard.store)) == {a.key, b.key}
    guard.close()
    assert set(claim_fresh(marker_dir)) == {a.key, b.key}


def test_end_not_completed_keeps_the_marker(make_guard: MakeGuard, marker_dir: Path) -> None:
    guard = make_guard()
    c = conv(1)
    run = guard.begin(c)
    guard.end(run, completed=False)  # cut off by shutdown
    settle(guard)
    assert c.key in stored(guard.store)
    assert [m.key for m in guard.markers()] == [c.key]
    guard.close()
    assert list(claim_fresh(marker_dir)) == [c.key]


def test_close_after_everything_ended_leaves_an_empty_directory(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    guard = make_guard()
    runs = [guard.begin(conv(n)) for n in range(5)]
    eventually(durable(guard, *(conv(n).key for n in range(5))))
    assert len(journals(marker_dir)) == 1
    for run in runs:
        guard.end(run)
    guard.close()
    assert list(marker_dir.iterdir()) == []
    guard.close()  # idempotent


def test_close_with_runs_in_flight_keeps_them_for_the_next_start(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    guard = make_guard()
    c = conv(1)
    guard.begin(c)
    guard.close()  # no pre_mark, no drain: the pending write-ahead is still flushed
    assert list(claim_fresh(marker_dir)) == [c.key]


# ------------------------------------------------------------------ claimed markers
def test_claimed_markers_are_held_and_a_later_run_joins_them(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    old = marker(1, attempts=2, phase=Phase.DRAINING)
    leave_markers(marker_dir, [old])
    guard = make_guard(start=False)
    [claimed] = guard.start()
    assert claimed.key == old.key
    assert claimed.attempts == 2
    held = guard.hold(claimed)
    assert guard.in_flight == 0  # a resumption is not a handler run
    handler = guard.begin(old.conversation)  # the user writes again while resuming
    assert handler.entry is held.entry
    [now] = guard.markers()
    assert (now.attempts, now.phase) == (2, Phase.RESUMING)
    assert guard.count_attempt(held) == 3
    guard.end(held)
    settle(guard)
    assert stored(guard.store)[old.key].attempts == 3
    guard.end(handler)
    eventually(gone(guard, old.key), what="removal of the resumed marker")
    guard.close()
    assert list(marker_dir.iterdir()) == []


def test_start_twice_claims_once(make_guard: MakeGuard, marker_dir: Path) -> None:
    leave_markers(marker_dir, [marker(1)])
    guard = make_guard(start=False)
    assert len(guard.start()) == 1
    assert guard.start() == []


# ------------------------------------------------------------------ idleness
def test_wait_idle_blocking(make_guard: MakeGuard) -> None:
    guard = make_guard()
    assert guard.wait_idle_blocking(0.01) is True
    run = guard.begin(conv(1))
    assert guard.wait_idle_blocking(0.05) is False
    timer = threading.Timer(0.05, guard.end, [run])
    timer.start()
    assert guard.wait_idle_blocking(2) is True
    timer.join()


async def test_wait_idle_async(make_guard: MakeGuard) -> None:
    guard = make_guard()
    assert await guard.wait_idle(0.01) is True
    run = guard.begin(conv(1))
    assert await guard.wait_idle(0.05) is False
    asyncio.get_running_loop().call_later(0.05, guard.end, run)
    assert await guard.wait_idle(2) is True
    # Ended from another thread (Slack's sync listeners run in a pool).
    run = guard.begin(conv(2))
    timer = threading.Timer(0.05, guard.end, [run])
    timer.start()
    assert await guard.wait_idle(2) is True
    timer.join()


async def test_held_resumptions_do_not_count_as_busy(make_guard: MakeGuard) -> None:
    guard = make_guard()
    guard.hold(marker(1))
    assert guard.in_flight == 0
    assert await guard.wait_idle(0.01) is True


# ------------------------------------------------------------------ replay payloads
def test_payload_is_not_stored_without_replay(make_guard: MakeGuard, marker_dir: Path) -> None:
    guard = make_guard(Settings(replay=False))
    c = conv(1)
    run = guard.begin(c, {"message": {"text": "my secret words"}})
    eventually(durable(guard, c.key))
    assert stored(guard.store)[c.key].payload is None
    [name] = journals(marker_dir)
    assert b"secret" not in (marker_dir / name).read_bytes()
    guard.end(run, completed=False)


def test_payloads_are_stored_with_replay(make_guard: MakeGuard) -> None:
    guard = make_guard(Settings(replay=True))
    c = conv(1)
    first = guard.begin(c, {"update_id": 1, "message": {"text": "one"}})
    twin = guard.begin(c, {"update_id": 1, "message": {"text": "one"}})
    second = guard.begin(c, {"update_id": 2, "message": {"text": "two"}})
    eventually(lambda: len(stored(guard.store).get(c.key, marker()).payload or []) == 2)
    payload = stored(guard.store)[c.key].payload
    assert payload == [
        {"update_id": 1, "message": {"text": "one"}},
        {"update_id": 2, "message": {"text": "two"}},
    ]
    guard.end(second)  # its update is done: no longer stored
    eventually(lambda: (stored(guard.store)[c.key].payload or []) == payload[:1])
    guard.end(first)
    guard.end(twin)
    eventually(gone(guard, c.key))


# ------------------------------------------------------------------ origins
def test_origins_are_recorded_per_run_without_replay_and_dropped_when_it_ends(
    make_guard: MakeGuard,
) -> None:
    guard = make_guard(Settings(replay=False))
    c = conv(1)
    first = guard.begin(c, None, Origin(delivery="1", message="10", user="7"))
    second = guard.begin(c, None, Origin(delivery="2", message="11", user="8"))
    eventually(lambda: len(stored(guard.store).get(c.key, marker()).origins) == 2)
    assert [o.user for o in stored(guard.store)[c.key].origins] == ["7", "8"]
    guard.end(first)  # its turn is done: no longer the notice's business
    eventually(lambda: [o.user for o in stored(guard.store)[c.key].origins] == ["8"])
    guard.end(second)
    eventually(gone(guard, c.key))


def test_hold_keeps_the_claimed_markers_origins(make_guard: MakeGuard, marker_dir: Path) -> None:
    origins = (Origin(message="10", user="7", replayable=False),)
    leave_markers(marker_dir, [marker(1).with_changes(origins=origins)])
    guard = make_guard(start=False)
    [claimed] = guard.start()
    held = guard.hold(claimed)
    handler = guard.begin(claimed.conversation, None, Origin(message="11", user="8"))
    [now] = guard.markers()
    assert now.origins == (*origins, Origin(message="11", user="8"))
    guard.end(handler)
    [now] = guard.markers()
    assert now.origins == origins
    guard.end(held)
    guard.close()


def test_an_unencodable_payload_does_not_block_other_markers(make_guard: MakeGuard) -> None:
    guard = make_guard(Settings(replay=True))
    poisoned, healthy = conv(1), conv(2)
    guard.begin(poisoned, {"message": {"text": "cut emoji \ud83d"}})
    guard.begin(healthy)
    eventually(durable(guard, healthy.key), what="the healthy conversation's marker")


# ------------------------------------------------------------------ failing store
def test_full_disk_keeps_keys_retries_and_never_raises(
    make_guard: MakeGuard, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir), fail_commits=3)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        guard = make_guard(store=store)
        c = conv(1)
        run = guard.begin(c)  # must not raise, must not block
        eventually(lambda: c.key in stored(store.inner), timeout=5, what="write after ENOSPC")
        assert store.failures == 3
        guard.end(run)
        eventually(lambda: c.key not in stored(store.inner))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # one error line, not one per retry
    assert "No space left on device" in errors[0].getMessage()
    assert "retrying" in errors[0].getMessage()
    assert "writable again" in caplog.text


def test_pre_mark_on_a_failing_store_returns_false_and_recovers(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir), fail_commits=10**6)
    guard = make_guard(store=store)
    c = conv(1)
    run = guard.begin(c)
    eventually(lambda: store.failures >= 1)
    assert guard.pre_mark() is False  # logged, not raised: the drain still runs
    store.fail_commits = 0
    eventually(lambda: c.key in stored(store.inner), timeout=5, what="recovery")
    assert stored(store.inner)[c.key].phase is Phase.DRAINING
    guard.end(run)


def test_failed_pre_mark_is_retried_by_the_background_writer(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    store = FlakyStore(DirectoryStore(marker_dir))
    guard = make_guard(store=store)
    c = conv(1)
    run = guard.begin(c)
    eventually(durable(guard, c.key))
    settle(guard)  # the background writer is idle now
    store.fail_commits = 1  # one transient failure, hitting pre_mark's own batch
    assert guard.pre_mark() is False
    try:
        eventually(
            lambda: stored(store.inner)[c.key].phase is Phase.DRAINING,
            what="the background writer to retry the failed pre-drain batch",
        )
    finally:
        guard.end(run)


SOON_AFTER_BOOT = textwrap.dedent(
    """
    import errno, logging, sys, time
    logging.basicConfig(level=logging.ERROR, format="%(message)s", stream=sys.stdout)
    from restart_guard import Conversation, Guard, Settings

    class FullDisk:
        def open(self, owner): pass
        def claim(self): return []
        def load(self): return []
        def close(self): pass
        def commit(self, puts, removes):
            raise OSError(errno.ENOSPC, "No space left on device")

    guard = Guard("telegram", FullDisk(), Settings())
    guard.start()
    guard.begin(Conversation("telegram", "1"))
    sys.stdout.write(f"monotonic {round(time.monotonic())}\\n")  # one write: the writer logs too
    guard.flush()  # fails: the error line is logged on this thread, now
    """
)


def _time_namespace_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        [unshare, "--fork", "--time", "--monotonic=-1", "true"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _time_namespace_works(), reason="needs root and time namespaces")
def test_store_failure_is_logged_even_right_after_boot() -> None:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    # A time namespace whose monotonic clock reads ~5 s: the machine "just booted".
    namespace = ["unshare", "--fork", "--time", f"--monotonic=-{int(uptime) - 5}"]
    result = subprocess.run(
        [*namespace, sys.executable, "-c", SOON_AFTER_BOOT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [clock] = [line for line in result.stdout.splitlines() if line.startswith("monotonic ")]
    assert int(clock.split()[1]) < 30, clock
    assert "could not write 1 marker(s)" in result.stdout


def test_unopenable_store_at_start_never_raises(
    tmp_path: Path, make_guard: MakeGuard, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "afile").write_text("")
    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        guard = make_guard(store=DirectoryStore(tmp_path / "afile" / "x"), start=False)
        assert guard.start() == []
        run = guard.begin(conv(1))
        guard.end(run, completed=False)
        assert guard.pre_mark() is False
    assert "unavailable at start-up" in caplog.text
    assert "afile" in caplog.text


def test_markers_reports_what_this_process_holds(make_guard: MakeGuard) -> None:
    guard = make_guard()
    c = conv(1, thread="3")
    run = guard.begin(c)
    [m] = guard.markers()
    assert isinstance(m, Marker)
    assert (m.conversation, m.phase, m.owner, m.attempts) == (c, Phase.IN_FLIGHT, guard.owner, 0)
    assert "in_flight=1" in repr(guard)
    guard.end(run)
