"""Redis-only behaviour: leases and real process deaths, outages, key hygiene, fallback.

Every test talks to a real ``redis-server`` of its own or to the shared one
(in a namespace of its own). Processes that must die do so by SIGKILL.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

import redis

from core.conftest import FakeLink, leave_behind
from restart_guard import Conversation, Guard, Marker, Phase, Resumer, Settings, make_store
from restart_guard.stores.base import StoreError
from restart_guard.stores.directory import DirectoryStore
from restart_guard.stores.fallback import FallbackStore
from restart_guard.stores.redis import RedisStore
from restart_guard.testing.wait import eventually, eventually_async

from .conftest import RedisFactory, RedisServer, free_port, killed_at_the_end

pytestmark = pytest.mark.external_service

ServerFactory = Callable[..., RedisServer]

# A process that opens a RedisStore, commits or claims, reports, then waits to be killed.
_CHILD = r"""
import json, sys, time
from restart_guard import Conversation, Marker
from restart_guard.stores.redis import RedisStore

url, namespace, lease, owner, action, count = sys.argv[1:7]
store = RedisStore(url, namespace=namespace, lease=float(lease))
store.open(owner)
print("ready", flush=True)
if action == "commit":
    markers = [
        Marker(Conversation("telegram", str(i)), started_at=1.0 + i, owner=owner)
        for i in range(int(count))
    ]
    store.commit(markers, [])
    print(json.dumps([m.key for m in markers]), flush=True)
else:
    if action == "claim-on-go":
        sys.stdin.readline()
    print(json.dumps([m.key for m in store.claim()]), flush=True)
time.sleep(3600)
"""


def marker(n: int, owner: str = "", **changes: Any) -> Marker:
    base = Marker(Conversation("slack", f"C{n:05d}", thread=f"{n}.0001"), started_at=1e9 + n)
    return base.with_changes(owner=owner, **changes)


class Child:
    """A store-owning process of its own (see ``_CHILD``)."""

    def __init__(self, url: str, namespace: str, lease: float, owner: str, action: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, namespace, str(lease), owner, action, "5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.line() == "ready"

    def line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"child exited with {self.process.wait()}"
        return line

    def result(self) -> list[str]:
        keys: list[str] = json.loads(self.line())
        return keys

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def children(redis_server: RedisServer, namespace: str) -> Iterator[Callable[..., Child]]:
    """``spawn(lease, owner, action)`` → a :class:`Child` on the shared server, in this
    test's namespace; killed at the end."""
    yield from killed_at_the_end(functools.partial(Child, redis_server.url, namespace))


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with contextlib.closing(redis_server.client(decode_responses=True)) as connection:
        yield connection


@pytest.fixture
def stores(request: pytest.FixtureRequest, namespace: str) -> Iterator[Callable[..., RedisStore]]:
    """``make(lease=5.0, *, url=the shared server's)`` → a store in this test's namespace;
    every store made is closed at the end."""
    made: list[RedisStore] = []

    def make(lease: float = 5.0, *, url: str | None = None) -> RedisStore:
        if url is None:  # only now: a test that never uses the shared server does not start it
            url = request.getfixturevalue("redis_server").url
        store = RedisStore(url, namespace=namespace, lease=lease)
        made.append(store)
        return store

    yield make
    for store in made:
        with contextlib.suppress(StoreError):
            store.close()


def claim_until(store: Any, want: set[str], timeout: float) -> tuple[list[Marker], float]:
    got: list[Marker] = []

    def complete() -> bool:
        got.extend(store.claim())
        return {m.key for m in got} >= want

    start = time.monotonic()
    eventually(complete, timeout, f"{len(want)} markers to become claimable", interval=0.02)
    return got, time.monotonic() - start


# ---------------------------------------------------------------------- leases
def test_markers_of_a_killed_owner_are_claimable_after_its_lease(
    namespace: str,
    client: redis.Redis,
    children: Callable[..., Child],
    stores: Callable[..., RedisStore],
) -> None:
    lease = 1.0
    child = children(lease, "victim", "commit")
    left = set(child.result())
    child.kill()  # SIGKILL: no close(), the lease just stops being renewed

    claimer = stores(lease)
    claimer.open("heir")
    remaining_ms = client.pttl(f"{namespace}:lease:victim")
    assert remaining_ms > 50, "the lease should still run right after the kill"
    assert claimer.claim() == []  # dead, but we cannot know yet: wait for the lease

    got, took = claim_until(claimer, left, timeout=lease + 3)
    assert {m.key for m in got} == left
    assert len(got) == len(left)
    assert took <= lease + 1.5
    assert not client.exists(f"{namespace}:m:victim")


