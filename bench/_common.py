"""What the benchmarks share: fsync counting, scratch directories, result tables.

The framework benchmarks (``bench_discord.py``, ``bench_slack.py``) also share
the whole measurement: :func:`measure_overhead` times a guarded and an
unguarded handler alternately, :func:`print_report` prints the run, and
:func:`overhead_main` is their command line.

Imported as a sibling module (``import _common``): each benchmark runs as
``python bench/bench_X.py``, which puts this directory on ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class FsyncCounter:
    """Counts os.fsync/os.fdatasync calls made on this thread vs. on other threads.

    Installed only around a measured loop: the store calls ``os.fsync`` /
    ``os.fdatasync`` through the ``os`` module, so the wrappers see every call.
    """

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.here = 0
        self.elsewhere = 0
        self._saved: tuple[Any, Any] | None = None

    def _wrap(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def counted(fd: int) -> None:
            if threading.get_ident() == self.thread:
                self.here += 1
            else:
                self.elsewhere += 1
            real(fd)

        return counted

    def __enter__(self) -> FsyncCounter:
        self._saved = (os.fsync, os.fdatasync)
        os.fsync = self._wrap(os.fsync)  # type: ignore[assignment]
        os.fdatasync = self._wrap(os.fdatasync)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        os.fsync, os.fdatasync = self._saved


@contextmanager
def scratch_dir(base: Path | None, prefix: str = "rg-bench-") -> Iterator[Path]:
    """A fresh directory under ``base`` (the temp directory if None), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns, with a rule between."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    print("  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# ------------------------------------- a framework's guarded vs. unguarded handler runs
REPS = 41  # timed repetitions per row (odd: the median is one of them)
RUNS = 500  # handler runs per repetition and handler
WARM = 500  # untimed runs of each handler first (also fills the framework's caches)


class DiscardingStore:
    """A Store that keeps nothing: isolates the handler's path from the writer's work."""

    def open(self, owner: str) -> None:
        pass

    def commit(self, puts: Any, removes: Any, *, draining: bool = False) -> None:
        pass

    def claim(self) -> list[Any]:
        return []

    def load(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


Timing = tuple[float, float]  # (wall-clock, this thread's CPU) seconds per handler run


class Stopwatch:
    """Started when made: wall-clock and this thread's CPU time, read per handler run."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def per_run(self, runs: int) -> Timing:
        """The time since this was made, divided over ``runs`` handler runs."""
        return (time.perf_counter() - self.wall) / runs, (time.thread_time() - self.cpu) / runs


@dataclass
class Result:
    what: str
    guarded: float  # median wall-clock seconds per handler run
    unguarded: float
    overhead: float  # median of (guarded - unguarded), wall-clock
    cpu_overhead: float  # the same in the handler thread's CPU time
    fsync_here: int
    fsync_writer: int
    batches: int


def summarise(
    what: str, pairs: list[tuple[Timing, Timing]], counter: FsyncCounter, batches: int
) -> Result:
    """The medians of (guarded, unguarded) timing pairs, with the fsync counts."""
    return Result(
        what=what,
        guarded=statistics.median(g[0] for g, _ in pairs),
        unguarded=statistics.median(u[0] for _, u in pairs),
        overhead=statistics.median(g[0] - u[0] for g, u in pairs),
        cpu_overhead=statistics.median(g[1] - u[1] for g, u in pairs),
        fsync_here=counter.here,
        fsync_writer=counter.elsewhere,
        batches=batches,
    )


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def print_overhead_table(
    results: Sequence[Result], target: float, *, run: str, cpu: str, fsync: str
) -> None:
    """One row per result; ``run``, ``cpu`` and ``fsync`` name the framework's columns."""
    header = (run, "unguarded baseline", "guarded", "overhead (median)", "target", cpu, fsync)
    rows = []
    for r in results:
        verdict = "✓" if r.overhead <= target else "✗ MISSED"
        rows.append(
            (
                r.what,
                us(r.unguarded),
                us(r.guarded),
                f"{us(r.overhead)} {verdict}",
                f"≤ {us(target)}",
                us(r.cpu_overhead),
                f"{r.fsync_here} (writer: {r.fsync_writer} in {r.batches} batches)",
            )
        )
    print_table(header, rows)


RunBatch = Callable[[Any, list[Any]], Awaitable[None]]


async def measure_overhead(
    what: str,
    guard: Any,
    pair: tuple[Any, Any],
    run_batch: RunBatch,
    batch: Callable[[int], list[Any]],
) -> Result:
    """Time ``pair`` (guarded, unguarded) on :data:`REPS` batches; summarise as ``what``.

    ``batch(n)`` makes ``n`` fresh events (each handler warms up on one of
    :data:`WARM` first, then both run each of :data:`RUNS`);
    ``run_batch(handler, events)`` has ``handler`` handle them and returns when
    the last handler run has ended (the time per run is that over ``len(events)``);
    ``guard`` is the guarded handler's ``Guard``. Many short repetitions,
    finely interleaved: a burst of load from elsewhere on the machine then
    spoils a few pairs, which the median ignores. The writer's last flush runs
    inside the fsync counter on a thread of its own, so the handler thread's
    count must stay 0 while the writer's shows the markers reached the disk.
    """

    async def timed(handler: Any, events: list[Any]) -> Timing:
        clock = Stopwatch()
        await run_batch(handler, events)
        return clock.per_run(len(events))

    guarded, plain = pair
    warm = batch(WARM)
    await timed(plain, warm)
    await timed(guarded, warm)
    pairs = []
    batches_before = guard.writer.batches
    with FsyncCounter() as counter:
        for rep in range(REPS):
            events = batch(RUNS)
            gc.collect()
            # Alternate which goes first so neither always runs on a warmer cache.
            if rep % 2:
                g, u = await timed(guarded, events), await timed(plain, events)
            else:
                u, g = await timed(plain, events), await timed(guarded, events)
            pairs.append((g, u))
        await asyncio.get_running_loop().run_in_executor(None, guard.flush)
    assert guard.in_flight == 0
    return summarise(what, pairs, counter, guard.writer.batches - batches_before)


@dataclass(frozen=True)
class Report:
    """What a framework benchmark's report says around its table."""

    title: str  # "discord.py benchmark"
    framework: str  # the framework and its version
    medians: str  # what each median is over
    target: float  # seconds the guard may add to one handler run
    run: str  # the table's first column: what one handler run is
    cpu: str  # the CPU column: on which thread
    fsync: str  # the fsync column: on which thread


def print_report(report: Report, results: Sequence[Result], started: float) -> None:
    """The machine and framework, what the medians are over, the table, the time since
    ``started``."""
    print(
        f"restart-guard {report.title} — nproc {os.cpu_count()}, Python "
        f"{platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, {report.framework}"
    )
    print(f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(report.medians)
    print()
    print_overhead_table(results, report.target, run=report.run, cpu=report.cpu, fsync=report.fsync)
    print()
    print(f"total benchmark time {time.monotonic() - started:.0f} s")


def overhead_main(
    doc: str,
    prefix: str,
    run_all: Callable[[Path], list[Result]],
    report: Report,
    argv: list[str] | None = None,
) -> int:
    """The command line of a framework benchmark: ``--dir``; run, then report."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where the marker directory goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with scratch_dir(args.dir, prefix=prefix) as path:
        results = run_all(path)
    print_report(report, results, started)
    return 0
