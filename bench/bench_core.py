"""Benchmark of the core against the issue's performance targets.

Run ``python bench/bench_core.py`` (``--dir PATH`` to measure another disk).
It prints one table: each row is a median over repetitions, the target from
issue 2, a naive baseline measured in the same run (one atomic file rewrite
per conversation: temp file, fsync, rename, directory fsync) and the ratio
baseline ÷ guard. See bench/README.md for how to read it.

This is a benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import FsyncCounter, print_table, scratch_dir

from restart_guard import Conversation, DirectoryStore, Guard, Marker, Phase, Settings

N_CONVERSATIONS = 10_000
REPS = 9  # repetitions of the fast measurements (odd: the median is one of them)
NAIVE_REPS = 3  # the naive baselines take seconds each
NAIVE_RUNS = 500  # handler runs per repetition of the naive per-run baseline
UPDATES = 5_000  # python-telegram-bot updates per repetition


# ---------------------------------------------------------------------- helpers
def conversations(n: int, offset: int = 0) -> list[Conversation]:
    return [Conversation("telegram", str(-1_001_000_000_000 - offset - i)) for i in range(n)]


def wait_flushed(guard: Guard) -> None:
    """Until the background writer has committed everything it was given."""
    deadline = time.monotonic() + 30
    while guard.writer.pending:
        if time.monotonic() > deadline:
            raise RuntimeError("writer did not catch up")
        time.sleep(0.001)
    guard.flush()  # waits for a batch in progress


def journal_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("journal-*.log"))


def write_and_sync(path: Path, size: int) -> float:
    """Seconds for one write of ``size`` bytes + fdatasync: the disk's share of a batch."""
    scratch = path / "disk-share.bin"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        data = b"x" * size
        started = time.perf_counter()
        os.write(fd, data)
        os.fdatasync(fd)
        return time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(scratch)


# ------------------------------------------------------ the naive baseline's file I/O
def naive_atomic_write(directory: Path, name: str, data: bytes) -> None:
    """One marker per file, replaced atomically and durably (what most bots would write)."""
    temp = directory / f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / name)
    naive_fsync_dir(directory)


def naive_remove(directory: Path, name: str) -> None:
    os.unlink(directory / name)
    naive_fsync_dir(directory)


def naive_fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def marker_bytes(m: Marker) -> bytes:
    return json.dumps(m.to_json(), separators=(",", ":")).encode()


# ---------------------------------------------------------------------- results
@dataclass
class Row:
    what: str
    guard: float
    guard_note: str
    target: float
    baseline: float | None
    baseline_note: str
    unit: str  # "s", "B"
    notes: list[str] = field(default_factory=list)


def fmt(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 1024:.2f} KB" if value >= 1024 else f"{value:.0f} B"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    if value >= 1e-6:
        return f"{value * 1e6:.1f} µs"
    return f"{value * 1e9:.0f} ns"


# --------------------------------------------------------- 1. pre-drain marking
def bench_pre_mark(base: Path) -> Row:
    times, disk, written = [], [], []
    for rep in range(REPS):
        with scratch_dir(base) as path:
            guard = Guard("telegram", DirectoryStore(path), Settings())
            guard.start()
            runs = [guard.begin(c) for c in conversations(N_CONVERSATIONS, rep)]
            wait_flushed(guard)  # the write-ahead batches are done: time pre_mark alone
            batches = guard.writer.batches
            size = journal_bytes(path)
            started = time.perf_counter()
            ok = guard.pre_mark()
            times.append(time.perf_counter() - started)
            assert ok
            assert guard.writer.batches == batches + 1
            written.append(journal_bytes(path) - size)
            disk.append(write_and_sync(path, written[-1]))
            on_disk = guard.store.load()
            assert len(on_disk) == N_CONVERSATIONS
            assert {s.marker.phase for s in on_disk} == {Phase.DRAINING}
            del runs  # still "in flight": close() leaves them marked, the dir is removed
            guard.close()
    naive = []
    for rep in range(NAIVE_REPS):
        with scratch_dir(base) as path:
            markers = [
                Marker(c, time.time(), Phase.DRAINING, owner="naive")
                for c in conversations(N_CONVERSATIONS, rep)
            ]
            started = time.perf_counter()
            for m in markers:
                naive_atomic_write(path, f"{m.key}.json", marker_bytes(m))
            naive.append(time.perf_counter() - started)
    return Row(
        f"1. pre-drain marking of {N_CONVERSATIONS:,} in-flight conversations",
        statistics.median(times),
        f"{REPS} reps",
        0.020,
        statistics.median(naive),
        f"{NAIVE_REPS} reps",
        "s",
        [
            f"1. of which disk: pre_mark appended {statistics.median(written):,.0f} bytes; one "
            f"write + fdatasync of that size takes {fmt(statistics.median(disk), 's')} here; "
            "the rest is Python: only markers not yet written ahead are encoded"
        ],
    )