def test_claim_by_an_owner_that_then_dies_is_claimable_again(
    children: Callable[..., Child], stores: Callable[..., RedisStore]
) -> None:
    leave_behind(stores(), "first", [marker(i, "first", attempts=1) for i in range(5)])

    lease = 0.5
    claimer = children(lease, "claimer", "claim")
    claimed = set(claimer.result())
    assert claimed == {marker(i).key for i in range(5)}
    claimer.kill()  # died while resuming

    heir = stores(lease)
    heir.open("heir")
    got, _ = claim_until(heir, claimed, timeout=lease + 3)
    assert len(got) == 5
    assert {(m.owner, m.phase, m.attempts) for m in got} == {("heir", Phase.RESUMING, 1)}


def test_processes_claiming_at_once_split_the_markers_exactly(
    children: Callable[..., Child], stores: Callable[..., RedisStore]
) -> None:
    left = set()
    for owner in range(8):
        store = stores()
        store.open(f"dead-{owner}")
        markers = [marker(owner * 1000 + i, f"dead-{owner}") for i in range(50)]
        store.commit(markers, [])
        store.close()
        left |= {m.key for m in markers}

    claimers = [children(5.0, f"c{i}", "claim-on-go") for i in range(4)]
    for claimer in claimers:
        claimer.go()
    results = [claimer.result() for claimer in claimers]
    everything = [key for result in results for key in result]
    assert len(everything) == len(left)
    assert set(everything) == left


def test_lease_is_renewed_while_open_and_released_on_close(
    namespace: str, client: redis.Redis, stores: Callable[..., RedisStore]
) -> None:
    store = stores(0.3)
    store.open("me")
    lease_key = f"{namespace}:lease:me"
    previous = [client.pttl(lease_key)]

    def renewed() -> bool:
        now = client.pttl(lease_key)
        went_up = now > previous[0]
        previous[0] = now
        return went_up

    eventually(renewed, timeout=2.0, what="the lease to be renewed")
    assert any(t.name == "restart-guard-redis-lease" for t in threading.enumerate())

    store.close()
    assert not client.exists(lease_key)
    assert not any(t.name == "restart-guard-redis-lease" for t in threading.enumerate())


