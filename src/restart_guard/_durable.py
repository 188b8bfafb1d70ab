"""The few file operations durability depends on.

No maintained library fsyncs the directory after a rename or unlink, and
without that a crash can forget the rename, so these live here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write", "ensure_private_dir", "fsync_dir", "write_all"]


def fsync_dir(path: Path) -> None:
    """Make the directory entry changes (create, rename, unlink) in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700: markers name chats."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)