def bench_pre_mark_unwritten(base: Path) -> Row:
    """Worst case: a burst of starts that the write-ahead has not written yet."""
    times = []
    for rep in range(REPS):
        with scratch_dir(base) as path:
            guard = Guard("telegram", DirectoryStore(path), Settings())
            # The store is open but the writer thread is not started: all 10,000 stay dirty.
            guard.store.open(guard.owner)
            runs = [guard.begin(c) for c in conversations(N_CONVERSATIONS, rep)]
            assert guard.writer.pending == N_CONVERSATIONS
            started = time.perf_counter()
            ok = guard.pre_mark()
            times.append(time.perf_counter() - started)
            assert ok
            assert len(guard.store.load()) == N_CONVERSATIONS
            del runs
            guard.store.close()
    return Row(
        f"1b. the same, worst case: none of the {N_CONVERSATIONS:,} written ahead yet",
        statistics.median(times),
        f"{REPS} reps",
        0.020,
        None,
        "",
        "s",
        [
            "1b. the write-ahead normally leaves only the last few starts unwritten, so "
            "row 1 is the usual cost and 1b the bound for a burst just before SIGTERM"
        ],
    )


class _TimedStore:
    """Wraps a store and notes when each commit became durable (benchmark only)."""

    def __init__(self, inner: DirectoryStore) -> None:
        self.inner = inner
        self.done = threading.Event()
        self.at = 0.0

    def open(self, owner: str) -> None:
        self.inner.open(owner)

    def commit(self, puts: Any, removes: Any, *, draining: bool = False) -> None:
        self.inner.commit(puts, removes, draining=draining)
        self.at = time.perf_counter()
        self.done.set()

    def claim(self) -> list[Marker]:
        return self.inner.claim()

    def load(self) -> Any:
        return self.inner.load()

    def close(self) -> None:
        self.inner.close()


def bench_write_ahead_latency(base: Path) -> Row:
    """From a handler's begin() to its marker being durable, one start at a time."""
    samples = []
    naive = []
    with scratch_dir(base) as path:
        store = _TimedStore(DirectoryStore(path))
        guard = Guard("telegram", store, Settings())  # type: ignore[arg-type]
        guard.start()
        for c in conversations(200):
            store.done.clear()
            started = time.perf_counter()
            run = guard.begin(c)
            store.done.wait(5)
            samples.append(store.at - started)
            guard.end(run)
            wait_flushed(guard)
        guard.close()
        for c in conversations(50):
            m = Marker(c, time.time(), owner="naive")
            started = time.perf_counter()
            naive_atomic_write(path, f"{m.key}.json", marker_bytes(m))
            naive.append(time.perf_counter() - started)
    return Row(
        "2c. write-ahead: handler start → its marker durable",
        statistics.median(samples),
        f"200 starts, p99 {fmt(sorted(samples)[197], 's')}",
        0.050,
        statistics.median(naive),
        "50 writes, synchronous in the handler",
        "s",
        [],
    )


# ------------------------------------------------- 2a. per-run overhead, in-process
@dataclass
class Overhead:
    row: Row
    unguarded: float
    fsyncs_here: int
    fsyncs_writer: int


