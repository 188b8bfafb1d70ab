"""``restart-guard doctor``: will markers survive, and does the stop timeout fit the drain?

Checks, each reported with what is wrong and the exact line to change:

- the marker directory exists, is a directory, is writable (a test file is
  written, fsynced, locked and removed, as the store does), is private
  (0700, journals 0600), belongs to the bot's user (the unit's ``User=``)
  and is not writable by group or others — the same check the bot makes
  before it trusts the directory — holds no
  set-aside ``*.corrupt`` records, and is on a filesystem that survives a
  restart (not tmpfs; not a container's overlay layer without a volume);
  before the bot's first start, when the directory does not exist yet, the
  place it will be created in (its nearest existing parent) is judged
  instead: its filesystem, that a directory can be created there, its owner;
- or the Redis store answers and persists what it is given;
- the systemd unit (``--unit NAME`` via ``systemctl show``, ``--unit-file
  PATH``, or the unit doctor itself runs in): ``TimeoutStopSec`` leaves
  ``drain_timeout`` plus a margin, ``KillMode`` is not ``process``,
  ``KillSignal`` is one restart-guard drains on; and notes on ``Type=notify``,
  ``KillMode=mixed`` and ``Restart=``.

Exit status 1 if any warning or error was found, 0 otherwise, 2 if the
command could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._durable import fsync_dir, write_all
from ..stores._trust import user_name
from ..stores.directory import DirectoryStore, check_marker_dir
from .mounts import existing_ancestor, mount_of
from .sources import OpsError, Target, add_store_command, bot_folders, is_marker_dir, resolve_target
from .timespan import format_seconds, parse_duration, seconds_argument
from .units import UnitError, UnitSettings, read_systemctl, read_unit_file, unit_of

__all__ = ["Finding", "Section", "check_unit", "register", "run"]

#: What ``restart-guard --help`` says ``doctor`` does.
SUMMARY = "check the marker directory or store and the service's stop timeout"

#: protect()'s default drain_timeout.
DEFAULT_DRAIN_TIMEOUT = 20.0
#: Room between the end of the drain and SIGKILL: the framework's own shutdown.
DEFAULT_MARGIN = 5.0
#: systemd's DefaultTimeoutStopSec.
SYSTEMD_DEFAULT_STOP = 90.0
PROBLEMS = ("warning", "error")
_VOLATILE = {"tmpfs", "ramfs"}
_CONTAINER_LAYER = {"overlay", "overlayfs", "aufs"}
_NETWORK = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre"}
_DRAIN_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass
class Finding:
    """One result: ``level`` is ok, note, warning or error; ``fix`` the line to change."""

    level: str
    message: str
    fix: str | None = None


@dataclass
class Section:
    """The findings about one thing (a directory, a store, a unit)."""

    title: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, message: str, fix: str | None = None) -> None:
        """Record a finding."""
        self.findings.append(Finding(level, message, fix))


# ------------------------------------------------------------------ directory
def check_directory(path: Path, origin: str, unit_user: str | None) -> list[Section]:
    """The marker directory (or base directory with one subfolder per bot)."""
    section = Section(f"Marker directory {path} ({origin})")
    sections = [section]
    if not path.exists():
        _check_future_directory(section, path, unit_user)
        return sections
    if not path.is_dir():
        section.add(
            "error",
            f"{path} is not a directory",
            "point marker_dir / $RESTART_GUARD_DIR / --dir at a directory",
        )
        return sections
    section.add("ok", "exists")
    _check_filesystem(section, path)
    folders = bot_folders(path)
    if folders:
        section.add("ok", f"{len(folders)} bot folder(s): {', '.join(f.name for f in folders)}")
        # A bot that has not run yet creates its folder here.
        _check_writable(section, path, "")
        if unit_user is not None:
            _check_owner(section, path, "", path.stat().st_uid, unit_user)
    if is_marker_dir(path) or not folders:
        _check_marker_dir(section, path, "", unit_user)
    for folder in folders:
        _check_marker_dir(section, folder, f"{folder.name}: ", unit_user)
    _note_root(section, unit_user)
    return sections


def _note_root(section: Section, unit_user: str | None) -> None:
    if os.geteuid() == 0 and unit_user is None:
        section.add(
            "note",
            "doctor runs as root, so the write test shows root's access, not the bot's",
            "run it as the bot's user (sudo -u BOTUSER restart-guard doctor), or pass "
            "--unit / --unit-file so that its User= is checked against the owner",
        )


def _check_future_directory(section: Section, path: Path, unit_user: str | None) -> None:
    """A marker directory the bot has not created yet, judged by where it will be.

    The bot creates it (0700, with any missing parents) at its first start, so
    what can go wrong is decided by the nearest existing parent: its
    filesystem, whether the bot can create a directory in it, and its owner.
    """
    parent = existing_ancestor(path)
    if not parent.is_dir():
        section.add(
            "error",
            f"{path} cannot be created: {parent} is not a directory",
            "point marker_dir / $RESTART_GUARD_DIR / --dir at a directory",
        )
        return
    section.add(
        "ok",
        f"does not exist yet: the bot creates it (0700) at its first start, in {parent}",
    )
    _check_filesystem(section, path)
    if _check_creatable(section, parent, path) and unit_user is not None:
        info = parent.stat()
        if not info.st_mode & 0o002:  # a sticky world-writable /tmp lets anyone create
            _check_owner(section, parent, f"{parent}: ", info.st_uid, unit_user, creates=path)
    _note_root(section, unit_user)


def _check_creatable(section: Section, parent: Path, path: Path) -> bool:
    # Create and remove a directory where the bot will create its own.
    probe = parent / f".restart-guard-doctor-{secrets.token_hex(4)}"
    try:
        probe.mkdir(mode=0o700)
        probe.rmdir()
    except OSError as exc:
        section.add(
            "error",
            f"{parent} is not writable by {user_name(os.geteuid())}: {exc.strerror or exc} — "
            f"the bot cannot create {path}, so nothing is protected",
            f"mkdir -p -m 700 {path} && chown BOTUSER {path}  (BOTUSER: the user the bot runs as)",
        )
        return False
    section.add("ok", f"{parent} is writable: the bot can create its marker directory there")
    return True


def _check_filesystem(section: Section, path: Path) -> None:
    mount = mount_of(path)
    if mount is None:
        section.add("note", "could not tell which filesystem it is on (no /proc mount table)")
        return
    on = f"on {mount.fstype} (mounted at {mount.mount_point})"
    if mount.fstype in _VOLATILE:
        section.add(
            "warning",
            f"{on}: emptied at every reboot, so markers do not survive a host restart",
            "keep markers on a disk: systemd StateDirectory=mybot gives /var/lib/mybot; "
            "set marker_dir or $RESTART_GUARD_DIR there",
        )
    elif mount.fstype in _CONTAINER_LAYER:
        section.add(
            "warning",
            f"{on}: the container's writable layer, thrown away when the container is "
            "recreated (a new image, docker compose up, a rescheduled pod); no volume is "
            f"mounted over {existing_ancestor(path)}",
            f"mount a volume at {path} (docker run -v NAME:{path}, a compose volumes: entry, "
            "a Kubernetes PersistentVolumeClaim) or use the Redis store (--store / "
            "$RESTART_GUARD_URL); see 'Deploying' in the documentation",
        )
    elif mount.fstype in _NETWORK or mount.fstype.startswith("fuse"):
        section.add(
            "note",
            f"{on}: a network or FUSE filesystem; file locks and fsync depend on the server",
            "prefer a local disk for the marker directory",
        )
    else:
        section.add("ok", f"{on}: survives a restart")


def _check_marker_dir(section: Section, path: Path, label: str, unit_user: str | None) -> None:
    mode = path.stat().st_mode & 0o777
    # The bot's user: the unit's User=, else whoever runs doctor (unknown when that is
    # root without a unit: then only the permissions are checked).
    uid: int | None = os.geteuid()
    if unit_user is not None:
        uid = _uid_of(section, label, unit_user)
    elif uid == 0:
        uid = None
    problem = check_marker_dir(path, uid)
    if problem is not None:
        section.add(
            "error",
            f"{label}{problem.message}. The bot refuses this directory and runs with its "
            "conversations unprotected",
            problem.fix,
        )
    elif mode & 0o077:
        section.add(
            "warning",
            f"{label}permissions are {mode:04o}, not 0700: other local users can see which "
            "chats were in flight (and message text, with replay=True)",
            f"chmod 700 {path}",
        )
    else:
        section.add("ok", f"{label}permissions {mode:04o}")
    _check_writable(section, path, label)
    names = sorted(os.listdir(path))
    for name in names:
        file = path / name
        if name.startswith("journal-") and name.endswith(".log"):
            file_mode = file.lstat().st_mode & 0o777
            if file_mode & 0o077:
                section.add(
                    "warning",
                    f"{label}{name} has permissions {file_mode:04o}, not 0600",
                    f"chmod 600 {file}",
                )
        elif name.endswith(".corrupt"):
            section.add(
                "warning",
                f"{label}{name} holds unreadable marker records set aside by an earlier start",
                f"inspect it (each line is '<crc32> <json>'), then: rm {file}",
            )
    try:
        markers = DirectoryStore(path).load()
    except OSError as exc:
        section.add("error", f"{label}cannot read the journals: {exc}")
        return
    held = sum(1 for m in markers if m.held)
    section.add(
        "ok",
        f"{label}{len(markers)} pending marker(s), {held} held by a running process "
        "(restart-guard status lists them)",
    )


def _check_writable(section: Section, path: Path, label: str) -> None:
    # Named like the store's own temporary files, which a starting bot skips silently.
    probe = path / f".journal-doctor-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, b"restart-guard doctor\n")
            os.fdatasync(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
                fsync_dir(path)
    except OSError as exc:
        section.add(
            "error",
            f"{label}not writable by {user_name(os.geteuid())}: {exc.strerror or exc} — "
            "markers cannot be written, so nothing is protected",
            f"chown -R BOTUSER {path} && chmod 700 {path}  (BOTUSER: the user the bot runs as)",
        )
        return
    section.add("ok", f"{label}writable: a test file was written, fsynced, locked and removed")


def _uid_of(section: Section, label: str, user: str) -> int | None:
    try:
        import pwd

        return pwd.getpwnam(user).pw_uid
    except (ImportError, KeyError):
        section.add("note", f"{label}cannot look up User={user} to compare with the owner")
        return None


def _check_owner(
    section: Section, path: Path, label: str, uid: int, user: str, creates: Path | None = None
) -> None:
    expected = _uid_of(section, label, user)
    if expected is None or uid == expected:
        return
    if creates is not None:
        section.add(
            "error",
            f"{label}owned by {user_name(uid)}, but the unit runs the bot as User={user}: it "
            f"cannot create {creates} there",
            f"mkdir -p -m 700 {creates} && chown {user}: {creates}   (or systemd "
            "StateDirectory=, which creates /var/lib/NAME for the unit's user)",
        )
        return
    section.add(
        "error",
        f"{label}owned by {user_name(uid)}, but the unit runs the bot as User={user}: it "
        "cannot create its journal there",
        f"chown -R {user}: {path}",
    )


# ------------------------------------------------------------------ redis
def check_redis(target: Target) -> list[Section]:
    """The Redis server: reachable, persistent, and what it holds."""
    import redis

    section = Section(f"Redis store {target.where} ({target.origin})")
    client = target.redis_client
    try:
        client.ping()
    except redis.RedisError as exc:
        section.add(
            "error",
            f"cannot reach Redis: {exc}",
            "check that Redis runs and that --store / $RESTART_GUARD_URL is right "
            "(redis://host:6379/0)",
        )
        return [section]
    section.add("ok", "reachable")
    try:
        config: dict[str, str] = {}
        for name in ("appendonly", "appendfsync", "save"):
            config.update({_text(k): _text(v) for k, v in client.config_get(name).items()})
    except redis.RedisError:
        section.add(
            "note",
            "cannot read Redis's persistence settings (CONFIG is not allowed for this user)",
            "make sure redis.conf has: appendonly yes",
        )
    else:
        if config.get("appendonly") == "yes":
            section.add(
                "ok", f"persistent: appendonly yes, appendfsync {config.get('appendfsync')}"
            )
        elif config.get("save"):
            section.add(
                "warning",
                "RDB snapshots only: a Redis restart loses every marker written since the "
                "last snapshot",
                "in redis.conf: appendonly yes (and CONFIG SET appendonly yes to apply now)",
            )
        else:
            section.add(
                "error",
                'no persistence (appendonly no, save ""): a Redis restart loses every marker',
                "in redis.conf: appendonly yes (and CONFIG SET appendonly yes to apply now)",
            )
    try:
        sources = target.sources()
        count = sum(len(s.store.load()) for s in sources)
    except Exception as exc:
        section.add("error", f"cannot read markers: {exc}")
    else:
        section.add("ok", f"{len(sources)} bot namespace(s), {count} pending marker(s)")
    return [section]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------ systemd unit
def check_unit(unit: UnitSettings, drain_timeout: float, margin: float) -> Section:
    """The unit's stop settings against ``drain_timeout`` plus ``margin``."""
    section = Section(f"systemd unit {unit.name} ({unit.source})")
    _check_timeout(section, unit, drain_timeout, margin)
    _check_kill_mode(section, unit)
    _check_kill_signal(section, unit)
    kind = unit.get("Type")
    if kind is not None and kind.value == "notify":
        section.add(
            "ok",
            "Type=notify: systemd waits for READY=1 (sent after start-up recovery) and sees "
            "STOPPING=1 when the drain begins",
        )
    else:
        section.add(
            "note",
            f"Type={kind.value if kind else 'simple'}: systemd considers the bot started at "
            "once; restart-guard sends READY=1 after start-up recovery",
            _fix(unit, "Type", "Type=notify"),
        )
    restart = unit.get("Restart")
    if restart is None or restart.value == "no":
        section.add(
            "note",
            "Restart=no: after a crash or an OOM kill the bot stays down, and its interrupted "
            "conversations wait until someone starts it",
            _fix(unit, "Restart", "Restart=on-failure"),
        )
    else:
        section.add("ok", f"Restart={restart.value}")
    return section


