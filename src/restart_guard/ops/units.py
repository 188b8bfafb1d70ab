"""The ``[Service]`` settings of a systemd unit that decide how a bot is stopped.

Read from a unit file (and its ``<file>.d/*.conf`` drop-ins, later files
winning) or from ``systemctl show``; either way each setting remembers the
file and line it came from, so ``doctor`` can name the exact line to change.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Setting", "UnitError", "UnitSettings", "read_systemctl", "read_unit_file", "unit_of"]

#: Settings doctor looks at, as written in a unit file.
KEYS = ("TimeoutStopSec", "KillMode", "KillSignal", "Type", "Restart", "User")
# systemctl show's names for them.
_SHOW = {
    "TimeoutStopUSec": "TimeoutStopSec",
    "KillMode": "KillMode",
    "KillSignal": "KillSignal",
    "Type": "Type",
    "Restart": "Restart",
    "User": "User",
}
_SYSTEMCTL_TIMEOUT = 10.0


class UnitError(Exception):
    """The unit could not be read; the message says why."""


@dataclass(frozen=True)
class Setting:
    """A value and where it was set (``path``/``line`` None: systemd's default or unknown)."""

    value: str
    path: Path | None = None
    line: int | None = None
    written_as: str | None = None  # the key on that line, if not the setting's own name

    def where(self) -> str:
        """``line 12 of /etc/systemd/system/bot.service``, or "" if not from a file."""
        if self.path is None or self.line is None:
            return ""
        return f"line {self.line} of {self.path}"


@dataclass
class UnitSettings:
    """The settings of one unit, and the files they were read from."""

    name: str
    source: str  # how they were read, for the report
    settings: dict[str, Setting] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def get(self, key: str) -> Setting | None:
        """The effective setting ``key``, or None if unset (systemd's default applies)."""
        return self.settings.get(key)

    @property
    def main_file(self) -> Path | None:
        """The unit file itself (where a missing setting should be added)."""
        return self.files[0] if self.files else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined and comments dropped."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            start = number
            if not line or line[0] in "#;":
                continue
        elif line and line[0] in "#;":
            continue  # comments inside a continued line are skipped
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        result.append((start, " ".join(p.strip() for p in pending).strip()))
        pending = []
    if pending:
        result.append((start, " ".join(pending).strip()))
    return result


def _apply_file(unit: UnitSettings, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UnitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    unit.files.append(path)
    section = ""
    for number, line in _logical_lines(text):
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, eq, value = line.partition("=")
        if section != "Service" or not eq:
            continue
        key, value = key.strip(), value.strip()
        # TimeoutSec= sets the start and the stop timeout at once.
        targets = ["TimeoutStopSec"] if key == "TimeoutSec" else [key]
        for name in targets:
            if name not in KEYS:
                continue
            if value:
                alias = key if key != name else None
                unit.settings[name] = Setting(value, path, number, alias)
            else:
                unit.settings.pop(name, None)  # "Key=" resets to the default


def read_unit_file(path: str | os.PathLike[str]) -> UnitSettings:
    """The settings in unit file ``path`` plus its drop-ins (``path.d/*.conf``)."""
    path = Path(path)
    unit = UnitSettings(path.name, f"unit file {path}")
    _apply_file(unit, path)
    dropins = Path(f"{path}.d")
    if dropins.is_dir():
        for conf in sorted(dropins.glob("*.conf")):
            _apply_file(unit, conf)
    return unit


def read_systemctl(name: str) -> UnitSettings:
    """The effective settings of unit ``name`` as systemd has them (``systemctl show``).

    Values come from systemd (defaults included); the line each was set on
    comes from the unit's fragment and drop-ins when they can be read.
    """
    if not name.endswith((".service", ".scope")) and "." not in name:
        name += ".service"
    properties = [*_SHOW, "FragmentPath", "DropInPaths", "LoadState"]
    command = ["systemctl", "show", f"--property={','.join(properties)}", "--", name]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_SYSTEMCTL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UnitError(f"cannot run {' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise UnitError(f"{' '.join(command)} failed: {message[0] if message else done.returncode}")
    shown = {}
    for line in done.stdout.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            shown[key.strip()] = value.strip()
    if shown.get("LoadState") == "not-found":
        raise UnitError(f"systemd has no unit {name} (LoadState=not-found)")
    unit = UnitSettings(name, f"systemctl show {name}")
    fragment = shown.get("FragmentPath", "")
    files = [Path(fragment)] if fragment else []
    files += [Path(p) for p in shown.get("DropInPaths", "").split() if p]
    located = UnitSettings(name, "")
    for path in files:
        try:
            _apply_file(located, path)
        except UnitError:
            continue  # not readable by us: values still come from systemd
    unit.files = located.files or files
    for show_key, key in _SHOW.items():
        value = shown.get(show_key, "")
        if not value:
            continue
        if show_key == "TimeoutStopUSec" and value.isdigit():
            value = f"{int(value) / 1e6:g}s"  # a bare *USec number is in microseconds
        where = located.get(key)
        unit.settings[key] = Setting(
            value,
            where.path if where else None,
            where.line if where else None,
            where.written_as if where else None,
        )
    return unit


_SERVICE_CGROUP = re.compile(r"/([^/]+\.service)$")


def unit_of(pid: int | str = "self") -> str | None:
    """The systemd service whose cgroup process ``pid`` runs in (``ExecStartPre=`` use), if any."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(":", 2)[-1]
        match = _SERVICE_CGROUP.search(path)
        # user@1000.service is a user's whole session, not a bot's unit.
        if match and "/user.slice/" not in path and not match.group(1).startswith("user@"):
            return match.group(1)
    return None
