"""DirectoryStore on real directories: durability, claiming, garbage, errors, races."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from restart_guard import DirectoryStore, Marker, Phase, StoreError

from .conftest import claim_fresh, journals, leave_markers, marker, stored

JOURNAL_NAME = re.compile(r"^journal-[0-9a-f]{16}\.log(\.corrupt)?$")


def line(record: Any) -> bytes:
    """One journal line in the documented format: ``<crc32 as 8 hex> <JSON>\\n``."""
    body = json.dumps(record, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def put(m: Marker) -> bytes:
    return line({"op": "put", **m.to_json()})


def journal_path(directory: Path) -> Path:
    return directory / f"journal-{secrets.token_hex(8)}.log"


def write_journal(directory: Path, data: bytes) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = journal_path(directory)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ layout and durability
def test_directory_is_0700_and_journal_0600(marker_dir: Path, store: DirectoryStore) -> None:
    assert stat.S_IMODE(marker_dir.stat().st_mode) == 0o700
    [name] = journals(marker_dir)
    assert stat.S_IMODE((marker_dir / name).stat().st_mode) == 0o600


def test_an_existing_private_directory_is_used_as_it_is(marker_dir: Path) -> None:
    marker_dir.mkdir(mode=0o755)
    os.chmod(marker_dir, 0o755)  # readable by others, writable by no one else: trusted
    s = DirectoryStore(marker_dir)
    s.open("me")
    s.commit([marker(1)], [])
    s.close()
    assert stat.S_IMODE(marker_dir.stat().st_mode) == 0o755  # never chmodded: not ours
    assert set(claim_fresh(marker_dir)) == {marker(1).key}


def test_commit_survives_into_a_new_store_instance(marker_dir: Path) -> None:
    a, b = marker(1, attempts=1), marker(2, thread="7")
    first = DirectoryStore(marker_dir)
    first.open("first")
    first.commit([a, b], [])
    first.close()  # markers left: the journal stays
    assert len(journals(marker_dir)) == 1

    claimed = claim_fresh(marker_dir)
    assert set(claimed) == {a.key, b.key}
    assert claimed[a.key].attempts == 1
    assert claimed[b.key].conversation == b.conversation


def test_removes_are_durable(marker_dir: Path) -> None:
    a, b, c = marker(1), marker(2), marker(3)
    s = DirectoryStore(marker_dir)
    s.open("first")
    s.commit([a, b, c], [])
    s.commit([], [b.key])
    s.commit([b.with_changes(attempts=1)], [a.key])  # put again, remove another, one batch
    s.close()
    assert set(claim_fresh(marker_dir)) == {b.key, c.key}


def test_close_with_nothing_left_deletes_the_journal(marker_dir: Path) -> None:
    a = marker(1)
    s = DirectoryStore(marker_dir)
    s.open("me")
    s.commit([a], [])
    s.commit([], [a.key])
    s.close()
    assert list(marker_dir.iterdir()) == []


def test_empty_commit_writes_nothing(marker_dir: Path, store: DirectoryStore) -> None:
    [name] = journals(marker_dir)
    store.commit([], [])
    assert (marker_dir / name).stat().st_size == 0


def test_claim_sets_owner_and_phase_resuming(marker_dir: Path) -> None:
    leave_markers(marker_dir, [marker(1, phase=Phase.DRAINING, attempts=2)])
    s = DirectoryStore(marker_dir)
    s.open("new-owner")
    [m] = s.claim()
    assert m.owner == "new-owner"
    assert m.phase is Phase.RESUMING
    assert m.attempts == 2
    # What was claimed is now in the claimer's own (held) journal.
    [(key, held)] = [(x.marker.key, x.held) for x in s.load()]
    assert (key, held) == (m.key, True)
    s.close()


def test_open_store_is_not_claimed_by_another_instance(marker_dir: Path) -> None:
    alive = DirectoryStore(marker_dir)
    alive.open("alive")
    a = marker(1)
    alive.commit([a], [])
    other = DirectoryStore(marker_dir)
    other.open("other")
    try:
        assert other.claim() == []
        [seen] = other.load()
        assert (seen.marker.key, seen.held) == (a.key, True)
        assert len(journals(marker_dir)) == 2  # the live journal was not touched
        alive.close()
        [m] = other.claim()  # now its owner is gone
        assert m.key == a.key
    finally:
        other.close()


def test_load_reports_dead_journals_as_not_held_without_claiming(marker_dir: Path) -> None:
    a = marker(1)
    leave_markers(marker_dir, [a])
    s = DirectoryStore(marker_dir)
    [seen] = s.load()  # before open: read-only
    assert (seen.marker.key, seen.held) == (a.key, False)
    assert set(claim_fresh(marker_dir)) == {a.key}  # load claimed nothing


def test_claim_moves_markers_and_deletes_the_dead_journal(marker_dir: Path) -> None:
    a, b = marker(1), marker(2)
    leave_markers(marker_dir, [a, b])
    [dead] = journals(marker_dir)
    s = DirectoryStore(marker_dir)
    s.open("claimer")
    assert {m.key for m in s.claim()} == {a.key, b.key}
    remaining = journals(marker_dir)
    assert dead not in remaining
    assert len(remaining) == 1
    assert not [p for p in marker_dir.iterdir() if p.name.endswith(".corrupt")]
    s.close()  # the claimer "dies" holding them: the next start gets them again
    again = claim_fresh(marker_dir)
    assert set(again) == {a.key, b.key}
    assert all(m.phase is Phase.RESUMING for m in again.values())


def test_claim_merges_duplicates_keeping_most_attempts(marker_dir: Path) -> None:
    old = marker(1, attempts=1)
    leave_markers(marker_dir, [old])
    leave_markers(marker_dir, [old.with_changes(attempts=2)])
    [m] = claim_fresh(marker_dir).values()
    assert m.attempts == 2


def test_claim_of_journal_with_bad_lines_sets_it_aside(
    marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = marker(1), marker(2)
    path = write_journal(marker_dir, put(a) + b"deadbeef not a record\n" + put(b))
    s = DirectoryStore(marker_dir)
    s.open("claimer")
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        claimed = s.claim()
    assert {m.key for m in claimed} == {a.key, b.key}
    assert not path.exists()
    corrupt = path.with_name(path.name + ".corrupt")
    assert corrupt.exists()
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (
        f"{path.name} (skipped 1 unreadable record(s), 2 valid marker(s) kept)"
        in warning.getMessage()
    )
    s.commit([], [m.key for m in claimed])  # resumed
    s.close()
    # The set-aside file is never claimed again, only reported.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert claim_fresh(marker_dir) == {}
    assert "1 file(s) hold unreadable marker records set aside earlier; inspect or delete " in (
        caplog.text
    )
    assert corrupt.name in caplog.text
    assert corrupt.exists()


# ------------------------------------------------------------------ garbage in the directory
def _flip_middle_byte(record: bytes) -> bytes:
    middle = len(record) // 2
    return record[:middle] + bytes([record[middle] ^ 0x01]) + record[middle + 1 :]


def _random_bytes() -> bytes:
    # Newlines guaranteed, so it parses as several (bad) lines, not one torn tail.
    return os.urandom(2000) + b"\n" + os.urandom(2000) + b"\n"


GARBAGE: dict[str, Callable[[], bytes]] = {
    "random bytes": _random_bytes,
    "random bytes without newline": lambda: os.urandom(3000).replace(b"\n", b"x"),
    "empty": lambda: b"",
    "only newlines": lambda: b"\n\n\n",
    "torn last line": lambda: put(marker(901)) + put(marker(902))[:57],
    "one corrupted line between two valid": lambda: (
        put(marker(903)) + _flip_middle_byte(put(marker(904))) + put(marker(905))
    ),
    "unknown version": lambda: (
        line({**marker(906).to_json(), "op": "put", "v": 99}) + put(marker(907))
    ),
    "unknown op": lambda: line({"op": "explode", "v": 1}) + put(marker(908)),
    "valid JSON that is not an object": lambda: line([1, 2, 3]) + line("x") + put(marker(909)),
    "bad checksum": lambda: b"00000000 " + put(marker(910))[9:],
    "removal without key": lambda: put(marker(911)) + line({"op": "del", "v": 1, "key": 5}),
    "NaN timestamp": lambda: (
        line({**marker(912).to_json(), "op": "put", "started_at": float("nan")}) + put(marker(913))
    ),
    "utf-8 garbage": lambda: b"%08x " % zlib.crc32(b"\xff\xfe") + b"\xff\xfe\n" + put(marker(914)),
    "mismatched key": lambda: line({**marker(915).to_json(), "op": "put", "key": "0" * 32}),
}
# Markers inside garbage journals that are valid and must survive.
GARBAGE_SURVIVORS = {
    "torn last line": {901},
    "one corrupted line between two valid": {903, 905},
    "unknown version": {907},
    "unknown op": {908},
    "valid JSON that is not an object": {909},
    "removal without key": {911},
    "NaN timestamp": {913},
    "utf-8 garbage": {914},
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_journal_never_raises_or_hides_valid_markers(
    marker_dir: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    valid = [marker(1), marker(2, thread="3")]
    leave_markers(marker_dir, valid)
    write_journal(marker_dir, GARBAGE[kind]())
    with caplog.at_level(logging.INFO, logger="restart_guard"):
        claimed = claim_fresh(marker_dir)
    survivors = {marker(n).key for n in GARBAGE_SURVIVORS.get(kind, set())}
    assert set(claimed) == {m.key for m in valid} | survivors
    # Every journal was dealt with: claimed ones are gone, bad ones set aside.
    leftover = [p.name for p in marker_dir.iterdir()]
    assert len([n for n in leftover if n.endswith(".log")]) == 1  # the claimer's own
    # Nothing that was not read whole is deleted: only the empty file is.
    assert any(n.endswith(".corrupt") for n in leftover) == (kind != "empty")
    if kind != "empty":
        [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert "set aside 1 damaged journal(s)" in warning.getMessage()


def test_all_garbage_at_once_and_a_foreign_file(
    marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    valid = [marker(n) for n in range(20)]
    leave_markers(marker_dir, valid[:10])
    leave_markers(marker_dir, valid[10:])
    for make in GARBAGE.values():
        write_journal(marker_dir, make())
    notes = marker_dir / "notes.txt"
    notes.write_text("an operator's note")
    odd_name = marker_dir / "journal-XYZ.log"  # not a journal name the store writes
    odd_name.write_bytes(put(marker(99)))
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        claimed = claim_fresh(marker_dir)
    expected = {m.key for m in valid} | {
        marker(n).key for survivors in GARBAGE_SURVIVORS.values() for n in survivors
    }
    assert set(claimed) == expected
    assert notes.read_text() == "an operator's note"  # left alone
    assert odd_name.exists()
    assert "2 unexpected file(s), left alone" in caplog.text
    assert "notes.txt" in caplog.text


def test_stale_compaction_temp_file_is_removed(marker_dir: Path) -> None:
    marker_dir.mkdir(mode=0o700)
    temp = marker_dir / f".journal-{secrets.token_hex(8)}.tmp"
    temp.write_bytes(put(marker(1)))
    assert claim_fresh(marker_dir) == {}
    assert not temp.exists()


def test_file_names_never_contain_chat_ids_or_text(marker_dir: Path) -> None:
    secret_chat = "-100987654321"
    m = marker(secret_chat, thread="31337").with_changes(
        payload=[{"message": {"text": "my secret words"}}]
    )
    leave_markers(marker_dir, [m])
    write_journal(marker_dir, put(m) + b"garbage\n")  # set aside as .corrupt
    s = DirectoryStore(marker_dir)
    s.open("me")
    assert {x.key for x in s.claim()} == {m.key}
    names = [p.name for p in marker_dir.iterdir()]
    s.close()
    assert names
    for name in names:
        assert JOURNAL_NAME.match(name), name
        for secret in ("987654321", "31337", "secret", m.key):
            assert secret not in name


# ------------------------------------------------------------------ errors
def test_marker_dir_below_a_regular_file_fails_clearly(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    bad = afile / "x"
    s = DirectoryStore(bad)
    with pytest.raises((StoreError, OSError)) as info:
        s.open("me")
    assert str(afile) in str(info.value)
    with pytest.raises((StoreError, OSError)):
        s.commit([marker(1)], [])  # commit retries the open; still clear, never silent
    s.close()  # closing a store that never opened is harmless


def test_unwritable_directory_raises_store_error_with_advice(tmp_path: Path) -> None:
    """Permission denied (as a user who cannot write the parent) → StoreError with advice."""
    if os.geteuid() != 0:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o500)
        message = _open_error(parent / "markers")
    else:
        # Root writes anywhere: drop to "nobody" in a forked child (no exec needed).
        parent = Path(tempfile.mkdtemp(prefix="rg-ro-"))
        try:
            parent.chmod(0o555)
            message = _open_error_as_nobody(parent / "markers")
        finally:
            parent.chmod(0o700)
            os.rmdir(parent)
    assert message.startswith("StoreError:"), message
    assert "marker_dir" in message
    assert "RESTART_GUARD_DIR" in message
    assert str(parent / "markers") in message


def _open_error(path: Path) -> str:
    try:
        DirectoryStore(path).open("me")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _open_error_as_nobody(path: Path) -> str:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, _open_error(path).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


FAILED_WRITE = textwrap.dedent(
    """
    import resource, signal, sys, time
    from restart_guard import Conversation, DirectoryStore, Marker
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = DirectoryStore(sys.argv[1])
    store.open("writer")
    def m(chat, text=""):
        return Marker(Conversation("telegram", str(chat)), time.time(), payload=[text])
    store.commit([m(1)], [])
    size = store._size
    # The file may grow by 1,000 more bytes: a big batch is cut off mid-write (EFBIG),
    # like a disk filling up.
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, resource.RLIM_INFINITY))
    try:
        store.commit([m(n, "x" * 200) for n in range(100, 120)], [])
    except OSError as exc:
        print("failed", exc.errno)
    store.commit([m(2)], [])
    print("ok")
    store.close()
    """
)


def test_write_cut_off_by_a_full_disk_leaves_no_torn_line(marker_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAILED_WRITE, str(marker_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["failed", "27", "ok"]  # 27 = EFBIG
    [name] = journals(marker_dir)
    assert (marker_dir / name).read_bytes().count(b"\n") == 2  # the partial batch was cut off
    assert set(claim_fresh(marker_dir)) == {marker(1).key, marker(2).key}
    assert not [p for p in marker_dir.iterdir() if p.name.endswith(".corrupt")]


# ------------------------------------------------------------------ compaction
def test_compaction_shrinks_the_journal_and_keeps_live_markers(marker_dir: Path) -> None:
    keep = [marker(1, attempts=1), marker(2, thread="5")]
    s = DirectoryStore(marker_dir)
    s.open("long-running")
    s.commit(keep, [])
    [name] = journals(marker_dir)
    path = marker_dir / name
    churn = [marker(1000 + n, payload=["x" * 100]) for n in range(20)]
    written = 0
    largest = 0
    while written <= 3 * (1 << 20) // 2:  # 1.5 MiB of put/remove pairs
        before = path.stat().st_size
        s.commit(churn, [])
        s.commit([], [m.key for m in churn])
        after = path.stat().st_size
        written += max(0, after - before)
        largest = max(largest, before, after)
    size = path.stat().st_size
    assert largest <= (1 << 20) + 16_384  # compaction kept it near the threshold
    assert size < 1 << 20
    assert journals(marker_dir) == [name]  # same name, no temp file left over
    assert not [p for p in marker_dir.iterdir() if p.name.endswith(".tmp")]
    assert set(stored(s)) == {m.key for m in keep}
    s.close()
    claimed = claim_fresh(marker_dir)
    assert set(claimed) == {m.key for m in keep}
    assert claimed[keep[0].key].attempts == 1


def test_compacted_journal_is_still_held_by_its_owner(marker_dir: Path) -> None:
    s = DirectoryStore(marker_dir)
    s.open("long-running")
    keep = marker(1)
    s.commit([keep], [])
    churn = [marker(1000 + n, payload=["x" * 500]) for n in range(50)]
    for _ in range(60):  # > 1 MiB
        s.commit(churn, [])
        s.commit([], [m.key for m in churn])
    try:
        assert claim_fresh(marker_dir) == {}  # still locked after the file was replaced
    finally:
        s.close()
    assert set(claim_fresh(marker_dir)) == {keep.key}


def test_live_payloads_over_a_mebibyte_do_not_compact_on_every_commit(marker_dir: Path) -> None:
    s = DirectoryStore(marker_dir)
    s.open("replaying")
    # 800 conversations in flight with ~1.7 KB replay payloads: 1.4 MB of live data.
    s.commit([marker(n, payload=[{"text": "x" * 1500}]) for n in range(800)], [])
    [name] = journals(marker_dir)
    path = marker_dir / name
    rewrites = 0
    try:
        for n in range(10):
            before = path.stat().st_ino
            s.commit([marker(f"new-{n}")], [])  # one small write-ahead batch
            rewrites += path.stat().st_ino != before
    finally:
        s.close()
    assert rewrites <= 1, f"{rewrites} of 10 small batches rewrote the whole journal"


# ------------------------------------------------------------------ two processes
CLAIMER = textwrap.dedent(
    """
    import json, sys
    from restart_guard import DirectoryStore
    store = DirectoryStore(sys.argv[1])
    store.open("claimer")
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = store.claim()
    print(json.dumps(sorted(m.key for m in claimed)), flush=True)
    sys.stdin.readline()  # stay alive (holding what we claimed) until told to go
    """
)


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_claimers_never_both_get_a_marker(marker_dir: Path, round_: int) -> None:
    everything: set[str] = set()
    # Journals big enough that claiming one outlasts a rival's lock retries, so the
    # claimers really interleave instead of the first one taking everything.
    for j in range(4):
        batch = [marker(f"{round_}-{j}-{n}") for n in range(6000)]
        leave_markers(marker_dir, batch)
        everything |= {m.key for m in batch}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(marker_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # go, as close together as we can
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(set(json.loads(p.stdout.readline())))
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.write("exit\n")
                p.stdin.close()
        for p in procs:
            p.wait(timeout=30)
    for i, mine in enumerate(results):
        for theirs in results[i + 1 :]:
            assert not mine & theirs, "two processes claimed the same marker"
    assert set().union(*results) == everything