def _fix(unit: UnitSettings, key: str, line: str) -> str:
    setting = unit.get(key)
    if setting is not None and setting.where():
        if setting.written_as is not None:
            return (
                f"add after {setting.where()} ({setting.written_as}= there sets more than "
                f"{key}): {line}"
            )
        return f"{setting.where()}: {line}"
    where = unit.main_file or unit.name
    return f"add under [Service] in {where}: {line}"


def _check_timeout(section: Section, unit: UnitSettings, drain: float, margin: float) -> None:
    setting = unit.get("TimeoutStopSec")
    if setting is None:
        timeout, shown = (
            SYSTEMD_DEFAULT_STOP,
            f"not set (systemd's default, {SYSTEMD_DEFAULT_STOP:g}s)",
        )
    else:
        try:
            timeout = parse_duration(setting.value)
        except ValueError:
            section.add("warning", f"cannot read TimeoutStopSec={setting.value}")
            return
        shown = f"TimeoutStopSec={setting.value}"
    need = drain + margin
    if math.isinf(timeout):
        section.add(
            "ok",
            f"{shown}: systemd never SIGKILLs; the drain ends after drain_timeout ({drain:g}s)",
        )
    elif timeout < need:
        fix = _fix(unit, "TimeoutStopSec", f"TimeoutStopSec={format_seconds(math.ceil(need))}")
        if timeout - margin > 0:
            fix += f"   (or protect(drain_timeout={timeout - margin:g}))"
        section.add(
            "error",
            f"{shown} is less than drain_timeout ({drain:g}s) plus a {margin:g}s margin: systemd "
            "SIGKILLs the bot before a long drain ends, cutting off handlers that would have "
            "finished",
            fix,
        )
    else:
        section.add(
            "ok",
            f"{shown} leaves {timeout - drain:g}s after drain_timeout ({drain:g}s) before SIGKILL",
        )


