"""Conversation keys and the Marker JSON record."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from restart_guard import Conversation, Marker, Origin, Phase
from restart_guard._marker import (
    FORMAT_VERSION,
    MAX_ORIGINS,
    bounded_origins,
    marker_json_text,
    newer,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ------------------------------------------------------------------ Conversation
def test_key_is_stable_across_instances_and_hex() -> None:
    a = Conversation("telegram", "-100200", "9", "biz")
    b = Conversation("telegram", "-100200", "9", "biz")
    assert a.key == b.key
    assert HEX32.match(a.key), a.key
    # Pinned: a change of hash or field order would orphan every marker already on disk.
    assert Conversation("telegram", "42").key == "606a1c8f6c289bda785b5225dcaa9cc8"
    assert a.key == "69bf10ce0253f9dd68b3246a75deffa0"


@pytest.mark.parametrize(
    "other",
    [
        Conversation("discord", "42"),
        Conversation("telegram", "43"),
        Conversation("telegram", "42", thread="7"),
        Conversation("telegram", "42", scope="biz-1"),
        Conversation("telegram", "42", thread="7", scope="biz-1"),
    ],
)
def test_key_differs_per_platform_chat_thread_scope(other: Conversation) -> None:
    assert Conversation("telegram", "42").key != other.key


def test_threads_and_scopes_do_not_collide_with_each_other() -> None:
    keys = {
        Conversation("telegram", "1", thread="2").key,
        Conversation("telegram", "1", scope="2").key,
        Conversation("telegram", "2", thread="1").key,
        Conversation("telegram", "2", scope="1").key,
    }
    assert len(keys) == 4


def test_key_ignores_parent() -> None:
    plain = Conversation("discord", "555", "556", "guild")
    with_parent = Conversation("discord", "555", "556", "guild", parent="channel-9")
    assert plain.key == with_parent.key
    assert HEX32.match(with_parent.key)


def test_key_is_safe_as_a_file_name_whatever_the_ids() -> None:
    hostile = Conversation("telegram", "../../etc/passwd", "a/b\x00c", "x\ny")
    assert HEX32.match(hostile.key)


def test_conversation_json_round_trip_and_without_thread() -> None:
    full = Conversation("slack", "C1", "1700000000.000100", "T1", parent="E1")
    assert Conversation.from_json(json.loads(json.dumps(full.to_json()))) == full
    minimal = Conversation("telegram", "42")
    assert minimal.to_json() == {"platform": "telegram", "chat": "42"}
    main = full.without_thread()
    assert main.thread is None
    assert (main.platform, main.chat, main.scope, main.parent) == ("slack", "C1", "T1", "E1")
    assert main.key == Conversation("slack", "C1", None, "T1").key


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"platform": "telegram"},
        {"chat": "1"},
        {"platform": "", "chat": "1"},
        {"platform": "telegram", "chat": ""},
        {"platform": "telegram", "chat": 42},
        {"platform": "telegram", "chat": "1", "thread": 7},
        {"platform": "telegram", "chat": "1", "scope": ["x"]},
        ["telegram", "1"],
        "telegram:1",
        None,
    ],
)
def test_conversation_from_json_rejects_malformed(data: Any) -> None:
    with pytest.raises(ValueError, match="conversation"):
        Conversation.from_json(data)


# ------------------------------------------------------------------ Marker
def full_marker() -> Marker:
    return Marker(
        conversation=Conversation("telegram", "-100200", "9", "biz"),
        started_at=1_700_000_000.25,
        phase=Phase.DRAINING,
        attempts=2,
        owner="host:123:abcd",
        updated_at=1_700_000_010.5,
        payload=[{"update_id": 1, "message": {"text": "héllo ♻️"}}],
    )


def test_marker_json_round_trip_through_text() -> None:
    original = full_marker()
    data = original.to_json()
    assert data["v"] == FORMAT_VERSION
    assert data["key"] == original.key
    again = Marker.from_json(json.loads(json.dumps(data)))
    assert again == original
    assert again.key == original.key


def test_marker_without_payload_writes_no_payload_field() -> None:
    bare = full_marker().with_changes(payload=None)
    assert "payload" not in bare.to_json()
    assert Marker.from_json(bare.to_json()) == bare


def test_marker_optional_fields_have_defaults() -> None:
    data = {"v": 1, "conversation": {"platform": "telegram", "chat": "1"}, "started_at": 5}
    parsed = Marker.from_json(data)
    assert parsed.phase is Phase.IN_FLIGHT
    assert parsed.attempts == 0
    assert parsed.owner == ""
    assert parsed.updated_at == 5.0
    assert parsed.payload is None


@pytest.mark.parametrize("noticed", [False, True])
def test_noticed_round_trips_and_is_absent_when_false_as_in_the_previous_format(
    noticed: bool,
) -> None:
    m = full_marker().with_changes(noticed=noticed)
    text = marker_json_text(m)
    assert ('"noticed"' in text) is noticed
    assert json.loads(text) == m.to_json()
    assert Marker.from_json(json.loads(text)) == m
    assert m.claimed_by("other", 5.0).noticed is noticed


def test_a_record_of_the_previous_version_reads_as_not_noticed() -> None:
    data = full_marker().to_json()
    assert "noticed" not in data
    assert Marker.from_json(data).noticed is False


# ------------------------------------------------------------------ origins
def test_origins_round_trip_compactly_and_survive_a_claim() -> None:
    origins = (
        Origin(delivery="900", message="41", user="7"),
        Origin(message="1700000000.000100", user="U1", interaction=True, replayable=False),
        Origin(),
    )
    m = full_marker().with_changes(origins=origins)
    text = marker_json_text(m)
    assert json.loads(text) == m.to_json()
    assert json.loads(text)["origins"] == [
        {"delivery": "900", "message": "41", "user": "7"},
        {"message": "1700000000.000100", "user": "U1", "interaction": True, "replayable": False},
        {},
    ]
    assert Marker.from_json(json.loads(text)) == m
    assert m.claimed_by("other", 5.0).origins == origins
    assert not m.replayable


def test_a_record_of_the_previous_version_has_no_origins_and_is_replayable() -> None:
    data = full_marker().to_json()
    assert "origins" not in data
    assert '"origins"' not in marker_json_text(full_marker())
    parsed = Marker.from_json(data)
    assert (parsed.origins, parsed.replayable) == ((), True)


def test_a_record_with_too_many_origins_keeps_the_latest() -> None:
    data = full_marker().to_json()
    data["origins"] = [{"message": str(i)} for i in range(MAX_ORIGINS + 5)]
    parsed = Marker.from_json(data)
    assert [o.message for o in parsed.origins] == [str(i) for i in range(5, MAX_ORIGINS + 5)]


def test_bounded_origins_merges_one_turns_handlers_and_keeps_unsafe_turns() -> None:
    turn = Origin(delivery="1", message="10", user="7")
    merged = bounded_origins(
        [turn, Origin("2", "11", "8"), Origin("1", "10", "7", replayable=False)]
    )
    assert merged == (Origin("1", "10", "7", replayable=False), Origin("2", "11", "8"))

    unsafe = Origin(message="0", replayable=False)
    many = [unsafe] + [Origin(message=str(i)) for i in range(1, MAX_ORIGINS + 10)]
    kept = bounded_origins(many)
    assert len(kept) == MAX_ORIGINS
    assert kept[0] == unsafe  # the oldest, but the one that forbids replay
    assert [o.message for o in kept[1:]] == [str(i) for i in range(11, MAX_ORIGINS + 10)]


def test_marker_age_and_with_changes() -> None:
    m = full_marker()
    assert m.age(now=m.started_at + 12) == pytest.approx(12)
    assert 0 <= Marker(m.conversation, time.time()).age() < 5
    bumped = m.with_changes(attempts=3)
    assert (bumped.attempts, m.attempts) == (3, 2)


def test_newer_prefers_more_attempts_then_later_update() -> None:
    m = full_marker()
    more = m.with_changes(attempts=5, updated_at=1.0)
    later = m.with_changes(updated_at=m.updated_at + 1)
    assert newer(m, more) is more
    assert newer(more, m) is more
    assert newer(m, later) is later


def _corrupt(**changes: Any) -> dict[str, Any]:
    data = full_marker().to_json()
    for name, value in changes.items():
        if value is _DELETE:
            del data[name]
        else:
            data[name] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_corrupt(v=2), "unknown marker format version 2"),
        (_corrupt(v=0), "unknown marker format version 0"),
        (_corrupt(v="1"), "unknown marker format version '1'"),
        (_corrupt(v=_DELETE), "unknown marker format version None"),
        (_corrupt(key="0" * 32), "key does not match its conversation"),
        (_corrupt(started_at="1700000000"), "started_at is not a number"),
        (_corrupt(started_at=None), "started_at is not a number"),
        (_corrupt(started_at=True), "started_at is not a number"),
        (_corrupt(started_at=float("nan")), "started_at is not finite"),
        (_corrupt(started_at=float("inf")), "started_at is not finite"),
        (_corrupt(updated_at=float("nan")), "updated_at is not finite"),
        (_corrupt(updated_at="later"), "updated_at is not a number"),
        (_corrupt(attempts=-1), "attempts is not a non-negative integer"),
        (_corrupt(attempts=1.5), "attempts is not a non-negative integer"),
        (_corrupt(attempts="2"), "attempts is not a non-negative integer"),
        (_corrupt(attempts=True), "attempts is not a non-negative integer"),
        (_corrupt(owner=7), "owner is not a string"),
        (_corrupt(payload={"update_id": 1}), "payload is not a list"),
        (_corrupt(phase="exploded"), "'exploded' is not a valid Phase"),
        (_corrupt(noticed="yes"), "noticed is not a boolean"),
        (_corrupt(noticed=1), "noticed is not a boolean"),
        (_corrupt(origins={"user": "1"}), "origins is not a list"),
        (_corrupt(origins=["1"]), "origin is not a JSON object"),
        (_corrupt(origins=[{"user": 1}]), "origin id is not a string"),
        (_corrupt(origins=[{"interaction": "yes"}]), "origin flag is not a boolean"),
        (_corrupt(origins=[{"replayable": 0}]), "origin flag is not a boolean"),
        (_corrupt(conversation={"platform": "telegram"}), "conversation record lacks 'chat'"),
        (_corrupt(conversation="telegram:1"), "conversation record lacks"),
        ([], "not a JSON object"),
        ("marker", "not a JSON object"),
        (None, "not a JSON object"),
    ],
)
def test_marker_from_json_rejects(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Marker.from_json(data)


def test_marker_from_json_rejects_nan_read_from_text() -> None:
    # Python's json accepts the bare NaN token, so it must be caught after parsing.
    text = json.dumps(full_marker().to_json()).replace("1700000000.25", "NaN")
    assert "NaN" in text
    with pytest.raises(ValueError, match="finite"):
        Marker.from_json(json.loads(text))


def test_marker_from_json_rejects_huge_integer_timestamp() -> None:
    text = json.dumps(full_marker().to_json()).replace("1700000000.25", "1" + "0" * 400)
    with pytest.raises(ValueError, match="started_at"):
        Marker.from_json(json.loads(text))