def test_a_lost_lease_is_reported_and_taken_again(
    namespace: str,
    client: redis.Redis,
    stores: Callable[..., RedisStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = stores()
    store.open("me")
    client.delete(f"{namespace}:lease:me")  # as if Redis had been unreachable for a lease
    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        store.commit([marker(1, "me")], [])
    assert "lease" in caplog.text
    assert "expired" in caplog.text
    assert client.exists(f"{namespace}:lease:me")


# ---------------------------------------------------------------------- outages
def test_unreachable_redis_raises_a_clear_store_error(stores: Callable[..., RedisStore]) -> None:
    port = free_port()  # nobody listens here
    store = stores(url=f"redis://127.0.0.1:{port}/0")
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"unreachable.*127\.0\.0\.1:{port}"):
        store.open("me")
    with pytest.raises(StoreError, match=r"cannot write 1 marker\(s\) / remove 0: Redis at"):
        store.commit([marker(1, "me")], [])
    with pytest.raises(StoreError, match="cannot claim markers"):
        store.claim()
    with pytest.raises(StoreError, match="cannot read markers"):
        store.load()
    with pytest.raises(StoreError):
        store.close()
    assert time.monotonic() - started < 10  # short timeouts: a dead Redis cannot eat the drain
    assert not any(t.name == "restart-guard-redis-lease" for t in threading.enumerate())


def test_wrong_credentials_are_named_as_such(
    redis_server: RedisServer, stores: Callable[..., RedisStore]
) -> None:
    store = stores(url=f"redis://nobody:wrong-secret@127.0.0.1:{redis_server.port}/0")
    with pytest.raises(StoreError, match="rejected the credentials") as raised:
        store.open("me")
    assert "wrong-secret" not in str(raised.value)


def test_store_opened_while_redis_is_down_works_once_it_is_up(
    redis_binary: str, tmp_path: Path, stores: Callable[..., RedisStore]
) -> None:
    server = RedisServer(redis_binary, tmp_path)
    server.port = free_port()
    store = stores(url=server.url)
    with pytest.raises(StoreError):
        store.open("me")
    try:
        server.start()
        store.commit([marker(1, "me")], [])  # the guard's writer retries like this
        (stored,) = store.load()
        assert stored.held
        assert stored.marker.key == marker(1).key
    finally:
        server.kill()


def test_claim_can_be_retried_after_its_reply_was_lost(
    stores: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    leave_behind(stores(), "dead", [marker(i, "dead") for i in range(3)])

    store = stores()
    store.open("me")
    # The network fails right after the claim script ran: the second round trip is lost.
    real_pipeline = store._client.pipeline

    class Severed:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.pipe = real_pipeline(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.pipe, name)

        def execute(self) -> None:
            raise redis.ConnectionError("connection reset by peer")

    monkeypatch.setattr(store._client, "pipeline", Severed)
    with pytest.raises(StoreError, match="unreachable"):
        store.claim()
    monkeypatch.undo()

    claimed = store.claim()
    assert sorted(m.key for m in claimed) == sorted(marker(i).key for i in range(3))
    assert {(m.owner, m.phase) for m in claimed} == {("me", Phase.RESUMING)}
    assert store.claim() == []


# ---------------------------------------------------------------------- keys
def test_other_keys_in_the_database_are_untouched(
    namespace: str, client: redis.Redis, stores: Callable[..., RedisStore]
) -> None:
    others = {
        "session:42": "user data",
        f"{namespace}-other:m:dead": "same prefix, another namespace",
        f"x{namespace}:owners": "looks alike",
    }
    for key, value in others.items():
        client.set(key, value)
    client.hset("bot:state", mapping={"a": "1", "b": "2"})
    client.sadd(f"{namespace}2:owners", "dead")
    client.hset(f"{namespace}2:m:dead", mapping={marker(1).key: "x"})
    client.expire("session:42", 3600)

    # The same owner name as in the other namespace.
    leave_behind(stores(), "dead", [marker(i, "dead") for i in range(3)])
    store = stores()
    store.open("me")
    store.load()
    claimed = store.claim()
    store.commit([], [m.key for m in claimed])
    store.close()

    for key, value in others.items():
        assert client.get(key) == value
    assert client.hgetall("bot:state") == {"a": "1", "b": "2"}
    assert client.smembers(f"{namespace}2:owners") == {"dead"}
    assert client.hgetall(f"{namespace}2:m:dead") == {marker(1).key: "x"}
    assert 3500 < client.ttl("session:42") <= 3600
    assert list(client.scan_iter(match=f"{namespace}:*")) == []


def test_unreadable_records_are_set_aside(
    redis_server: RedisServer, namespace: str, client: redis.Redis
) -> None:
    factory = RedisFactory(redis_server, namespace)
    try:
        leave_behind(factory(), "dead", [marker(1, "dead")])
        factory.add_garbage("dead")
        store = factory()
        store.open("me")
        assert [m.key for m in store.claim()] == [marker(1).key]
        assert client.hlen(f"{namespace}:corrupt") == 2
        assert client.hkeys(f"{namespace}:m:me") == [marker(1).key]
    finally:
        factory.close_all()


def test_a_foreign_key_where_a_marker_hash_should_be_is_left_alone(
    namespace: str,
    client: redis.Redis,
    stores: Callable[..., RedisStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.sadd(f"{namespace}:owners", "weird")
    client.set(f"{namespace}:m:weird", "not a hash")
    store = stores()
    store.open("me")
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert store.claim() == []
        assert store.load() == []
    assert f"{namespace}:m:weird is not a hash" in caplog.text
    assert client.get(f"{namespace}:m:weird") == "not a hash"


def test_a_client_passed_in_is_used_and_not_closed(
    redis_server: RedisServer, namespace: str, client: redis.Redis
) -> None:
    store = RedisStore(client, namespace=namespace)  # decode_responses=True works too
    store.open("me")
    store.commit([marker(1, "me")], [])
    assert [s.marker.key for s in store.load()] == [marker(1).key]
    store.close()
    assert client.ping()
    other = RedisStore(redis_server.client(), namespace=namespace)
    other.open("other")
    assert [m.key for m in other.claim()] == [marker(1).key]
    other.commit([], [marker(1).key])
    other.close()
    assert "127.0.0.1" in repr(other)


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lease"):
        RedisStore("redis://127.0.0.1:1/0", lease=0)
    with pytest.raises(ValueError, match="namespace"):
        RedisStore("redis://127.0.0.1:1/0", namespace="")
    with pytest.raises(ValueError, match="invalid Redis URL"):
        RedisStore("http://127.0.0.1/")
    with pytest.raises(TypeError, match=r"sync redis\.Redis"):
        RedisStore(42)  # type: ignore[arg-type]
    assert "secret" not in repr(RedisStore("redis://:secret@127.0.0.1:1/0"))


def test_markers_survive_a_redis_crash_with_appendfsync_always(
    redis_server_factory: ServerFactory, stores: Callable[..., RedisStore]
) -> None:
    server = redis_server_factory("always")
    store = stores(url=server.url)
    store.open("me")
    store.commit([marker(i, "me") for i in range(100)], [marker(0).key])
    server.kill()  # SIGKILL right after the commit returned
    server.start()
    assert len(store.load()) == 99


# ---------------------------------------------------------------------- Redis forgets
def _restart_empty(server: RedisServer) -> None:
    server.kill()  # no persistence: it comes back empty
    server.start()


def _flushall(server: RedisServer) -> None:
    with contextlib.closing(server.client()) as client:
        client.flushall()


FORGETTING = {"restarted without persistence": _restart_empty, "FLUSHALL": _flushall}


@pytest.mark.parametrize("forget", list(FORGETTING))
def test_what_the_bot_holds_is_written_again_when_redis_forgets_it(
    redis_server_factory: ServerFactory,
    namespace: str,
    stores: Callable[..., RedisStore],
    caplog: pytest.LogCaptureFixture,
    forget: str,
) -> None:
    server = redis_server_factory(None)
    store = stores(0.6, url=server.url)  # renewed every 0.2 s
    store.open("me")
    held = [marker(i, "me") for i in range(5)]
    store.commit(held, [])
    store.commit([], [held[0].key], draining=True)  # a stop signal: the drain began
    markers_key, lease_key = f"{namespace}:m:me", f"{namespace}:lease:me"
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        FORGETTING[forget](server)
        with contextlib.closing(server.client(decode_responses=True)) as client:
            eventually(lambda: client.hlen(markers_key) == 4, 10, "the markers to be written again")
            assert client.exists(lease_key)
            assert client.sismember(f"{namespace}:owners", "me")
            # Three more renewals: nothing more to write, nothing more to say.
            renewals, last = 0, client.pttl(lease_key)

            def three_renewals() -> bool:
                nonlocal renewals, last
                now = client.pttl(lease_key)
                renewals += now > last  # the TTL only goes up when the lease is renewed
                last = now
                return renewals >= 3

            eventually(three_renewals, 5, "three lease renewals")
    lost = [r.getMessage() for r in caplog.records if "written again" in r.getMessage()]
    assert len(lost) == 1, caplog.text
    assert "had lost 4 of the 4 marker(s) this process holds and its lease" in lost[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    stored = {s.marker.key: s.marker for s in store.load()}
    assert set(stored) == {m.key for m in held[1:]}  # the removed one stays removed
    assert {m.phase for m in stored.values()} == {Phase.DRAINING}  # and the drain note


def test_a_commit_after_redis_forgot_writes_back_what_the_bot_holds(
    redis_server_factory: ServerFactory,
    stores: Callable[..., RedisStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_server_factory(None)
    store = stores(60.0, url=server.url)  # no renewal during this test
    store.open("me")
    store.commit([marker(1, "me"), marker(2, "me")], [])
    _flushall(server)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        store.commit([marker(3, "me")], [marker(2).key])  # the next write-ahead batch
    assert {s.marker.key for s in store.load()} == {marker(1).key, marker(3).key}
    [warning] = [r.getMessage() for r in caplog.records]
    assert "had lost 1 of the 2 marker(s) this process holds and its lease" in warning


def test_claimed_markers_are_held_too(
    redis_server: RedisServer, namespace: str, stores: Callable[..., RedisStore]
) -> None:
    leave_behind(stores(), "dead", [marker(1, "dead")])
    store = stores(60.0)
    store.open("me")
    [claimed] = store.claim()
    with contextlib.closing(redis_server.client()) as client:
        client.delete(f"{namespace}:m:me")  # lost while it is being resumed
    store.commit([marker(2, "me")], [])
    assert {s.marker.key for s in store.load()} == {claimed.key, marker(2).key}


# ---------------------------------------------------------------------- fallback
def fallback_store(url: str, namespace: str, directory: Path) -> FallbackStore:
    return FallbackStore(RedisStore(url, namespace=namespace, lease=0.5), DirectoryStore(directory))


def test_fallback_takes_the_batch_when_redis_dies_and_the_next_start_reads_both(
    redis_server_factory: ServerFactory,
    namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_server_factory("always")
    local = tmp_path / "fallback"
    store = fallback_store(server.url, namespace, local)
    store.open("old")
    store.commit([marker(i, "old") for i in range(3)], [])  # written ahead, to Redis
    assert not DirectoryStore(local).load()

    server.kill()
    drain = [marker(i, "old", phase=Phase.DRAINING, attempts=1, updated_at=2e9) for i in range(5)]
    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        store.commit(drain, [])  # the pre-drain write: no exception
        store.commit([marker(5, "old")], [])
    outage_lines = [r for r in caplog.records if "fallback" in r.getMessage()]
    assert len(outage_lines) == 1, caplog.text
    assert "unreachable" in outage_lines[0].getMessage()
    assert sorted(s.marker.key for s in DirectoryStore(local).load()) == sorted(
        marker(i).key for i in range(6)
    )
    with pytest.raises(StoreError):
        store.close()  # Redis still down: the error is reported, the directory is closed

    server.start()
    with contextlib.closing(server.client()) as client:
        eventually(lambda: not client.exists(f"{namespace}:lease:old"), 3, "the old lease to end")
    new = fallback_store(server.url, namespace, local)
    new.open("new")
    try:
        got = new.claim()
        assert sorted(m.key for m in got) == sorted(marker(i).key for i in range(6))
        assert len(got) == 6  # one per conversation, though 3 were in both stores
        # For the 3 in both stores, the newer record (the fallback's pre-drain one) wins.
        attempts = {m.key: m.attempts for m in got}
        assert attempts == {marker(i).key: 1 if i < 5 else 0 for i in range(6)}
        assert {m.owner for m in got} == {"new"}
    finally:
        new.close()


def test_fallback_moves_markers_back_to_redis_when_it_recovers(
    redis_server_factory: ServerFactory, namespace: str, tmp_path: Path
) -> None:
    server = redis_server_factory("always")
    local = tmp_path / "fallback"
    store = fallback_store(server.url, namespace, local)
    store.open("me")
    store.commit([marker(1, "me"), marker(2, "me")], [])
    server.kill()
    store.commit([marker(3, "me")], [marker(1).key])  # during the outage
    server.start()
    store.commit([marker(4, "me")], [])  # first batch after recovery
    redis_only = RedisStore(server.url, namespace=namespace)
    try:
        assert sorted(s.marker.key for s in redis_only.load()) == sorted(
            marker(i).key for i in (2, 3, 4)
        )
        assert DirectoryStore(local).load() == []
    finally:
        store.close()
        redis_only.close()


def test_fallback_claims_locally_when_redis_is_down_at_start(
    namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = tmp_path / "fallback"
    leave_behind(DirectoryStore(local), "dead", [marker(i, "dead") for i in range(2)])

    url = f"redis://127.0.0.1:{free_port()}/0"
    guard = Guard("slack", fallback_store(url, namespace, local), Settings())
    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        claimed = guard.start()  # never raises: the bot starts
        assert guard.claim() == []  # a re-claim while Redis is still down: no new error
    try:
        assert sorted(m.key for m in claimed) == sorted(marker(i).key for i in range(2))
        [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "unavailable at start-up" in error.getMessage()
        assert "claimed in the background" in error.getMessage()
        guard.begin(Conversation("slack", "C99999"))
        assert guard.pre_mark()  # lands in the directory
        assert Conversation("slack", "C99999").key in {
            s.marker.key for s in DirectoryStore(local).load()
        }
    finally:
        guard.close()


def test_fallback_claim_keeps_what_redis_handed_over_when_the_directory_fails(
    redis_server: RedisServer,
    namespace: str,
    tmp_path: Path,
    stores: Callable[..., RedisStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leave_behind(stores(), "dead", [marker(1, "dead")])
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    store = fallback_store(redis_server.url, namespace, not_a_directory)
    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        store.open("me")  # the directory fails, Redis works: no exception
        claimed = store.claim()
        assert store.claim() == []  # a re-claim: nothing new, no error, no exception
    assert [m.key for m in claimed] == [marker(1).key]
    [error] = caplog.records  # one line, however often the guard claims
    assert "cannot open the local fallback" in error.getMessage()
    assert "$RESTART_GUARD_DIR" in error.getMessage()
    store.commit([], [marker(1).key])
    with contextlib.suppress(OSError):
        store.close()


async def test_redis_down_at_start_is_one_error_and_its_markers_are_resumed_once_it_is_back(
    redis_server_factory: ServerFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = redis_server_factory("always")
    local = tmp_path / "markers"
    monkeypatch.setenv("RESTART_GUARD_LEASE", "0.5")
    settings = Settings(store=server.url, marker_dir=local)
    # Two processes that exited with turns cut off: one wrote to Redis, one (during an
    # earlier outage) to the local directory.
    now = time.time()  # younger than max_age
    leave_behind(
        make_store(settings, "slack", "B1"),
        "dead",
        [marker(i, "dead", started_at=now) for i in range(3)],
    )
    leave_behind(DirectoryStore(local), "dead-local", [marker(10, "dead-local", started_at=now)])
    server.kill()

    guard = Guard("slack", make_store(settings, "slack", "B1"), settings)
    claims = 0
    real_claim = guard.store.claim

    def counting_claim() -> list[Marker]:
        nonlocal claims
        claims += 1
        return real_claim()

    monkeypatch.setattr(guard.store, "claim", counting_claim)
    link = FakeLink()
    resumer = Resumer(guard, link)
    resumer.reclaim_interval = 0.05
    caplog.set_level(logging.DEBUG, logger="restart_guard")
    claimed = guard.start()  # never raises: the bot starts
    try:
        assert [m.key for m in claimed] == [marker(10).key]
        resumer.start(claimed)
        # The bot serves during the outage; its markers go to the local directory.
        run = guard.begin(Conversation("slack", "C99999"))
        assert await guard.flush_async()
        guard.end(run)
        await eventually_async(lambda: claims >= 5, 10, "the re-claim to retry while Redis is down")
        assert link.conversations == [marker(10).conversation]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "unavailable at start-up" in errors[0]
        assert "unreachable" in errors[0]

        server.start()  # same port, same append-only file
        everything = [marker(i).conversation for i in (10, 0, 1, 2)]
        await eventually_async(
            lambda: len(link.sent) >= 4, 15, "the markers in Redis to be resumed"
        )
        assert await resumer.wait(5)
        await eventually_async(
            lambda: not RedisStore(server.url, namespace=guard.store.primary.namespace).load(),
            10,
            "the resumed markers to be removed from Redis",
        )
        assert sorted(c.key for c in link.conversations) == sorted(c.key for c in everything)
        assert link.replayed == []  # replay is off
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "answers again" in caplog.text
    finally:
        await resumer.cancel()
        guard.close()
    assert DirectoryStore(local).load() == []


@pytest.mark.parametrize(
    "conversation",
    [
        Conversation("telegram", "-100123"),
        Conversation("slack", "C1", thread="1700000000.000100", scope="T9"),
        Conversation("discord", "55", thread="66", scope="77", parent="88"),
        Conversation("slack", 'weird "chat" \\ ünïcødé ✓'),
    ],
    ids=["chat", "thread-scope", "parent", "escapes"],
)
def test_records_are_the_json_of_to_json(conversation: Conversation) -> None:
    from restart_guard.stores.redis import _encode

    for payload in (None, [{"update_id": 1, "text": 'héllo \ud800 "quoted"'}]):
        m = Marker(conversation, 1732627200.123456, Phase.DRAINING, 2, 'host:1:ab"c', 5.5, payload)
        record = _encode(m)
        record.decode("ascii")  # no lone surrogate can make it unencodable
        assert json.loads(record) == m.to_json()
        assert Marker.from_json(json.loads(record)) == m


def test_an_unserialisable_payload_is_dropped_not_the_batch(
    stores: Callable[..., RedisStore],
) -> None:
    store = stores()
    store.open("me")
    bad = marker(1, "me", payload=[object()])
    store.commit([bad, marker(2, "me")], [])
    assert sorted(s.marker.key for s in store.load()) == sorted([marker(1).key, marker(2).key])
    assert {s.marker.key: s.marker.payload for s in store.load()}[bad.key] is None