def _check_kill_mode(section: Section, unit: UnitSettings) -> None:
    setting = unit.get("KillMode")
    mode = setting.value if setting is not None else "control-group"
    if mode in ("process", "none"):
        section.add(
            "error",
            f"KillMode={mode}: only the main process is stopped; processes the bot started "
            "(workers, handlers' subprocesses) survive and keep running next to the restarted "
            "bot, which resumes the conversations they may still be working on",
            _fix(unit, "KillMode", "KillMode=mixed"),
        )
    elif mode == "mixed":
        section.add(
            "ok", "KillMode=mixed: SIGTERM to the bot first, the rest of its processes at SIGKILL"
        )
    else:
        section.add(
            "note",
            f"KillMode={mode}: SIGTERM reaches every process of the bot at once, so a "
            "handler's subprocess can die before the drain lets the handler finish",
            _fix(unit, "KillMode", "KillMode=mixed"),
        )


def _check_kill_signal(section: Section, unit: UnitSettings) -> None:
    setting = unit.get("KillSignal")
    if setting is None:
        return
    value = setting.value.upper()
    try:
        number = (
            signal.Signals(int(value))
            if value.isdigit()
            else signal.Signals[value if value.startswith("SIG") else "SIG" + value]
        )
    except (KeyError, ValueError):
        section.add("warning", f"cannot read KillSignal={setting.value}")
        return
    if number in _DRAIN_SIGNALS:
        section.add("ok", f"KillSignal={setting.value}")
        return
    section.add(
        "error",
        f"KillSignal={setting.value}: restart-guard marks what is in flight and drains on "
        f"SIGTERM or SIGINT; on {number.name} the bot gets no drain",
        _fix(unit, "KillSignal", "KillSignal=SIGTERM"),
    )


