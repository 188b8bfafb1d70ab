"""Benchmark: the Redis store beside the directory store and a naive Redis baseline.

    python bench/bench_redis_store.py [--runs 7] [--markers 10000] [--appendfsync everysec]

Starts its own ``redis-server`` on a free loopback port in a temporary
directory (``apt-get install -y redis-server`` if it is missing), with the
persistence the store's documentation recommends (``appendonly yes``,
``appendfsync everysec``; ``--appendfsync always`` or ``no-aof`` to compare).

Measures, as the median (and range) of several runs in one process:

- commit: one ``Store.commit`` of N new markers in one batch;
- pre_mark (written ahead): ``Guard.pre_mark`` with N conversations in
  flight whose markers the write-ahead has already written, as in a bot
  that has been running: what is left is the one "draining" record;
- pre_mark (none written ahead): the worst case, a burst of N starts just
  before SIGTERM that the write-ahead has not written yet, so pre_mark
  writes all N (resolve included) — through a RedisStore, a DirectoryStore,
  the ``FallbackStore(RedisStore, DirectoryStore)`` that
  ``protect(store="redis://...")`` builds, and that same store with Redis
  down (connection refused: the batch goes to the local directory);
- claim: one ``Store.claim`` of N markers a dead process left behind, also
  through the FallbackStore;
- naive baseline, same server, same run: one command and one round trip per
  marker (commit: ``SET``; claim: ``GETDEL`` the dead owner's copy + ``SET``
  ours). The ratio column is median / naive median.

Targets (issue 5): pre-drain marking ≤ 50 ms, claim ≤ 500 ms for 10,000 markers on
loopback; the target column holds the worst case of pre_mark to them too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from redis.utils import HIREDIS_AVAILABLE

from restart_guard import Conversation, Guard, Marker, Settings
from restart_guard.stores.base import Store
from restart_guard.stores.directory import DirectoryStore
from restart_guard.stores.fallback import FallbackStore
from restart_guard.stores.redis import RedisStore

OWNER = "bench-host:4242:{run}"


def make_markers(count: int, owner: str) -> list[Marker]:
    """Markers shaped like a busy Telegram bot's: chats, some forum topics."""
    now = time.time()
    return [
        Marker(
            conversation=Conversation(
                "telegram", str(-1001000000000 - i), thread=str(i % 50) if i % 4 == 0 else None
            ),
            started_at=now - i * 0.01,
            owner=owner,
        )
        for i in range(count)
    ]