def bench_overhead_in_process(base: Path) -> Overhead:
    convs = conversations(N_CONVERSATIONS)
    guarded, unguarded = [], []
    fsyncs_here = fsyncs_writer = 0
    with scratch_dir(base) as path:
        guard = Guard("telegram", DirectoryStore(path), Settings())
        guard.start()
        for _ in range(REPS):
            # The reference: the same loop, nothing guarded.
            started = time.perf_counter()
            for c in convs:
                noop = c
                del noop
            unguarded.append((time.perf_counter() - started) / len(convs))

            with FsyncCounter() as counter:
                started = time.perf_counter()
                for c in convs:
                    run = guard.begin(c)
                    guard.end(run)
                elapsed = time.perf_counter() - started
                wait_flushed(guard)  # let the writer's fsyncs of this loop be counted
            guarded.append(elapsed / len(convs))
            fsyncs_here += counter.here
            fsyncs_writer += counter.elsewhere
        guard.close()
    added = [g - u for g, u in zip(guarded, unguarded, strict=True)]

    # Naive: write the marker file when the handler starts, remove it when it ends,
    # on the handler's own path.
    naive = []
    with scratch_dir(base) as path:
        for rep in range(NAIVE_REPS):
            sample = conversations(NAIVE_RUNS, rep)
            started = time.perf_counter()
            for c in sample:
                name = f"{c.key}.json"
                naive_atomic_write(path, name, marker_bytes(Marker(c, time.time())))
                naive_remove(path, name)
            naive.append((time.perf_counter() - started) / NAIVE_RUNS)
    return Overhead(
        Row(
            "2a. overhead per handler run, in-process: begin()+end()",
            statistics.median(added),
            f"{REPS}×{len(convs):,} runs",
            25e-6,
            statistics.median(naive) - statistics.median(unguarded),
            f"{NAIVE_REPS}×{NAIVE_RUNS} runs",
            "s",
        ),
        statistics.median(unguarded),
        fsyncs_here,
        fsyncs_writer,
    )