# ------------------------------------------------------------------ command
def _unit_sections(args: argparse.Namespace) -> tuple[list[Section], str | None]:
    """The unit's section, and its User= (for the directory owner check)."""
    name = args.unit
    try:
        if args.unit_file is not None:
            unit = read_unit_file(args.unit_file)
        elif name is not None or (name := unit_of()) is not None:
            unit = read_systemctl(name)
        else:
            section = Section("Service manager")
            section.add(
                "note",
                "no systemd unit checked (pass --unit NAME or --unit-file PATH). Elsewhere, "
                "keep drain_timeout plus a margin under the stop timeout: Docker "
                "stop_grace_period (default 10s), Kubernetes terminationGracePeriodSeconds "
                "(30s, shared with preStop), supervisord stopwaitsecs (10s); see 'Deploying' "
                "in the documentation",
            )
            return [section], None
    except UnitError as exc:
        section = Section(f"systemd unit {args.unit_file or name}")
        section.add(
            "error",
            f"cannot read the unit: {exc}",
            "pass --unit-file /etc/systemd/system/NAME.service (where systemctl cannot run)",
        )
        return [section], None
    user = unit.get("User")
    return [check_unit(unit, args.drain_timeout, args.margin)], user.value if user else None


def diagnose(args: argparse.Namespace) -> list[Section]:
    """Every check the options ask for."""
    unit_sections, unit_user = _unit_sections(args)
    target = resolve_target(args)
    try:
        if target.kind == "redis":
            sections = check_redis(target)
        else:
            assert target.path is not None
            sections = check_directory(target.path, target.origin, unit_user)
    finally:
        target.close()
    return sections + unit_sections