# ---------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(directory: Path, appendfsync: str) -> Iterator[str]:
    """A ``redis-server`` of our own; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install -y redis-server")
    port = free_port()
    persistence = (
        ["--appendonly", "no"]
        if appendfsync == "no-aof"
        else ["--appendonly", "yes", "--appendfsync", appendfsync]
    )
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--dir", str(directory), "--logfile", str(directory / "redis.log"), *persistence]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"redis-server did not start; see {directory / 'redis.log'}")
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------- timing
def timed(setup: Callable[[int], Callable[[], object]], runs: int) -> list[float]:
    """Milliseconds of ``setup(run)()`` for each run; setup is not timed."""
    samples = []
    for run in range(runs):
        action = setup(run)
        gc.collect()
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--markers", type=int, default=10_000)
    parser.add_argument(
        "--appendfsync", choices=["always", "everysec", "no-aof"], default="everysec"
    )
    options = parser.parse_args()
    runs, count = options.runs, options.markers
    # The "Redis down" rows make the guard log its outage error on purpose; keep the
    # table readable (without a handler Python would print them to stderr).
    logging.getLogger("restart_guard").addHandler(logging.NullHandler())

    with (
        tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp,
        redis_server(Path(tmp), options.appendfsync) as url,
    ):
        client = redis.Redis.from_url(url)
        results: dict[str, list[float]] = {}
        closers: list[Callable[[], None]] = []

        def redis_store(namespace: str) -> RedisStore:
            return RedisStore(url, namespace=namespace, lease=30)

        def directory_store(run: int, name: str) -> DirectoryStore:
            return DirectoryStore(Path(tmp) / f"{name}-{run}")

        def cleanup() -> None:
            for close in closers:
                close()
            closers.clear()
            client.flushdb()

        # -- json.dumps of to_json(): what the stores' encoders (cached pieces) save.
        def encode_only(run: int) -> Callable[[], object]:
            markers = make_markers(count, OWNER.format(run=run))
            encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
            return lambda: [encode(m.to_json()) for m in markers]

        results["encode"] = timed(encode_only, runs)

        # -- commit
        def commit_with(make: Callable[[int], Store]) -> Callable[[int], Callable[[], object]]:
            def setup(run: int) -> Callable[[], object]:
                cleanup()
                store = make(run)
                owner = OWNER.format(run=run)
                store.open(owner)
                closers.append(store.close)
                markers = make_markers(count, owner)
                return lambda: store.commit(markers, [])

            return setup

        results["commit redis"] = timed(commit_with(lambda run: redis_store(f"c{run}")), runs)
        results["commit dir"] = timed(commit_with(lambda run: directory_store(run, "c")), runs)

        def naive_commit(run: int) -> Callable[[], object]:
            cleanup()
            markers = make_markers(count, OWNER.format(run=run))

            def action() -> None:
                for m in markers:
                    client.set(f"naive:{run}:m:{m.key}", json.dumps(m.to_json()))

            return action

        results["commit naive"] = timed(naive_commit, runs)

        # -- pre_mark through the guard
        def pre_mark_with(make: Callable[[int], Store]) -> Callable[[int], Callable[[], object]]:
            def setup(run: int) -> Callable[[], object]:
                cleanup()
                guard = Guard("telegram", make(run), Settings())
                guard.start()
                for marker in make_markers(count, guard.owner):
                    guard.begin(marker.conversation)
                deadline = time.monotonic() + 60
                while guard.writer.pending and time.monotonic() < deadline:
                    time.sleep(0.01)  # let the write-ahead settle, as it has in a running bot
                guard.flush()  # waits for a batch still in flight

                def action() -> None:
                    assert guard.pre_mark()

                closers.append(guard.close)
                return action

            return setup

        results["pre_mark redis"] = timed(pre_mark_with(lambda run: redis_store(f"p{run}")), runs)
        results["pre_mark dir"] = timed(pre_mark_with(lambda run: directory_store(run, "p")), runs)

        # -- pre_mark, worst case: a burst of starts the write-ahead has not written yet
        def unwritten_with(make: Callable[[int], Store]) -> Callable[[int], Callable[[], object]]:
            def setup(run: int) -> Callable[[], object]:
                cleanup()
                guard = Guard("telegram", make(run), Settings())
                # Open the store but leave the writer thread off: all N stay dirty.
                with contextlib.suppress(Exception):  # a Redis that is down, on purpose
                    guard.store.open(guard.owner)
                for marker in make_markers(count, guard.owner):
                    guard.begin(marker.conversation)
                assert guard.writer.pending == count

                def action() -> None:
                    assert guard.pre_mark()

                closers.append(guard.close)
                return action

            return setup

        def fallback_store(run: int, name: str, primary_url: str) -> Store:
            # What protect(store="redis://...") builds: Redis over the local marker directory.
            return FallbackStore(
                RedisStore(primary_url, namespace=f"{name}{run}", lease=30),
                directory_store(run, name),
            )

        dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens: connection refused
        results["unwritten redis"] = timed(unwritten_with(lambda run: redis_store(f"u{run}")), runs)
        results["unwritten dir"] = timed(
            unwritten_with(lambda run: directory_store(run, "u")), runs
        )
        results["unwritten fallback"] = timed(
            unwritten_with(lambda run: fallback_store(run, "f", url)), runs
        )
        results["unwritten down"] = timed(
            unwritten_with(lambda run: fallback_store(run, "d", dead_url)), runs
        )

        # -- claim
        def claim_with(make: Callable[[int], Store]) -> Callable[[int], Callable[[], object]]:
            def setup(run: int) -> Callable[[], object]:
                cleanup()
                dead = make(run)
                dead.open(f"dead:{run}")
                dead.commit(make_markers(count, f"dead:{run}"), [])
                dead.close()
                heir = make(run)
                heir.open(OWNER.format(run=run))
                closers.append(heir.close)

                def action() -> None:
                    claimed = heir.claim()
                    assert len(claimed) == count, len(claimed)

                return action

            return setup

        results["claim redis"] = timed(claim_with(lambda run: redis_store(f"k{run}")), runs)
        results["claim dir"] = timed(claim_with(lambda run: directory_store(run, "k")), runs)
        results["claim fallback"] = timed(
            claim_with(lambda run: fallback_store(run, "kf", url)), runs
        )

        def naive_claim(run: int) -> Callable[[], object]:
            cleanup()
            markers = make_markers(count, f"dead:{run}")
            for m in markers:
                client.set(f"naive:dead:m:{m.key}", json.dumps(m.to_json()))
            owner = OWNER.format(run=run)

            def action() -> None:
                for m in markers:
                    raw = client.getdel(f"naive:dead:m:{m.key}")
                    assert raw is not None
                    record = json.loads(raw)
                    record.update(owner=owner, phase="resuming", updated_at=time.time())
                    client.set(f"naive:{run}:m:{m.key}", json.dumps(record))

            return action

        results["claim naive"] = timed(naive_claim, runs)
        cleanup()
        server_version = client.info("server")["redis_version"]
        client.close()

    print_table(results, runs, count, options.appendfsync, server_version)


def print_table(
    results: dict[str, list[float]], runs: int, count: int, appendfsync: str, server: str
) -> None:
    persistence = "no AOF" if appendfsync == "no-aof" else f"AOF appendfsync {appendfsync}"
    print(
        f"restart-guard stores, {count:,} markers, median of {runs} runs — "
        f"redis-server {server} on loopback ({persistence}), redis-py {redis.__version__} "
        f"({'with' if HIREDIS_AVAILABLE else 'without'} hiredis), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s)"
    )
    rows = [
        ("commit (1 batch)", "RedisStore.commit", "commit redis", "commit naive", 50.0),
        ("", "naive: SET + round trip each", "commit naive", "commit naive", None),
        ("", "DirectoryStore.commit (fdatasync)", "commit dir", "commit naive", None),
        ("", "(json.dumps(to_json()) alone, unused)", "encode", "commit naive", None),
        ("pre_mark", "Guard.pre_mark via RedisStore", "pre_mark redis", "commit naive", 50.0),
        (
            "(written ahead)",
            "Guard.pre_mark via DirectoryStore",
            "pre_mark dir",
            "commit naive",
            None,
        ),
        ("pre_mark", "Guard.pre_mark via RedisStore", "unwritten redis", "commit naive", 50.0),
        (
            "(none written",
            "Guard.pre_mark via DirectoryStore",
            "unwritten dir",
            "commit naive",
            None,
        ),
        (
            " ahead: worst",
            "via protect(store=URL): Fallback",
            "unwritten fallback",
            "commit naive",
            50.0,
        ),
        (" case)", "same, Redis down → local directory", "unwritten down", "commit naive", None),
        ("claim", "RedisStore.claim", "claim redis", "claim naive", 500.0),
        ("", "naive: GETDEL + SET, round trip each", "claim naive", "claim naive", None),
        ("", "DirectoryStore.claim", "claim dir", "claim naive", None),
        ("", "via protect(store=URL): Fallback", "claim fallback", "claim naive", 500.0),
    ]
    header = f"{'operation':<17} {'store':<38} {'median ms':>10} {'min–max ms':>16} "
    header += f"{'vs naive':>9}  target"
    print(header)
    print("-" * len(header))
    for operation, label, key, baseline, target in rows:
        samples = results[key]
        median = statistics.median(samples)
        ratio = median / statistics.median(results[baseline])
        spread = f"{min(samples):.1f}–{max(samples):.1f}"
        verdict = ""
        if target is not None and count == 10_000:  # the targets are for 10,000
            verdict = f"≤ {target:.0f} ms {'met' if median <= target else 'MISSED'}"
        print(f"{operation:<17} {label:<38} {median:>10.1f} {spread:>16} {ratio:>8.3f}×  {verdict}")


if __name__ == "__main__":
    main()
