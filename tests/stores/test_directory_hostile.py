"""DirectoryStore against a hostile or damaged marker directory, on real files and processes.

Two guarantees (issue 9, items 4 and 5):

- bounded work on bad files: a junk journal costs a ``stat`` or a bounded
  read, is set aside as ``*.corrupt`` with one warning and never deleted;
  unknown files are reported once per process;
- no way in through the directory: a directory (or link target) that is not
  the bot's user's, or that others can write, is refused with one error and
  never chmodded; created directories are 0700 whatever the umask; no file
  is opened through a link; a journal is locked before anyone can see it.

Tests that need a file of another user run as root (as the suite does in CI)
and give it to ``nobody`` (uid 65534).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.conftest import leave_markers
from restart_guard import Conversation, DirectoryStore, Guard, Marker, Settings, StoreError
from restart_guard.stores import _journal, directory
from restart_guard.stores.directory import check_marker_dir

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to nobody")


def marker(n: int | str) -> Marker:
    """The same marker (same bytes) for the same ``n``."""
    return Marker(Conversation("telegram", str(n)), 1.7e9, owner="dead-process", updated_at=1.7e9)


def put(m: Marker) -> bytes:
    return _journal.encode_put(m)


def new_journal(directory_: Path, data: bytes = b"") -> Path:
    path = directory_ / f"journal-{secrets.token_hex(8)}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def warnings(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir(mode=0o700)
    return path


# ------------------------------------------------------------------ bounded work on bad files
def test_a_1gb_junk_journal_is_set_aside_unread_with_one_warning(
    marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leave_markers(marker_dir, [marker(1)])
    junk = new_journal(marker_dir)
    os.truncate(junk, 1 << 30)  # sparse: 1 GiB of zeros that take no disk
    store = DirectoryStore(marker_dir)
    store.open("me")
    try:
        with caplog.at_level(logging.INFO, logger="restart_guard"):
            assert {m.key for m in store.claim()} == {marker(1).key}
            [warning] = warnings(caplog)
            for _ in range(3):  # the guard re-claims every 30 s: nothing more to say
                assert store.claim() == []
        assert warnings(caplog) == [warning]
    finally:
        store.close()
    assert f"{junk.name} (1024 MiB, over the 256 MiB limit: not read)" in warning
    corrupt = junk.with_name(junk.name + ".corrupt")
    assert not junk.exists()
    assert corrupt.stat().st_size == 1 << 30  # kept whole, never deleted


def test_an_over_long_line_is_skipped_and_the_rest_read(
    marker_dir: Path, store: DirectoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    long_line = b"0" * (_journal.MAX_LINE_BYTES + 10) + b"\n"
    data = put(marker(1)) + long_line + put(marker(2))
    junk = new_journal(marker_dir, data)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert {m.key for m in store.claim()} == {marker(1).key, marker(2).key}
    [warning] = warnings(caplog)
    assert f"{junk.name} (skipped 1 unreadable record(s), 2 valid marker(s) kept)" in warning
    assert junk.with_name(junk.name + ".corrupt").stat().st_size == len(data)


def test_reading_stops_after_too_many_unreadable_lines_and_keeps_the_file(
    marker_dir: Path, store: DirectoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"deadbeef not a record\n" * (_journal.MAX_BAD_LINES + 1)
    after = put(marker(2))
    junk = new_journal(marker_dir, put(marker(1)) + garbage + after)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert {m.key for m in store.claim()} == {marker(1).key}
    [warning] = warnings(caplog)
    assert f"{junk.name} (over 1000 unreadable lines: the rest not read" in warning
    # What was not read is still there to inspect.
    assert after in junk.with_name(junk.name + ".corrupt").read_bytes()


def test_10000_stray_files_are_reported_once_per_process(
    marker_dir: Path, store: DirectoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(10_000):
        os.close(os.open(marker_dir / f"stray-{n:05d}.txt", os.O_CREAT | os.O_WRONLY, 0o600))
    (marker_dir / "journal-0123456789abcdef.log.corrupt").write_bytes(b"set aside before\n")
    with caplog.at_level(logging.INFO, logger="restart_guard"):
        for _ in range(3):  # start-up, then two re-claims
            assert store.claim() == []
        first = warnings(caplog)
        (marker_dir / "one-more.txt").write_text("")
        store.claim()
        store.claim()
    assert len(first) == 2, first
    assert "10000 unexpected file(s), left alone" in first[1]
    assert "stray-00000.txt, stray-00001.txt" in first[1]
    assert "and 9995 more" in first[1]
    assert "1 file(s) hold unreadable marker records set aside earlier" in first[0]
    [late] = warnings(caplog)[2:]
    assert "1 unexpected file(s), left alone" in late
    assert "one-more.txt" in late
    assert len(os.listdir(marker_dir)) == 10_003  # all left alone (and our journal)


def test_a_fifo_or_a_link_named_like_a_journal_is_never_opened_as_one(
    marker_dir: Path, store: DirectoryStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = marker_dir / f"journal-{secrets.token_hex(8)}.log"
    os.mkfifo(fifo, 0o600)
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_bytes(put(marker(666)))
    link = marker_dir / f"journal-{secrets.token_hex(8)}.log"
    link.symlink_to(elsewhere)
    claimed: list[list[Marker]] = []
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        worker = threading.Thread(target=lambda: claimed.append(store.claim()), daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "claim blocked opening a FIFO"
        store.claim()
    assert claimed == [[]]
    assert len(warnings(caplog)) == 2  # one line for each, once
    assert elsewhere.read_bytes() == put(marker(666))
    assert fifo.exists()
    assert link.is_symlink()


# ------------------------------------------------------------------ no way in
def _writable_by_others(path: Path, tmp_path: Path) -> Path:
    path.chmod(0o777)
    return path


def _writable_by_group(path: Path, tmp_path: Path) -> Path:
    path.chmod(0o770)
    return path


def _owned_by_nobody(path: Path, tmp_path: Path) -> Path:
    os.chown(path, NOBODY, NOBODY)
    return path


def _link_to_a_shared_directory(path: Path, tmp_path: Path) -> Path:
    path.chmod(0o1777)  # like /tmp
    link = tmp_path / "link"
    link.symlink_to(path)
    return link


def _link_owned_by_nobody(path: Path, tmp_path: Path) -> Path:
    link = tmp_path / "link"
    link.symlink_to(path)
    os.lchown(link, NOBODY, NOBODY)
    return link


REFUSED = {
    "writable by others": (
        _writable_by_others,
        "is writable by its group and all users (mode 0777)",
        "chmod 700",
    ),
    "writable by group": (_writable_by_group, "is writable by its group (mode 0770)", "chmod 700"),
    "owned by another user": (
        _owned_by_nobody,
        "belongs to nobody, not to root that runs the bot",
        "chown root: ",
    ),
    "a link to a shared directory": (
        _link_to_a_shared_directory,
        "is writable by its group and all users (mode 1777)",
        "(it is shared) and point marker_dir / $RESTART_GUARD_DIR at a directory of the bot's own",
    ),
    "a link owned by another user": (
        _link_owned_by_nobody,
        "is a symbolic link owned by nobody, who can point it anywhere",
        "rm ",
    ),
}
ROOT_ONLY = {"owned by another user", "a link owned by another user"}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_directory_others_could_write_is_refused_and_never_chmodded(
    case: str, marker_dir: Path, tmp_path: Path
) -> None:
    if case in ROOT_ONLY and os.geteuid() != 0:
        pytest.skip("needs root to give a file to nobody")
    make, problem, fix = REFUSED[case]
    forged = new_journal(marker_dir, put(marker(666)))  # planted by whoever can write it
    given = make(marker_dir, tmp_path)
    before = {p.name: p.lstat() for p in (marker_dir, given)}
    store = DirectoryStore(given)
    with pytest.raises(StoreError) as raised:
        store.open("me")
    message = str(raised.value)
    assert message.startswith("refusing the marker directory: ")
    assert problem in message
    assert fix in message
    assert "Conversations are NOT protected until this is fixed" in message
    # The same finding, word for word, for restart-guard doctor.
    shared = check_marker_dir(given, os.geteuid())
    assert shared is not None
    assert shared.message in message
    assert shared.fix in message
    store.close()
    assert {p.name: p.lstat() for p in (marker_dir, given)} == before  # no chmod, no chown
    assert os.listdir(marker_dir) == [forged.name]  # nothing read, moved or created
    assert forged.read_bytes() == put(marker(666))


def test_a_refused_directory_is_one_error_and_the_bot_runs_on_unprotected(
    marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leave_markers(marker_dir, [marker(666)])  # a journal anyone could have forged
    marker_dir.chmod(0o777)
    guard = Guard("telegram", DirectoryStore(marker_dir), Settings())
    try:
        with caplog.at_level(logging.INFO, logger="restart_guard"):
            assert guard.start() == []  # the forged marker is never claimed
            for _ in range(3):
                assert guard.claim() == []  # re-claims say nothing more
            refusals = [m for m in warnings(caplog, logging.ERROR) if "refusing" in m]
            assert len(refusals) == 1, refusals
            assert "unavailable at start-up" in refusals[0]
            assert f"NOT protected until this is fixed: chmod 700 {marker_dir}" in refusals[0]
            # The bot runs: its handlers are tracked, in memory only, and the writer says so.
            run = guard.begin(Conversation("telegram", "7"))
            assert guard.in_flight == 1
            deadline = time.monotonic() + 15
            while not any("is still refused" in m for m in warnings(caplog, logging.ERROR)):
                assert time.monotonic() < deadline, "the failed write-ahead was not reported"
                time.sleep(0.01)
            [write_failed] = [m for m in warnings(caplog, logging.ERROR) if m not in refusals]
            assert "a crash now would lose them" in write_failed
            # The operator fixes it: the next write goes to disk without a restart.
            marker_dir.chmod(0o700)
            deadline = time.monotonic() + 15
            while not any(j.marker.key == run.conversation.key for j in guard.store.load()):
                assert time.monotonic() < deadline, "the marker never reached the fixed directory"
                time.sleep(0.05)
            guard.end(run)
    finally:
        guard.close()
    assert stat.S_IMODE(marker_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_directories_it_creates_are_0700_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "state" / "restart-guard" / "telegram-abc"
    previous = os.umask(umask)
    try:
        store = DirectoryStore(target)
        store.open("me")
        store.commit([marker(1)], [])
        [journal] = [p for p in target.iterdir()]
        journal_mode = stat.S_IMODE(journal.stat().st_mode)
        store.close()
    finally:
        os.umask(previous)
    for created in (tmp_path / "state", target.parent, target):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
    assert journal_mode == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) != 0o777  # the existing parent untouched


def test_a_link_planted_at_the_temp_name_is_never_written_through(
    marker_dir: Path,
    store: DirectoryStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = tmp_path / "victim"  # say, root's /etc/shadow
    victim.write_text("precious")
    keep = marker("keep")
    store.commit([keep], [])
    # The names are random; make them predictable, as if the attacker could guess.
    monkeypatch.setattr(directory.secrets, "token_hex", lambda n: "ab" * n)
    planted = marker_dir / f".journal-{'ab' * 8}.tmp"
    planted.symlink_to(victim)
    churn = [marker(f"churn-{n}").with_changes(payload=["x" * 5000]) for n in range(20)]
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        for _ in range(12):  # > 1 MiB of dead records: compaction is due
            store.commit(churn, [])
            store.commit([], [m.key for m in churn])
    assert "compacting" in caplog.text
    with pytest.raises(StoreError, match="every name was taken"):
        DirectoryStore(marker_dir).open("another")  # a new journal's temp name too
    assert victim.read_text() == "precious"
    assert planted.is_symlink()
    assert {m.key for m in (s.marker for s in store.load())} == {keep.key}


@as_root
def test_a_journal_of_another_user_is_set_aside_unread(
    marker_dir: Path, store: DirectoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    forged = new_journal(marker_dir, put(marker(666)))
    os.chown(forged, NOBODY, NOBODY)
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        assert store.claim() == []
    [warning] = warnings(caplog)
    assert f"{forged.name} (belongs to nobody: not read)" in warning
    assert forged.with_name(forged.name + ".corrupt").read_bytes() == put(marker(666))


# A process whose first blocking flock pauses until told to go: the moment between
# creating its journal and locking it, stretched.
_SLOW_LOCKER = textwrap.dedent(
    """
    import fcntl, sys, time
    from restart_guard import Conversation, DirectoryStore, Marker

    real_flock = fcntl.flock
    paused = []

    def flock(fd, operation):
        if operation == fcntl.LOCK_EX and not paused:
            paused.append(True)
            print("created", flush=True)
            sys.stdin.readline()
        return real_flock(fd, operation)

    fcntl.flock = flock
    store = DirectoryStore(sys.argv[1])
    store.open("slow")
    store.commit([Marker(Conversation("telegram", "slow"), time.time())], [])
    print("committed", flush=True)
    sys.stdin.readline()
    """
)


def test_a_new_journal_is_locked_before_another_process_can_see_it(marker_dir: Path) -> None:
    leave_markers(marker_dir, [marker("dead")])
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_LOCKER, str(marker_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    claimer = DirectoryStore(marker_dir)
    try:
        assert child.stdout.readline().strip() == "created"
        claimer.open("claimer")
        # The claim runs while the new journal exists but is not locked yet.
        assert {m.key for m in claimer.claim()} == {marker("dead").key}
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "committed"
        slow = Conversation("telegram", "slow").key
        seen = {s.marker.key: s.held for s in DirectoryStore(marker_dir).load()}
        assert seen.get(slow) is True, "the live process's marker is not visible as held"
        assert claimer.claim() == []  # and no later claim takes it
    finally:
        claimer.close()
        child.stdin.close()
        child.wait(timeout=30)
