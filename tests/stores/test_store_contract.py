"""The contract every store keeps, run against each store through ``store_factory``.

A "dead" owner here is a store that was closed with markers left (a clean
exit after the drain timed out): the one kind of death both stores can show
inside one process. Deaths by SIGKILL and lease expiry are in the backend tests.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from restart_guard import Conversation, Marker, Origin, Phase
from restart_guard.stores.base import OperatorStore, Store, StoreError
from restart_guard.stores.directory import DirectoryStore
from restart_guard.stores.fallback import FallbackStore

from .conftest import RedisServer, StoreFactory


def marker(n: int, owner: str, **changes: object) -> Marker:
    """Marker number ``n`` of ``owner``; ``changes`` override fields."""
    base = Marker(
        conversation=Conversation("telegram", str(1000 + n), thread=str(n % 3) if n % 2 else None),
        started_at=1_700_000_000.25 + n,
        owner=owner,
        updated_at=1_700_000_000.5 + n,
    )
    return base.with_changes(**changes) if changes else base


def opened(factory: StoreFactory, owner: str) -> Store:
    store = factory()
    store.open(owner)
    return store


def dead_owner(factory: StoreFactory, owner: str, markers: list[Marker]) -> None:
    """An owner that wrote ``markers`` and exited cleanly without removing them."""
    store = opened(factory, owner)
    store.commit(markers, [])
    store.close()


def keys(markers: list[Marker]) -> list[str]:
    return sorted(m.key for m in markers)


def test_store_satisfies_protocol(store_factory: StoreFactory) -> None:
    assert isinstance(store_factory(), Store)


def test_empty_store_loads_and_claims_nothing(store_factory: StoreFactory) -> None:
    store = opened(store_factory, "a")
    assert store.load() == []
    assert store.claim() == []
    store.commit([], [])  # an empty batch is a no-op
    assert store.load() == []


def test_commit_is_durable_across_a_new_store_instance(store_factory: StoreFactory) -> None:
    payload = [{"update_id": 7, "message": {"text": 'héllo ✓ \n \u2028 "quoted"'}}]
    written = [marker(i, "a") for i in range(3)] + [marker(3, "a", payload=payload)]
    writer = opened(store_factory, "a")
    writer.commit(written, [])

    seen = store_factory().load()  # another process, while the writer still runs
    assert keys([s.marker for s in seen]) == keys(written)
    assert all(s.held for s in seen)
    by_key = {s.marker.key: s.marker for s in seen}
    for original in written:
        assert by_key[original.key] == original
        assert by_key[original.key].to_json() == original.to_json()  # floats, text exact

    writer.close()
    seen = store_factory().load()
    assert keys([s.marker for s in seen]) == keys(written)
    assert not any(s.held for s in seen)


def test_removes_and_upserts_in_one_batch(store_factory: StoreFactory) -> None:
    store = opened(store_factory, "a")
    store.commit([marker(i, "a") for i in range(4)], [])
    updated = marker(1, "a", phase=Phase.DRAINING, attempts=1, updated_at=1_800_000_000.0)
    unknown = "f" * 32  # removing a key the store never held is harmless
    store.commit([updated, marker(9, "a")], [marker(0, "a").key, marker(2, "a").key, unknown])
    store.close()

    loaded = {s.marker.key: s.marker for s in store_factory().load()}
    assert sorted(loaded) == keys([marker(1, "a"), marker(3, "a"), marker(9, "a")])
    assert loaded[updated.key] == updated

    assert keys(opened(store_factory, "b").claim()) == sorted(loaded)


def test_claim_transfers_ownership_and_sets_resuming(store_factory: StoreFactory) -> None:
    left = [marker(i, "a", phase=Phase.DRAINING, attempts=i % 3) for i in range(5)]
    left[0] = left[0].with_changes(payload=[{"update_id": 1}])
    dead_owner(store_factory, "a", left)

    claimer = opened(store_factory, "b")
    before = time.time()
    claimed = claimer.claim()
    assert keys(claimed) == keys(left)
    originals = {m.key: m for m in left}
    for got in claimed:
        want = originals[got.key]
        assert (got.owner, got.phase) == ("b", Phase.RESUMING)
        assert got.updated_at >= before
        assert (got.conversation, got.started_at, got.attempts, got.payload) == (
            want.conversation,
            want.started_at,
            want.attempts,
            want.payload,
        )

    # Stored as ours, and held while we run: nobody else can take them.
    stored = store_factory().load()
    assert {s.marker.key: s.marker for s in stored} == {m.key: m for m in claimed}
    assert all(s.held for s in stored)
    assert opened(store_factory, "c").claim() == []
    assert claimer.claim() == []  # nothing new: a second claim returns nothing

    # Our owner exits too: claimable again, by exactly the next one.
    claimer.close()
    again = opened(store_factory, "d").claim()
    assert keys(again) == keys(left)
    assert {m.owner for m in again} == {"d"}
    assert {m.key: m.attempts for m in again} == {m.key: m.attempts for m in left}


def test_claim_leaves_markers_of_a_live_owner_alone(store_factory: StoreFactory) -> None:
    # Blue/green: the old instance is still draining when the new one starts.
    # Two stores in one process: for the directory store this checks that its
    # flock is per open file, not per process.
    old = opened(store_factory, "old")
    old.commit([marker(i, "old") for i in range(3)], [])
    new = opened(store_factory, "new")
    assert new.claim() == []
    assert {s.held for s in new.load()} == {True}

    old.commit([marker(3, "old")], [marker(0, "old").key])  # still working meanwhile
    assert new.claim() == []
    old.close()

    claimed = new.claim()
    assert keys(claimed) == keys([marker(i, "old") for i in (1, 2, 3)])
    assert {m.owner for m in claimed} == {"new"}


def test_claim_keeps_the_newer_of_duplicate_markers(store_factory: StoreFactory) -> None:
    # One conversation left by two dead owners, and by the claimer itself.
    dead_owner(store_factory, "a", [marker(1, "a", attempts=2), marker(2, "a", attempts=1)])
    dead_owner(store_factory, "b", [marker(1, "b", attempts=1, updated_at=2e9), marker(3, "b")])
    claimer = opened(store_factory, "c")
    claimer.commit([marker(2, "c", attempts=0, updated_at=2e9)], [])

    claimed = {m.key: m for m in claimer.claim()}
    assert sorted(claimed) == keys([marker(1, "a"), marker(2, "a"), marker(3, "b")])
    assert claimed[marker(1, "a").key].attempts == 2  # most attempts wins over latest
    assert claimed[marker(2, "a").key].attempts == 1
    stored = store_factory().load()
    assert len(stored) == 3
    assert {s.marker.key: s.marker.attempts for s in stored} == {
        k: m.attempts for k, m in claimed.items()
    }


def test_concurrent_claims_are_disjoint_and_complete(store_factory: StoreFactory) -> None:
    owners, per_owner, claimers = 6, 40, 6
    left = [marker(o * 1000 + i, f"dead-{o}") for o in range(owners) for i in range(per_owner)]
    for o in range(owners):
        dead_owner(store_factory, f"dead-{o}", left[o * per_owner : (o + 1) * per_owner])

    stores = [opened(store_factory, f"claimer-{c}") for c in range(claimers)]
    start = threading.Barrier(claimers)
    results: dict[int, list[Marker]] = {}
    errors: list[BaseException] = []

    def claim(index: int) -> None:
        try:
            start.wait()
            results[index] = stores[index].claim()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(c,)) for c in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    everything = [m for c in range(claimers) for m in results[c]]
    assert len(everything) == len(left)  # disjoint: nobody got a marker twice
    assert keys(everything) == keys(left)  # complete: nothing stranded
    for c in range(claimers):
        assert {m.owner for m in results[c]} <= {f"claimer-{c}"}

    stored = store_factory().load()
    assert keys([s.marker for s in stored]) == keys(left)
    assert all(s.held for s in stored)


def test_unreadable_record_is_skipped_and_the_rest_kept(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    good = [marker(i, "a") for i in range(3)]
    dead_owner(store_factory, "a", good)
    store_factory.add_garbage("a")

    claimer = opened(store_factory, "b")
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        claimed = claimer.claim()
    assert keys(claimed) == keys(good)
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "3 valid marker(s) kept" in warnings[0].getMessage()

    # Set aside, not deleted, and not met again on the next start.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert keys([s.marker for s in store_factory().load()]) == keys(good)
    assert not [r for r in caplog.records if "skipped" in r.getMessage()], caplog.text


def test_close_without_markers_leaves_nothing_behind(store_factory: StoreFactory) -> None:
    store = opened(store_factory, "a")
    store.commit([marker(i, "a") for i in range(3)], [])
    store.commit([], [marker(i, "a").key for i in range(3)])
    idle = opened(store_factory, "b")  # opened, never wrote
    assert idle.claim() == []
    store.close()
    idle.close()
    assert store_factory.leftovers() == []


def test_claimed_markers_can_be_removed(store_factory: StoreFactory) -> None:
    left = [marker(i, "a") for i in range(4)]
    dead_owner(store_factory, "a", left)
    claimer = opened(store_factory, "b")
    claimed = claimer.claim()
    claimer.commit([], [m.key for m in claimed[:3]])  # resumed: the guard removes them
    claimer.close()
    assert keys([s.marker for s in store_factory().load()]) == keys(claimed[3:])
    assert keys(opened(store_factory, "c").claim()) == keys(claimed[3:])


def test_discard_removes_held_markers_or_refuses_and_keeps_them(
    store_factory: StoreFactory,
) -> None:
    """``clear --force``: Redis deletes markers from under their running owner; a marker
    directory (one writer per journal) refuses with StoreError and loses nothing."""
    written = [marker(i, "a") for i in range(3)]
    writer = opened(store_factory, "a")
    writer.commit(written, [])
    operator = store_factory()  # the CLI: another process, never opened
    assert isinstance(operator, OperatorStore)
    assert operator.discard([]) == 0

    if store_factory.kind == "directory":
        with pytest.raises(StoreError, match="one writer"):
            operator.discard(written[:2])
        left = keys([s.marker for s in store_factory().load()])
        assert left == keys(written)
    else:
        assert operator.discard(written[:2]) == 2
        seen = store_factory().load()
        assert keys([s.marker for s in seen]) == keys(written[2:])
        assert all(s.held for s in seen)  # the owner still runs and keeps the rest
        assert operator.discard(written[:1]) == 0  # already gone: nothing counted twice
    writer.close()


@pytest.mark.external_service
def test_fallback_store_discards_from_its_primary(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    from restart_guard.stores.redis import RedisStore

    def fallback_store() -> FallbackStore:
        return FallbackStore(
            RedisStore(redis_server.url, namespace=namespace, lease=5.0),
            DirectoryStore(tmp_path / "fallback"),
        )

    written = [marker(i, "a") for i in range(3)]
    writer = fallback_store()
    writer.open("a")
    writer.commit(written, [])
    operator = fallback_store()
    try:
        assert isinstance(operator, OperatorStore)
        assert operator.discard(written[:1]) == 1
        assert keys([s.marker for s in operator.load()]) == keys(written[1:])
    finally:
        writer.close()
        operator.close()


def test_noticed_survives_commit_and_claim(store_factory: StoreFactory) -> None:
    told, untold = marker(1, "dead", noticed=True), marker(2, "dead")
    dead_owner(store_factory, "dead", [told, untold])
    store = opened(store_factory, "alive")
    claimed = {m.key: m for m in store.claim()}
    assert (claimed[told.key].noticed, claimed[untold.key].noticed) == (True, False)
    assert {s.marker.key: s.marker.noticed for s in store.load()} == {
        told.key: True,
        untold.key: False,
    }
    store.close()


def test_origins_survive_commit_and_claim(store_factory: StoreFactory) -> None:
    origins = (
        Origin(delivery="7", message="41", user="1001"),
        Origin(message="42", user="é\u2028", interaction=True, replayable=False),
        Origin(),  # a run with nothing known about it: stored as {}
    )
    rich, old_style = marker(1, "dead", origins=origins), marker(2, "dead")
    dead_owner(store_factory, "dead", [rich, old_style])
    seen = {s.marker.key: s.marker for s in store_factory().load()}
    assert (seen[rich.key].origins, seen[old_style.key].origins) == (origins, ())
    assert seen[rich.key].to_json() == rich.to_json()
    store = opened(store_factory, "alive")
    claimed = {m.key: m for m in store.claim()}
    assert (claimed[rich.key].origins, claimed[old_style.key].origins) == (origins, ())
    assert not claimed[rich.key].replayable
    assert claimed[old_style.key].replayable
    store.close()
