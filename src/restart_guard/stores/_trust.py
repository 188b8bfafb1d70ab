"""May the bot trust its marker directory? OpenSSH's ``StrictModes``, for markers.

Whoever can write the marker directory can plant a journal (a notice in a
chat of their choosing; with ``replay=True`` a forged update run by the
bot) or remove the bot's markers. So the directory — the target, when the
path is a symbolic link — must belong to the user the bot runs as and must
not be writable by group or others, and a link on the way must belong to
that user or root. The store refuses a directory that fails this; ``restart-guard
doctor`` reports the same finding through the same function.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DirProblem", "untrusted_dir", "user_name"]


@dataclass(frozen=True)
class DirProblem:
    """Why a directory cannot be trusted (``message``) and what to do about it (``fix``)."""

    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message}; fix: {self.fix}"


def user_name(uid: int) -> str:
    """The login name of ``uid``, or ``uid N`` when it has none."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def untrusted_dir(
    path: Path, target: os.stat_result, link: os.stat_result | None, uid: int | None
) -> DirProblem | None:
    """Why the marker directory ``path`` must not be used by user ``uid``; None if it may.

    ``target`` is the status of the directory itself (``fstat`` of the
    descriptor the store will use); ``link`` the ``lstat`` of ``path`` when
    it is a symbolic link. With ``uid`` None only the permissions are checked.
    """
    resolved = Path(os.path.realpath(path)) if link is not None else path
    where = f"{path} (a link to {resolved})" if link is not None else str(path)
    own = "the bot's user" if uid is None else user_name(uid)
    elsewhere = "or point marker_dir / $RESTART_GUARD_DIR at a directory of the bot's own"
    if link is not None and uid is not None and link.st_uid not in (uid, 0):
        return DirProblem(
            f"{path} is a symbolic link owned by {user_name(link.st_uid)}, who can point it "
            "anywhere",
            f"replace it with a directory of {own}: rm {path} && mkdir -m 700 {path}",
        )
    if uid is not None and target.st_uid != uid:
        return DirProblem(
            f"{where} belongs to {user_name(target.st_uid)}, not to {own} that runs the bot: "
            "its owner could plant or remove markers",
            f"chown {own}: {resolved} && chmod 700 {resolved}, {elsewhere}",
        )
    mode = stat.S_IMODE(target.st_mode)
    if mode & 0o022:
        who = {0o020: "its group", 0o002: "all users"}.get(mode & 0o022, "its group and all users")
        if mode & stat.S_ISVTX:
            # A shared directory such as /tmp: chmodding it would break everyone else.
            fix = f"leave {resolved} as it is (it is shared) and point marker_dir / "
            fix += "$RESTART_GUARD_DIR at a directory of the bot's own (mkdir -m 700 DIR)"
        else:
            fix = f"chmod 700 {resolved}, {elsewhere}"
        return DirProblem(
            f"{where} is writable by {who} (mode {mode:04o}): another local user could "
            "plant or remove markers",
            fix,
        )
    return None
