"""Benchmark: start-up of a guarded bot with hostile or damaged files in its marker directory.

    python bench/bench_hostile_files.py [--runs 5] [--dir /var/lib/mybot] [--src PATH]

Each trial starts a fresh Python process that builds a ``Guard`` over a
``DirectoryStore`` and times ``guard.start()`` (open the directory, create
and lock its journal, claim what dead processes left), then re-claims once,
as a running bot does every 30 s. The process reports its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, interpreter and imports
included) and how many WARNING/ERROR lines restart-guard logged at start and
at the re-claim. The directory is rebuilt before every trial.

Rows:

- clean directory (the baseline): one dead process's journal of 100 markers;
- that, plus a 1 GiB sparse junk ``journal-*.log`` (issue 9: 11–12.5 s and
  3.2 GB peak RSS before; target < 1 s and < 100 MB);
- that, plus a 255 MiB junk journal of zeros: under the size limit, so read,
  as a stream with a line limit;
- that, plus 10,000 stray files (issue 9: 10,000 warnings at every claim).

``--src PATH`` runs the trials against another checkout's ``src`` (for a
before/after comparison); a row that exceeds ``--timeout`` seconds is shown
as such. Time and RSS are medians; the ratio is against the clean directory
of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import _common

from restart_guard import Conversation, DirectoryStore, Marker

CHILD = textwrap.dedent(
    """
    import json, logging, resource, sys, time

    counts = {"start": 0, "reclaim": 0}
    phase = "start"

    class Count(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                counts[phase] += 1

    logger = logging.getLogger("restart_guard")
    logger.addHandler(Count())
    logger.setLevel(logging.INFO)
    from restart_guard import DirectoryStore, Guard, Settings

    guard = Guard("telegram", DirectoryStore(sys.argv[1]), Settings())
    began = time.perf_counter()
    claimed = guard.start()
    took = time.perf_counter() - began
    phase = "reclaim"
    guard.claim()
    guard.close()
    print(json.dumps({
        "seconds": took,
        "claimed": len(claimed),
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **counts,
    }))
    """
)


def dead_journal(path: Path, count: int = 100) -> None:
    """A journal of ``count`` markers whose process is gone."""
    store = DirectoryStore(path)
    store.open("dead")
    store.commit([Marker(Conversation("telegram", str(n)), 1.7e9) for n in range(count)], [])
    store.close()


def junk_file(path: Path, size: int) -> None:
    name = path / f"journal-{secrets.token_hex(8)}.log"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.truncate(name, size)  # sparse: zeros that take no disk


def strays(path: Path, count: int = 10_000) -> None:
    for n in range(count):
        os.close(os.open(path / f"stray-{n:05d}.txt", os.O_WRONLY | os.O_CREAT, 0o600))


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "clean directory (baseline)": lambda p: None,
    "+ 1 GiB sparse junk journal": lambda p: junk_file(p, 1 << 30),
    "+ 255 MiB junk journal (under the limit)": lambda p: junk_file(p, 255 << 20),
    "+ 10,000 stray files": strays,
}


def trial(base: Path, setup: Callable[[Path], None], src: str | None, timeout: float) -> dict:
    with _common.scratch_dir(base) as scratch:
        path = scratch / "markers"
        path.mkdir(mode=0o700)
        dead_journal(path)
        setup(path)
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = src
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=True,
            )
        except subprocess.TimeoutExpired:
            return {"timeout": True}
        except subprocess.CalledProcessError as exc:
            return {"failed": exc.stderr.strip().splitlines()[-1:]}
        result: dict = json.loads(done.stdout.splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directories go here")
    parser.add_argument("--src", default=None, help="run the trials against this src/ instead")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for what, setup in SCENARIOS.items():
        print(f"{what} …", file=sys.stderr, flush=True)
        results[what] = [trial(args.dir, setup, args.src, args.timeout) for _ in range(args.runs)]
    base = results["clean directory (baseline)"]
    base_time = statistics.median(r["seconds"] for r in base)
    base_rss = statistics.median(r["rss_kib"] for r in base)
    rows = []
    for what, runs in results.items():
        bad = [r for r in runs if "seconds" not in r]
        if bad:
            rows.append((what, f"{len(bad)}/{len(runs)} timed out or failed: {bad[0]}", "", "", ""))
            continue
        took = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_kib"] for r in runs)
        rows.append(
            (
                what,
                f"{took * 1000:.1f} ms ({took / base_time:.1f}×)",
                f"{rss / 1024:.0f} MiB (+{(rss - base_rss) / 1024:.0f})",
                f"{max(r['start'] for r in runs)} / {max(r['reclaim'] for r in runs)}",
                str(runs[0]["claimed"]),
            )
        )
    print(f"restart-guard start-up with hostile files, median of {args.runs} processes each")
    print(f"src: {args.src or 'this checkout'}; python {sys.version.split()[0]}\n")
    _common.print_table(
        (
            "marker directory",
            "guard.start() (× clean)",
            "peak RSS (+ over clean)",
            "warnings at start / re-claim",
            "claimed",
        ),
        rows,
    )
    print("\ntarget (issue 9): 1 GiB junk journal < 1 s and < 100 MB peak RSS; one warning")


if __name__ == "__main__":
    main()