# --------------------------------------- 2b. per-update overhead, python-telegram-bot
def bench_overhead_telegram(base: Path) -> Overhead | str:
    try:
        from telegram import Update
        from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

        import restart_guard
        from restart_guard.testing.telegram import TelegramStandIn
    except ImportError as exc:
        return f"skipped: {exc} (pip install 'restart-guard[telegram,testing]')"

    handled = 0

    async def trivial(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal handled
        handled += 1

    naive_dir: Path | None = None

    async def naive_trivial(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # What a hand-rolled guard would do: a durable marker file around the handler.
        assert naive_dir is not None
        assert update.effective_chat is not None
        name = f"{update.effective_chat.id}.json"
        naive_atomic_write(naive_dir, name, b'{"in_flight": true}')
        try:
            await trivial(update, context)
        finally:
            naive_remove(naive_dir, name)

    def raw_update(i: int) -> dict[str, Any]:
        chat = -1_001_000_000_000 - (i % 1000)
        return {
            "update_id": 1000 + i,
            "message": {
                "message_id": i + 1,
                "date": 1_700_000_000,
                "chat": {"id": chat, "type": "supergroup", "title": "bench"},
                "from": {"id": 7, "is_bot": False, "first_name": "U"},
                "text": "hello",
            },
        }

    async def timed(app: Any, updates: Sequence[Any]) -> float:
        started = time.perf_counter()
        for update in updates:
            await app.process_update(update)
        return (time.perf_counter() - started) / len(updates)

    async def main() -> Overhead:
        nonlocal naive_dir
        async with TelegramStandIn() as api:
            with scratch_dir(base) as path:
                plain = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
                plain.add_handler(MessageHandler(filters.TEXT, trivial))
                guarded = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
                guarded.add_handler(MessageHandler(filters.TEXT, trivial))
                restart_guard.protect(marker_dir=path / "markers")(guarded)
                naive = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
                naive.add_handler(MessageHandler(filters.TEXT, naive_trivial))
                naive_dir = path / "naive"
                naive_dir.mkdir()
                async with plain, guarded, naive:
                    updates = [Update.de_json(raw_update(i), plain.bot) for i in range(UPDATES)]
                    await timed(plain, updates[:500])  # warm-up both paths
                    await timed(guarded, updates[:500])
                    plain_times, guarded_times = [], []
                    fsyncs_here = fsyncs_writer = 0
                    for _ in range(REPS):  # interleaved, so drift hits both alike
                        plain_times.append(await timed(plain, updates))
                        with FsyncCounter() as counter:
                            guarded_times.append(await timed(guarded, updates))
                            await asyncio.get_running_loop().run_in_executor(
                                None, guarded_guard_flush, guarded
                            )
                        fsyncs_here += counter.here
                        fsyncs_writer += counter.elsewhere
                    naive_times = [
                        await timed(naive, updates[rep * 300 : (rep + 1) * 300])
                        for rep in range(NAIVE_REPS)
                    ]
                assert handled == 2 * REPS * UPDATES + 2 * 500 + NAIVE_REPS * 300
                added = [g - p for g, p in zip(guarded_times, plain_times, strict=True)]
                unguarded = statistics.median(plain_times)
                return Overhead(
                    Row(
                        "2b. overhead per update, python-telegram-bot process_update()",
                        statistics.median(added),
                        f"{REPS}×{UPDATES:,} updates",
                        25e-6,
                        statistics.median(naive_times) - unguarded,
                        f"{NAIVE_REPS}×300 updates",
                        "s",
                    ),
                    unguarded,
                    fsyncs_here,
                    fsyncs_writer,
                )

    return asyncio.run(main())


def guarded_guard_flush(app: Any) -> None:
    """Wait until the guarded application's writer has committed its batches."""
    # The adapter keeps its Lifecycle (and through it the Guard) on the app's class.
    guard = type(app)._restart_guard.lifecycle.guard
    if guard is not None:
        wait_flushed(guard)


# ---------------------------------------------------------- 3. start-up claiming
def bench_claim(base: Path) -> Row:
    times, disk = [], []
    for rep in range(REPS):
        with scratch_dir(base) as path:
            dead = DirectoryStore(path)
            dead.open("dead-process")
            now = time.time()
            dead.commit(
                [
                    Marker(c, now, Phase.DRAINING, owner="dead-process")
                    for c in conversations(N_CONVERSATIONS, rep)
                ],
                [],
            )
            dead.close()  # markers left behind; the lock goes as on SIGKILL
            size = journal_bytes(path)
            started = time.perf_counter()
            store = DirectoryStore(path)
            store.open("next-process")
            claimed = store.claim()
            times.append(time.perf_counter() - started)
            assert len(claimed) == N_CONVERSATIONS
            store.close()
            disk.append(write_and_sync(path, size))
    naive = []
    for rep in range(NAIVE_REPS):
        with scratch_dir(base) as path:
            for c in conversations(N_CONVERSATIONS, rep):  # setup, not timed
                m = Marker(c, time.time(), Phase.DRAINING, owner="dead-process")
                (path / f"{m.key}.json").write_bytes(marker_bytes(m))
            started = time.perf_counter()
            count = 0
            for entry in os.scandir(path):
                record = json.loads(Path(entry.path).read_bytes())
                record.update(owner="next-process", phase="resuming")
                naive_atomic_write(path, entry.name, json.dumps(record).encode())
                count += 1
            naive.append(time.perf_counter() - started)
            assert count == N_CONVERSATIONS
    return Row(
        f"3. start-up: open + claim {N_CONVERSATIONS:,} markers of a dead process",
        statistics.median(times),
        f"{REPS} reps",
        0.200,
        statistics.median(naive),
        f"{NAIVE_REPS} reps",
        "s",
        [
            f"3. of which disk: one write + fdatasync of the claimed batch takes "
            f"{fmt(statistics.median(disk), 's')} here (the dead journal is read from the page "
            "cache); the rest is parsing and validating every record in Python "
            "(records are copied, not re-encoded)"
        ],
    )


# ------------------------------------------------------------------- 4. memory
def measure_memory(build: Callable[[], Any], settle: Callable[[], None]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = build()
        settle()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del held
    return (after - before) / N_CONVERSATIONS


def begin_many(guard: Guard, first_chat: int) -> list[Any]:
    """As an adapter does: a Conversation per update, and a Run held while it runs."""
    return [
        guard.begin(Conversation("telegram", str(first_chat - i))) for i in range(N_CONVERSATIONS)
    ]


def naive_markers(first_chat: int) -> dict[str, dict[str, Any]]:
    """The naive bookkeeping: every in-flight conversation as its marker's JSON dict."""
    now = time.time()
    held: dict[str, dict[str, Any]] = {}
    for i in range(N_CONVERSATIONS):
        c = Conversation("telegram", str(first_chat - i))
        held[c.key] = Marker(c, now, owner="naive").to_json()
    return held


def bench_memory(base: Path) -> Row:
    ours, naive = [], []
    for rep in range(REPS):
        with scratch_dir(base) as path:
            guard = Guard("telegram", DirectoryStore(path), Settings())
            guard.start()
            chats = [str(-1_001_000_000_000 - rep * N_CONVERSATIONS - i) for i in range(20)]
            warm = [guard.begin(Conversation("telegram", c)) for c in chats]  # first-use costs
            wait_flushed(guard)

            # Settled: the writer has committed them, so the store's in-memory mirror
            # of live markers is counted too.
            ours.append(
                measure_memory(
                    functools.partial(begin_many, guard, -1_002_000_000_000 - rep * 20_000),
                    functools.partial(wait_flushed, guard),
                )
            )
            for run in warm:
                guard.end(run)
            guard.close()
        naive.append(
            measure_memory(
                functools.partial(naive_markers, -1_003_000_000_000 - rep * 20_000),
                lambda: None,
            )
        )
    return Row(
        "4. memory per in-flight conversation, no replay payload",
        statistics.median(ours),
        f"{REPS}×{N_CONVERSATIONS:,}",
        2048,
        statistics.median(naive),
        "dict of marker JSON dicts",
        "B",
    )


# ---------------------------------------------------------------------- output
def filesystem_of(path: Path) -> str:
    best, kind = "", "?"
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                mount, fs = fields[1], fields[2]
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, kind = mount, fs
    except OSError:
        pass
    return kind


def print_results(rows: Sequence[Row]) -> None:
    header = ("what", "guard (median)", "target", "naive baseline (median)", "baseline ÷ guard")
    lines = []
    for row in rows:
        ok = "✓" if row.guard <= row.target else "✗ MISSED"
        guard = f"{fmt(row.guard, row.unit)} {ok} ({row.guard_note})"
        target = f"≤ {fmt(row.target, row.unit)}"
        if row.baseline is None:
            baseline, ratio = "—", "—"
        else:
            baseline = f"{fmt(row.baseline, row.unit)} ({row.baseline_note})"
            ratio = f"{row.baseline / row.guard:,.1f}×" if row.guard > 0 else "∞"
        lines.append((row.what, guard, target, baseline, ratio))
    print_table(header, lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to put scratch dirs"
    )
    args = parser.parse_args(argv)
    base: Path = args.dir
    base.mkdir(parents=True, exist_ok=True)
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"restart-guard core benchmark — nproc {nproc}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"scratch directories under {base} ({filesystem_of(base.resolve())}); "
        f"load average at start {load}"
    )
    print(
        "All figures are medians over the repetitions in brackets; the naive baseline "
        "(one atomic file rewrite per conversation) is measured in the same run."
    )
    print()
    started = time.perf_counter()
    steps: list[Callable[[Path], Any]] = [
        bench_pre_mark,
        bench_pre_mark_unwritten,
        bench_write_ahead_latency,
        bench_overhead_in_process,
        bench_overhead_telegram,
        bench_claim,
        bench_memory,
    ]
    results = []
    for step in steps:
        print(f"  measuring {step.__name__.removeprefix('bench_')} …", file=sys.stderr, flush=True)
        results.append(step(base))
    rows: list[Row] = []
    notes: list[str] = []
    for result in results:
        if isinstance(result, Overhead):
            rows.append(result.row)
            notes.append(
                f"{result.row.what.split(':')[0]}: unguarded reference "
                f"{fmt(result.unguarded, 's')} per run; fsync/fdatasync calls on the handler's "
                f"thread during the measured loops: {result.fsyncs_here} "
                f"(writer thread: {result.fsyncs_writer})"
            )
        elif isinstance(result, Row):
            rows.append(result)
            notes.extend(result.notes)
        else:
            notes.append(f"2b. {result}")
    print_results(rows)
    print()
    for note in notes:
        print(note)
    print(
        "2a/2b: 'guard' and 'naive' are the time added to a run over the unguarded reference; "
        "4: both sides counted with tracemalloc (ratio = naive ÷ guard bytes)."
    )
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
