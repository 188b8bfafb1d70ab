"""The default store: a private directory of append-only journals, one per process.

Layout of the marker directory (0700, owned by the bot's user):

- ``journal-<16 hex>.log`` (0600): one per running or dead process. Each line
  is ``<crc32 as 8 hex> <JSON record>``; a record is a marker (``"op":
  "put"``) or a removal (``"op": "del"``). A batch is one ``write`` and one
  ``fdatasync``, however many records it carries — durability costs one
  fsync per batch, not per conversation.
- The owning process holds an exclusive ``flock`` on its journal for its
  whole life. The kernel drops the lock when the process dies, including on
  SIGKILL and OOM kills, so "lock is free" means "owner is gone". A journal
  is created under a temporary name, locked, and only then linked to its
  real name, so no other process ever sees it unlocked.
- ``claim`` takes a dead journal's lock, copies its live markers into this
  process's journal (one durable batch), then unlinks it. A second process
  racing for the same journal cannot get the lock, so a marker is resumed
  by one process only.
- A journal that is damaged — an unreadable line (torn, garbage, unknown
  version), a cut-off last record, more than 256 MiB, or a file of another
  user — is set aside as ``*.corrupt`` with one warning once its valid
  markers are taken over; nothing is ever deleted that was not read
  whole. Reading is bounded (see ``_journal``): a 1 GB junk file costs a
  ``stat``, not a read. Files the store does not know are left alone and
  reported once per process.

The directory is trusted only if it (or the target of a link to it) belongs
to the bot's user and is not writable by group or others (see ``_trust``);
otherwise :meth:`DirectoryStore.open` raises :class:`StoreError` saying what
to fix, and the bot runs unprotected. Directories the store creates,
parents included, are 0700 whatever the umask; one it did not create is
never chmodded. Every file is opened relative to the directory's descriptor
with ``O_NOFOLLOW``; temporary files get random names and ``O_EXCL``.

File names are random hex; nothing is ever named after a chat id or text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._durable import ensure_private_dir, fsync_dir, write_all
from .._marker import Marker, newer
from ._journal import Parsed, drain_record, encode, encode_put, read_journal
from ._trust import DirProblem, untrusted_dir, user_name
from .base import StoredMarker, StoreError

__all__ = ["DirectoryStore", "check_marker_dir"]

log = logging.getLogger("restart_guard")

_JOURNAL = re.compile(r"^journal-[0-9a-f]{16}\.log$")
_TEMP = re.compile(r"^\.journal-[0-9a-f]{16}\.tmp$")
# A journal is rewritten with only its live markers once it is this large
# and mostly dead records; keeps start-up reads short on a long-running bot.
_COMPACT_BYTES = 1 << 20
# A CLI probing liveness holds a shared lock for microseconds; retry briefly
# before deciding a journal's owner is alive.
_LOCK_TRIES = 5
# Random names collide only if someone plants files: give up after a few.
_NAME_TRIES = 8
# Names listed in one log line; the rest are counted.
_NAMES_SHOWN = 5
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO must not block


def check_marker_dir(path: Path, uid: int | None) -> DirProblem | None:
    """Why user ``uid`` must not keep markers in the existing directory ``path``; None if fine.

    The very check the store makes before it uses a directory, for
    ``restart-guard doctor``. ``uid`` None checks the permissions only.
    """
    link = os.lstat(path)
    return untrusted_dir(path, os.stat(path), link if stat.S_ISLNK(link.st_mode) else None, uid)


class _Refused(StoreError):
    """The marker directory cannot be trusted; ``repeated`` once it was reported."""

    def __init__(self, message: str, repeated: bool) -> None:
        super().__init__(message)
        self.repeated = repeated


def _try_lock(fd: int, kind: int = fcntl.LOCK_EX, tries: int = _LOCK_TRIES) -> bool:
    for attempt in range(tries):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(0.01)
    return False


def _shown(names: Sequence[str]) -> str:
    more = len(names) - _NAMES_SHOWN
    return ", ".join(names[:_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


class DirectoryStore:
    """Markers in a private local directory (see the module docstring for the format).

    ``DirectoryStore("/var/lib/mybot/restart-guard")``. The directory is
    created 0700 if missing; journals are 0600. An existing directory must
    belong to the bot's user and not be writable by others. Put it on a disk
    that survives a restart (not tmpfs, not a container's writable layer).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._owner = ""
        self._name = ""  # of our journal, once created
        self._dfd: int | None = None
        self._fd: int | None = None
        self._size = 0
        self._live: dict[str, Marker] = {}
        self._live_bytes: dict[str, int] = {}
        self._draining = False
        self._refusal = ""  # the last refusal raised, so that it is logged once
        self._reported: set[str] = set()  # file names already warned about

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.path)!r})"

    # ------------------------------------------------------------------ the directory
    def _open_dir(self) -> int:
        """The trusted directory's descriptor; creates it (0700) if missing."""
        if self._dfd is not None:
            return self._dfd
        try:
            ensure_private_dir(self.path)
            link = os.lstat(self.path)
            dfd = os.open(self.path, _DIR)
        except PermissionError as exc:
            raise StoreError(
                f"cannot write markers in {self.path}: {exc.strerror}. Make the directory "
                "writable by the bot's user or point marker_dir / $RESTART_GUARD_DIR elsewhere"
            ) from exc
        try:
            problem = untrusted_dir(
                self.path,
                os.fstat(dfd),
                link if stat.S_ISLNK(link.st_mode) else None,
                os.geteuid(),
            )
        except BaseException:
            os.close(dfd)
            raise
        if problem is not None:
            os.close(dfd)
            message = (
                f"refusing the marker directory: {problem.message}. Conversations are NOT "
                f"protected until this is fixed: {problem.fix}"
            )
            if message == self._refusal:
                # Said in full once (open() at start-up); retries only point back to it.
                raise _Refused(
                    f"the marker directory {self.path} is still refused (why, and the fix, "
                    "were logged when it was first refused)",
                    repeated=True,
                )
            self._refusal = message
            raise _Refused(message, repeated=False)
        if self._refusal:
            log.warning("restart-guard: marker directory %s is trusted now", self.path)
            self._refusal = ""
        self._dfd = dfd
        return dfd

    def _create_temp(self, dfd: int) -> tuple[str, int]:
        """A new file under an unpredictable temporary name, never through a planted link."""
        for _ in range(_NAME_TRIES):
            name = f".journal-{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(name, _CREATE, 0o600, dir_fd=dfd)
            except FileExistsError:
                continue
            os.fchmod(fd, 0o600)  # the umask may have taken bits away
            return name, fd
        raise StoreError(f"cannot create a temporary file in {self.path}: every name was taken")

    # ------------------------------------------------------------------ writing
    def open(self, owner: str) -> None:
        """Check the directory, create it if needed, and create this process's locked journal."""
        self._owner = owner
        self._ensure_journal()

    def _ensure_journal(self) -> int:
        if self._fd is not None:
            return self._fd
        dfd = self._open_dir()
        for _ in range(_NAME_TRIES):
            temp, fd = self._create_temp(dfd)
            name = f"journal-{secrets.token_hex(8)}.log"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Visible under its real name only once locked: a claimer never takes it
                # for a dead process's journal. link, unlike rename, never replaces a file.
                os.link(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except (FileNotFoundError, FileExistsError):
                # A claimer removed the temporary file before we locked it (it looked
                # stale), or the name is taken: try again with new names.
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dfd)
                continue
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dfd)
                raise
            os.unlink(temp, dir_fd=dfd)
            fsync_dir(dfd)
            self._name, self._fd, self._size = name, fd, 0
            return fd
        raise StoreError(f"cannot create a journal in {self.path}: every name was taken")

    def commit(
        self, puts: Sequence[Marker], removes: Sequence[str], *, draining: bool = False
    ) -> None:
        """Append one batch and fdatasync it once."""
        if not puts and not removes and not draining:
            return
        fd = self._ensure_journal()
        lines = [encode_put(m) for m in puts]
        tail = [encode({"op": "del", "v": 1, "key": k}) for k in removes]
        if draining:
            tail.append(drain_record())
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
        dfd = self._open_dir()
        try:
            temp, fd = self._create_temp(dfd)
        except (OSError, StoreError) as exc:
            log.warning("restart-guard: compacting %s failed (%s); will try again later", self, exc)
            return
        try:
            # Locked before it gets its real name, so no claimer can take it for dead.
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = b"".join(encode_put(m) for m in self._live.values())
            if self._draining:
                data += drain_record()
            write_all(fd, data)
            os.fdatasync(fd)
            os.replace(temp, self._name, src_dir_fd=dfd, dst_dir_fd=dfd)
            fsync_dir(dfd)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dfd)
            log.warning("restart-guard: compacting %s failed (%s); will try again later", self, exc)
            return
        old, self._fd, self._size = self._fd, fd, len(data)
        if old is not None:
            os.close(old)

    def close(self) -> None:
        """Close the journal; delete it when it holds no marker."""
        try:
            if self._fd is not None and self._dfd is not None and not self._live:
                os.unlink(self._name, dir_fd=self._dfd)
                fsync_dir(self._dfd)
        except OSError as exc:
            log.warning("restart-guard: could not remove empty journal: %s", exc)
        finally:
            for fd in (self._fd, self._dfd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._dfd = None

    # ------------------------------------------------------------------ reading
    def claim(self) -> list[Marker]:
        """Take over the journals of processes that are gone (see module docstring)."""
        try:
            self._ensure_journal()
        except _Refused as exc:
            if exc.repeated:  # reported already (open raised it): nothing here is trusted
                log.debug("restart-guard: not claiming: %s", exc)
                return []
            raise
        dfd = self._open_dir()
        taken: list[tuple[str, int, Parsed]] = []
        set_aside: list[str] = []
        try:
            for name in self._foreign_journals(dfd):
                got = self._take(dfd, name, set_aside)
                if got is not None:
                    taken.append((name, *got))
            claimed = self._adopt([parsed for _, _, parsed in taken])
            for name, _, parsed in taken:
                if parsed.damaged:
                    self._set_aside(dfd, name)
                    set_aside.append(f"{name} ({parsed.problem()})")
                else:
                    os.unlink(name, dir_fd=dfd)
            if taken or set_aside:
                fsync_dir(dfd)
            if set_aside:
                log.warning(
                    "restart-guard: set aside %d damaged journal(s) in %s as *.corrupt "
                    "(unreadable: garbage, a bad checksum or an unknown version; cut off: a "
                    "crash or power loss mid-write), kept for inspection: %s",
                    len(set_aside),
                    self.path,
                    "; ".join(set_aside),
                )
            return claimed
        finally:
            for _, fd, _ in taken:
                os.close(fd)

    def _set_aside(self, dfd: int, name: str) -> None:
        os.rename(name, name + ".corrupt", src_dir_fd=dfd, dst_dir_fd=dfd)
        self._reported.add(name + ".corrupt")  # reported by the line about setting it aside

    def _adopt(self, sources: Sequence[Parsed]) -> list[Marker]:
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
        claim = encode({"op": "own", "v": 1, "owner": self._owner, "at": now, "keys": list(merged)})
        self._append(self._ensure_journal(), b"".join(copied) + claim)
        claimed = [marker.claimed_by(self._owner, now) for marker, _ in merged.values()]
        for marker, (_, raw) in zip(claimed, merged.values(), strict=True):
            self._live[marker.key] = marker
            self._live_bytes[marker.key] = len(raw) if raw is not None else 400
        return claimed

    def _foreign_journals(self, dfd: int) -> list[str]:
        """Names of the other processes' journals; other files are reported once."""
        journals: list[str] = []
        corrupt: list[str] = []
        strays: list[str] = []
        for name in sorted(os.listdir(dfd)):
            if name == self._name:
                continue
            if _JOURNAL.match(name):
                journals.append(name)
            elif _TEMP.match(name):
                self._remove_stale_temp(dfd, name)
            elif name.endswith(".corrupt"):
                corrupt.append(name)
            elif not name.startswith(".journal-"):
                strays.append(name)
        self._report_once(
            corrupt,
            "file(s) hold unreadable marker records set aside earlier; inspect or delete them",
        )
        self._report_once(
            strays, "unexpected file(s), left alone (restart-guard reports them once)"
        )
        return journals

    def _report_once(self, names: Iterable[str], what: str) -> None:
        new = [name for name in names if name not in self._reported]
        if new:
            self._reported.update(new)
            log.warning("restart-guard: %s: %d %s: %s", self.path, len(new), what, _shown(new))

    def _remove_stale_temp(self, dfd: int, name: str) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(name, _READ, dir_fd=dfd)
            try:
                # Unlocked: its process died while compacting (or has not locked it yet,
                # and then makes a new one).
                if _try_lock(fd, tries=1):
                    os.unlink(name, dir_fd=dfd)
            finally:
                os.close(fd)

    def _take(self, dfd: int, name: str, set_aside: list[str]) -> tuple[int, Parsed] | None:
        try:
            fd = os.open(name, _READ, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._report_once([name], "symbolic link(s) named like a journal, not followed")
            elif exc.errno != errno.ENOENT:  # gone: another process claimed it first
                self._report_once([name], f"journal(s) that cannot be opened ({exc.strerror})")
            return None
        keep = False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self._report_once([name], "non-file(s) named like a journal, left alone")
                return None
            if info.st_uid != os.geteuid():
                # Not written by the bot: never read (it could name any chat), kept aside.
                self._set_aside(dfd, name)
                set_aside.append(f"{name} (belongs to {user_name(info.st_uid)}: not read)")
                return None
            if not _try_lock(fd):
                return None  # its owner is alive (for example still draining)
            try:
                if os.stat(name, dir_fd=dfd, follow_symlinks=False).st_ino != info.st_ino:
                    return None  # replaced by its owner's compaction: not dead
            except FileNotFoundError:
                return None
            parsed = read_journal(fd)
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
            dfd = self._dfd if self._dfd is not None else os.open(self.path, _DIR)
        except FileNotFoundError:
            return found
        try:
            for name in sorted(os.listdir(dfd)):
                if not _JOURNAL.match(name):
                    continue
                try:
                    fd = os.open(name, _READ, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        continue
                    held = name == self._name and self._fd is not None
                    if not held:
                        held = not _try_lock(fd, fcntl.LOCK_SH)
                    parsed = read_journal(fd)
                finally:
                    os.close(fd)
                if parsed.damaged:
                    self._report_once([name], f"damaged journal(s): {parsed.problem()}")
                found.extend(StoredMarker(m, held) for m in parsed.markers.values())
        finally:
            if dfd != self._dfd:
                os.close(dfd)
        return found
