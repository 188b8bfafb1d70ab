"""The few file operations durability and privacy depend on.

No maintained library fsyncs the directory after a rename or unlink, and
without that a crash can forget the rename, so these live here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ensure_private_dir", "fsync_dir", "write_all"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def fsync_dir(path: Path | int) -> None:
    """Make the directory entry changes (create, rename, unlink) in ``path`` durable.

    ``path`` may be an open directory descriptor, which is fsynced as it is.
    """
    if isinstance(path, int):
        os.fsync(path)
        return
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (short writes happen near a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def ensure_private_dir(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents, each 0700 whatever the umask.

    Returns the directories it created, outermost first. A directory that
    already exists is left exactly as it is: restart-guard never changes the
    permissions of a directory it did not create (whether it may be trusted
    is for the caller to check). A directory another process creates at the
    same moment counts as existing.
    """
    missing: list[Path] = []
    probe = path
    while True:
        try:
            os.lstat(probe)
            break
        except FileNotFoundError:
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        # mkdir applies the umask, which may have taken bits away (0o277 leaves 0500):
        # set the mode through a descriptor of what we made, never through a name.
        fd = os.open(directory, _DIR_FLAGS | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        created.append(directory)
    return created
