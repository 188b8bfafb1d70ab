"""The default store: a private directory of append-only journals, one per process.

Layout of the marker directory (0700):

- ``journal-<16 hex>.log`` (0600): one per running or dead process. Each line
  is ``<crc32 as 8 hex> <JSON record>``; a record is a marker (``"op":
  "put"``) or a removal (``"op": "del"``). A batch is one ``write`` and one
  ``fdatasync``, however many records it carries — durability costs one
  fsync per batch, not per conversation.
- The owning process holds an exclusive ``flock`` on its journal for its
  whole life. The kernel drops the lock when the process dies, including on
  SIGKILL and OOM kills, so "lock is free" means "owner is gone".
- ``claim`` takes a dead journal's lock, copies its live markers into this
  process's journal (one durable batch), then unlinks it. A second process
  racing for the same journal cannot get the lock, so a marker is resumed
  by one process only.
- A line whose checksum or JSON does not verify (torn write, garbage,
  unknown version) is skipped with a warning; the journal it came from is
  set aside as ``*.corrupt`` instead of being deleted, so nothing is lost to
  inspection. Files the store does not know are left alone with a warning.

File names are random hex; nothing is ever named after a chat id or text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._durable import ensure_private_dir, fsync_dir, write_all
from .._marker import Marker, Phase, marker_json_text, newer
from .base import StoredMarker, StoreError

__all__ = ["DirectoryStore"]

log = logging.getLogger("restart_guard")

_JOURNAL = re.compile(r"^journal-[0-9a-f]{16}\.log$")
_COMPACT_TEMP = re.compile(r"^\.journal-[0-9a-f]{16}\.tmp$")
# A journal is rewritten with only its live markers once it is this large
# and mostly dead records; keeps start-up reads short on a long-running bot.
_COMPACT_BYTES = 1 << 20
# A CLI probing liveness holds a shared lock for microseconds; retry briefly
# before deciding a journal's owner is alive.
_LOCK_TRIES = 5


@dataclass
class _Parsed:
    markers: dict[str, Marker] = field(default_factory=dict)
    # The verified line (checksum and newline included) of each marker's latest put:
    # a claim copies these bytes as they are instead of re-encoding every marker.
    raw: dict[str, bytes] = field(default_factory=dict)
    bad_lines: int = 0
    torn_tail: bool = False


def _line(body: bytes) -> bytes:
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _encode(record: dict[str, object]) -> bytes:
    # ensure_ascii: a lone surrogate from a platform's JSON must not make a batch unwritable.
    return _line(json.dumps(record, separators=(",", ":")).encode())


def _encode_put(marker: Marker) -> bytes:
    return _line(marker_json_text(marker, head='"op":"put",').encode())


def _parse(data: bytes) -> _Parsed:
    parsed = _Parsed()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        # No newline at the end: the last write was cut off by a crash or a full disk.
        parsed.torn_tail = True
    for number, line in enumerate(lines):
        if not line:
            continue
        try:
            crc_hex, body = line[:8], line[9:]
            if line[8:9] != b" " or int(crc_hex, 16) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            record = json.loads(body)
            if record.get("op") == "del" and record.get("v") == 1:
                key = record["key"]
                if not isinstance(key, str):
                    raise ValueError("removal without a key")
                parsed.markers.pop(key, None)
            elif record.get("op") == "drain" and record.get("v") == 1:
                parsed.markers = {
                    k: m.with_changes(phase=Phase.DRAINING) if m.phase is Phase.IN_FLIGHT else m
                    for k, m in parsed.markers.items()
                }
            elif record.get("op") == "own" and record.get("v") == 1:
                owner, at, keys = record["owner"], float(record["at"]), record["keys"]
                if not (isinstance(owner, str) and isinstance(keys, list)):
                    raise ValueError("malformed claim record")
                for key in keys:
                    marker = parsed.markers.get(key)
                    if marker is not None:
                        parsed.markers[key] = marker.claimed_by(owner, at)
            elif record.get("op") == "put":
                marker = Marker.from_json(record)
                parsed.markers[marker.key] = marker
                parsed.raw[marker.key] = line + b"\n"
            else:
                raise ValueError(f"unknown record {record.get('op')!r} v{record.get('v')!r}")
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            UnicodeDecodeError,
            OverflowError,
            RecursionError,
        ):
            if not (parsed.torn_tail and number == len(lines) - 1):
                parsed.bad_lines += 1
    return parsed


def _try_lock(fd: int, kind: int = fcntl.LOCK_EX) -> bool:
    for attempt in range(_LOCK_TRIES):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < _LOCK_TRIES:
                time.sleep(0.01)
    return False


class DirectoryStore:
    """Markers in a private local directory (see the module docstring for the format).

    ``DirectoryStore("/var/lib/mybot/restart-guard")``. The directory is
    created 0700 if missing; journals are 0600. Put it on a disk that
    survives a restart (not tmpfs, not a container's writable layer).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._owner = ""
        self._name = f"journal-{secrets.token_hex(8)}.log"
        self._fd: int | None = None
        self._size = 0
        self._live: dict[str, Marker] = {}
        self._live_bytes: dict[str, int] = {}
        self._draining = False

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.path)!r})"

    # ------------------------------------------------------------------ writing
    def open(self, owner: str) -> None:
        """Create the directory and this process's locked journal."""
        self._owner = owner
        self._ensure_journal()

    def _ensure_journal(self) -> int:
        if self._fd is not None:
            return self._fd
        try:
            ensure_private_dir(self.path)
            fd = os.open(
                self.path / self._name,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
        except PermissionError as exc:
            raise StoreError(
                f"cannot write markers in {self.path}: {exc.strerror}. Make the directory "
                "writable by the bot's user or point marker_dir / $RESTART_GUARD_DIR elsewhere"
            ) from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._size = os.fstat(fd).st_size
        fsync_dir(self.path)
        self._fd = fd
        return fd

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Append one batch and fdatasync it once."""
        if not puts and not removes and not draining:
            return
        fd = self._ensure_journal()
        lines = [_encode_put(m) for m in puts]
        tail = [_encode({"op": "del", "v": 1, "key": k}) for k in removes]
        if draining:
            tail.append(_encode({"op": "drain", "v": 1, "at": time.time()}))
        self._append(fd, b"".join(lines + tail))
        self._draining = self._draining or draining
        for marker, line in zip(puts, lines, strict=True):
            self._live[marker.key] = marker
            self._live_bytes[marker.key] = len(line)
        for key in removes:
            self._live.pop(key, None)
            self._live_bytes.pop(key, None)
        # Rewrite only when mostly dead records: after a rewrite the file must
        # double before the next one, so compaction costs O(1) per record.
        if self._size > max(_COMPACT_BYTES, 2 * sum(self._live_bytes.values())):
            self._compact()

    def _append(self, fd: int, data: bytes) -> None:
        """One write and one fdatasync; a failed batch is cut off whole."""
        try:
            write_all(fd, data)
            os.fdatasync(fd)
        except OSError:
            # Cut a partial batch off so the next batch does not start on a torn line.
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                log.error("restart-guard: could not truncate a torn write in %s", self.path)
            raise
        self._size += len(data)

    def _compact(self) -> None:
        temp = self.path / f".{self._name[:-4]}.tmp"
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        try:
            # Locked before it gets its real name, so no claimer can take it for dead.
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = b"".join(_encode_put(m) for m in self._live.values())
            if self._draining:
                data += _encode({"op": "drain", "v": 1, "at": time.time()})
            write_all(fd, data)
            os.fdatasync(fd)
            os.replace(temp, self.path / self._name)
            fsync_dir(self.path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.warning("restart-guard: compacting %s failed; will try again later", self.path)
            return
        old, self._fd, self._size = self._fd, fd, len(data)
        if old is not None:
            os.close(old)

    def close(self) -> None:
        """Close the journal; delete it when it holds no marker."""
        if self._fd is None:
            return
        try:
            if not self._live:
                os.unlink(self.path / self._name)
                fsync_dir(self.path)
        except OSError as exc:
            log.warning("restart-guard: could not remove empty journal: %s", exc)
        finally:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ reading
    def claim(self) -> list[Marker]:
        """Take over the journals of processes that are gone (see module docstring)."""
        self._ensure_journal()
        taken: list[tuple[Path, int, _Parsed]] = []
        try:
            for path in self._foreign_files():
                got = self._take(path)
                if got is not None:
                    taken.append((path, *got))
            claimed = self._adopt([parsed for _, _, parsed in taken])
            for path, _, parsed in taken:
                if parsed.bad_lines:
                    os.replace(path, path.with_name(path.name + ".corrupt"))
                else:
                    os.unlink(path)
            if taken:
                fsync_dir(self.path)
            return claimed
        finally:
            for _, fd, _ in taken:
                os.close(fd)

    def _adopt(self, sources: Sequence[_Parsed]) -> list[Marker]:
        """Copy the newest record of each marker into our journal, then one claim record.

        The records are copied byte for byte (checksums included); the claim
        record that follows makes them ours and ``resuming`` when read back.
        """
        merged: dict[str, tuple[Marker, bytes | None]] = {}
        for parsed in sources:
            for key, marker in parsed.markers.items():
                if key in merged and newer(merged[key][0], marker) is not marker:
                    continue
                merged[key] = (marker, parsed.raw.get(key))
        for key, mine in self._live.items():
            if key in merged and newer(mine, merged[key][0]) is mine:
                merged[key] = (mine, None)  # ours already: nothing to copy
        if not merged:
            return []
        now = time.time()
        copied = [raw for _, raw in merged.values() if raw is not None]
        claim = _encode(
            {"op": "own", "v": 1, "owner": self._owner, "at": now, "keys": list(merged)}
        )
        self._append(self._ensure_journal(), b"".join(copied) + claim)
        claimed = [marker.claimed_by(self._owner, now) for marker, _ in merged.values()]
        for marker, (_, raw) in zip(claimed, merged.values(), strict=True):
            self._live[marker.key] = marker
            self._live_bytes[marker.key] = len(raw) if raw is not None else 400
        return claimed

    def _foreign_files(self) -> Iterable[Path]:
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return
        for name in names:
            path = self.path / name
            if name == self._name:
                continue
            if _JOURNAL.match(name):
                yield path
            elif _COMPACT_TEMP.match(name):
                self._remove_stale_temp(path)
            elif name.endswith(".corrupt"):
                log.warning(
                    "restart-guard: %s holds unreadable marker records set aside earlier; "
                    "inspect or delete it",
                    path,
                )
            elif not name.startswith(".journal-"):
                log.warning(
                    "restart-guard: ignoring unexpected file %s in the marker directory", path
                )

    def _remove_stale_temp(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                if _try_lock(fd):
                    os.unlink(path)
            finally:
                os.close(fd)

    def _take(self, path: Path) -> tuple[int, _Parsed] | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # gone: another process claimed it first
                log.warning("restart-guard: cannot open %s: %s", path, exc)
            return None
        keep = False
        try:
            if not _try_lock(fd):
                return None  # its owner is alive (for example still draining)
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    return None  # replaced by its owner's compaction: not dead
            except FileNotFoundError:
                return None
            parsed = _read(fd, path)
            keep = True
            return fd, parsed
        finally:
            if not keep:
                os.close(fd)

    def discard(self, markers: Sequence[Marker]) -> int:
        """Refuse (:class:`StoreError`): a journal has one writer, the process that holds it."""
        if not markers:
            return 0
        raise StoreError(
            f"cannot remove {len(markers)} marker(s) held by a running process from {self.path}: "
            "a marker directory's journal has one writer, the process that holds it. Stop that "
            "process (its drain leaves what it could not finish marked), then remove them"
        )

    def load(self) -> list[StoredMarker]:
        """Every marker in the directory, without claiming anything."""
        found: list[StoredMarker] = []
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return found
        for name in names:
            if not _JOURNAL.match(name):
                continue
            path = self.path / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                held = name == self._name and self._fd is not None
                if not held:
                    held = not _try_lock(fd, fcntl.LOCK_SH)
                parsed = _read(fd, path)
            finally:
                os.close(fd)
            found.extend(StoredMarker(m, held) for m in parsed.markers.values())
        return found


def _read(fd: int, path: Path) -> _Parsed:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    parsed = _parse(b"".join(chunks))
    if parsed.bad_lines:
        log.warning(
            "restart-guard: skipped %d unreadable record(s) in %s (torn, garbage or unknown "
            "version); %d valid marker(s) kept",
            parsed.bad_lines,
            path,
            len(parsed.markers),
        )
    elif parsed.torn_tail:
        log.info("restart-guard: %s ends in a torn write (crash mid-append); ignored", path)
    return parsed
