"""What the benchmarks share: fsync counting, scratch directories, result tables.

Imported as a sibling module (``import _common``): each benchmark runs as
``python bench/bench_X.py``, which puts this directory on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
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
