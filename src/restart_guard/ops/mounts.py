"""Which filesystem a path is on, from the kernel's mount table.

``doctor`` uses it to warn when markers would not survive what they exist
for: tmpfs is emptied at every reboot, and a container's overlay root is
thrown away with the container unless a volume is mounted over the marker
directory (then the volume is the longest matching mount point, and wins).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mount", "mount_of"]

_MOUNTINFO = "/proc/self/mountinfo"
_MOUNTS = "/proc/mounts"


@dataclass(frozen=True)
class Mount:
    """One entry of the mount table."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \040 etc.
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _read_table() -> list[Mount]:
    try:
        with open(_MOUNTINFO, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    mounts = []
    for line in lines:
        # "<id> <parent> <maj:min> <root> <mount point> <options> [...] - <type> <source> ..."
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if sep and len(fields) >= 5 and len(tail) >= 2:
            mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    if mounts:
        return mounts
    try:
        with open(_MOUNTS, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 3:
                    mounts.append(Mount(_unescape(fields[1]), fields[2], _unescape(fields[0])))
    except OSError:
        pass
    return mounts


def existing_ancestor(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent (resolved)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.resolve()


def mount_of(path: Path) -> Mount | None:
    """The mount ``path`` (or, if it does not exist yet, its nearest parent) is on."""
    target = str(existing_ancestor(path))
    best: Mount | None = None
    for mount in _read_table():
        point = mount.mount_point.rstrip("/") or "/"
        inside = point == "/" or target == point or target.startswith(point + "/")
        # Longest mount point wins; of several at one point the last listed is on top.
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best