_MARKS = {"ok": "ok", "note": "note", "warning": "WARNING", "error": "ERROR"}


def run(args: argparse.Namespace) -> int:
    """``restart-guard doctor``."""
    try:
        sections = diagnose(args)
    except OpsError as exc:
        print(f"restart-guard doctor: {exc}", file=sys.stderr)
        return 2
    problems = sum(1 for s in sections for f in s.findings if f.level in PROBLEMS)
    if args.json:
        document = {
            "problems": problems,
            "drain_timeout": args.drain_timeout,
            "sections": [
                {"title": s.title, "findings": [f.__dict__ for f in s.findings]} for s in sections
            ],
        }
        print(json.dumps(document, indent=2))
        return 1 if problems else 0
    for section in sections:
        print(section.title)
        for finding in section.findings:
            print(f"  {_MARKS[finding.level]:<8} {finding.message}")
            if finding.fix:
                print(f"  {'':<8} fix: {finding.fix}")
        print()
    print(f"{problems} problem(s) found." if problems else "No problems found.")
    return 1 if problems else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the CLI's subcommands."""
    parser = add_store_command(commands, "doctor", run, SUMMARY, __doc__)
    unit = parser.add_mutually_exclusive_group()
    unit.add_argument("--unit", metavar="NAME", help="a systemd unit, read with systemctl show")
    unit.add_argument("--unit-file", metavar="PATH", help="a systemd unit file (and its .d/)")
    parser.add_argument(
        "--drain-timeout",
        type=seconds_argument,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="S",
        help=f"the bot's protect(drain_timeout=...) (default {DEFAULT_DRAIN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--margin",
        type=seconds_argument,
        default=DEFAULT_MARGIN,
        metavar="S",
        help="time to leave between the drain and SIGKILL for the framework's own shutdown "
        f"(default {DEFAULT_MARGIN:g})",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
