"""status, clear and doctor against a real ``redis-server`` holding markers of real bots."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing.wait import eventually
from stores.conftest import RedisServer, free_port, redis_binary  # noqa: F401  (a fixture)

from .conftest import TOKENS, Bots, chats, folder_of, run_cli, start_work, status_json

pytestmark = pytest.mark.e2e

redis = pytest.importorskip("redis")
DEAD_CHAT, HELD_CHAT = 71, 72


@pytest.fixture
def redis_url(redis_binary: str, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A redis-server of our own, without persistence (doctor must say so)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(redis_binary, directory)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def redis_markers(redis_url: str, bots: Bots, tmp_path: Path) -> str:
    """One bot stopped with a turn cut off by its drain, one running with a turn in flight."""
    # The directory is the fallback a redis:// store writes to while Redis is down.
    env = {"RESTART_GUARD_URL": redis_url, "RESTART_GUARD_DIR": str(tmp_path / "fallback")}
    dead = bots.start(TOKENS["drained"], env, "--drain-timeout", "0.5")
    start_work(bots.api(TOKENS["drained"]), DEAD_CHAT, "/work 600")
    dead.send_signal(signal.SIGTERM)
    dead.wait_for_log("drain timed out")
    dead.wait_exit(30)
    bots.start(TOKENS["running"], env)
    start_work(bots.api(TOKENS["running"]), HELD_CHAT, "/work 600")
    eventually(lambda: len(status_json("--store", redis_url)) == 2, what="both markers in Redis")
    return redis_url


def test_status_shows_every_bot_namespace(redis_markers: str) -> None:
    rows = status_json(env={"RESTART_GUARD_URL": redis_markers})
    by_chat = {r["chat"]: r for r in rows}
    dead, held = by_chat[str(DEAD_CHAT)], by_chat[str(HELD_CHAT)]
    # (The phase is the Redis store's business; status shows what it holds.)
    assert (dead["held"], held["held"]) == (False, True)
    assert held["phase"] == "in_flight"
    assert dead["bot"] == folder_of(TOKENS["drained"])
    only = status_json("--store", redis_markers, "--namespace", f"restart-guard:{dead['bot']}")
    assert chats(only) == [(str(DEAD_CHAT), None)]
    table = run_cli("status", "--store", redis_markers)
    assert f"Markers in {redis_markers} (--store):" in table.out


def test_clear_takes_dead_markers_and_held_ones_only_with_force(redis_markers: str) -> None:
    url = redis_markers
    result = run_cli("clear", "--store", url, "-y")
    assert result.status == 0, result
    assert "Left alone, held by a running process" in result.out
    assert result.out.splitlines()[-1] == "Removed 1 marker(s)."
    assert chats(status_json("--store", url)) == [(str(HELD_CHAT), None)]
    forced = run_cli("clear", "--store", url, "-y", "--force")
    assert forced.out.splitlines()[-1] == "Removed 1 marker(s).", forced
    assert status_json("--store", url) == []


def test_doctor_finds_redis_without_persistence(redis_markers: str) -> None:
    result = run_cli("doctor", "--store", redis_markers)
    assert result.status == 1
    assert "ok       reachable" in result.out
    assert (
        'ERROR    no persistence (appendonly no, save ""): a Redis restart loses every'
        in result.out
    )
    assert "fix: in redis.conf: appendonly yes" in result.out
    assert "2 bot namespace(s), 2 pending marker(s)" in result.out
    redis.Redis.from_url(redis_markers).config_set("appendonly", "yes")
    # The AOF rewrite starts in the background: doctor passes once it is done.
    fixed = eventually(
        lambda: (result := run_cli("doctor", "--store", redis_markers)).status == 0 and result,
        what="doctor to pass once appendonly is on",
    )
    assert "persistent: appendonly yes" in fixed.out


def test_doctor_and_status_on_a_redis_nobody_runs() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("doctor", "--store", url)
    assert result.status == 1
    assert "ERROR    cannot reach Redis" in result.out
    status = run_cli("status", "--store", url)
    assert status.status == 2
    assert f"cannot read Redis at {url}" in status.err
