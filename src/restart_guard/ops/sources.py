"""Which marker stores a ``restart-guard`` command looks at, chosen as ``protect()`` does.

``--store URL`` (or ``$RESTART_GUARD_URL`` when ``--dir`` is not given): a
Redis server; every bot namespace ``restart-guard:<platform>-<hash>`` in it,
or the ones named with ``--namespace``. Otherwise a directory: ``--dir``,
``$RESTART_GUARD_DIR`` or the user state directory. A directory is either
one bot's marker directory (it holds ``journal-*.log`` files: what an
explicit ``protect(marker_dir=...)`` uses) or a base directory with one
``<platform>-<hash>`` subfolder per bot (what ``protect()`` uses by
default); both are recognised, so the command shows every bot.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._settings import ENV_DIR, ENV_URL
from ..stores.base import OperatorStore
from ..stores.directory import DirectoryStore

__all__ = [
    "BOT_FOLDER",
    "OpsError",
    "Source",
    "Target",
    "add_store_command",
    "is_marker_dir",
    "resolve_target",
]

#: A bot's subfolder of the base directory: ``default_marker_dir`` names it.
BOT_FOLDER = re.compile(r"^[a-z][a-z0-9_]*-[0-9a-f]{12}$")
_MARKER_FILE = re.compile(r"^(journal-[0-9a-f]{16}\.log(\.corrupt)?|\.journal-[0-9a-f]{16}\.tmp)$")
#: The namespace prefix ``protect()`` gives Redis stores built from a URL.
REDIS_PREFIX = "restart-guard:"
_URL_SCHEMES = ("redis://", "rediss://", "unix://")
_REDIS_TIMEOUT = 3.0


class OpsError(Exception):
    """Something the operator must fix to run the command; the message says what."""


@dataclass
class Source:
    """One bot's markers: a marker directory or a Redis namespace."""

    label: str  # the bot folder's name, or the namespace without its prefix
    location: str  # the directory, or "redis://host:port/db namespace NS"
    kind: str  # "directory" or "redis"
    store: OperatorStore
    path: Path | None = None


@dataclass
class Target:
    """What the operator pointed at (``where``) and how (``origin``), and its sources."""

    kind: str  # "directory" or "redis"
    where: str
    origin: str
    path: Path | None = None
    url: str | None = None
    namespaces: list[str] = field(default_factory=list)
    _client: Any = None

    def sources(self) -> list[Source]:
        """Every bot's store under the target; [] if there is nothing (yet)."""
        if self.kind == "redis":
            return list(self._redis_sources())
        assert self.path is not None
        return list(_directory_sources(self.path))

    @property
    def redis_client(self) -> Any:
        """A redis-py client for the target URL (short timeouts), created on first use."""
        if self._client is None:
            assert self.url is not None
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
            )
        return self._client

    def close(self) -> None:
        """Close the Redis connection, if one was made."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _redis_sources(self) -> Iterator[Source]:
        backend = importlib.import_module("restart_guard.stores.redis")
        namespaces = self.namespaces or self._discover_namespaces()
        for namespace in namespaces:
            label = namespace.removeprefix(REDIS_PREFIX)
            yield Source(
                label=label,
                location=f"{self.where} namespace {namespace}",
                kind="redis",
                store=backend.RedisStore(self.redis_client, namespace=namespace),
            )

    def _discover_namespaces(self) -> list[str]:
        import redis

        backend = importlib.import_module("restart_guard.stores.redis")
        try:
            return list(backend.find_namespaces(self.redis_client, REDIS_PREFIX))
        except redis.RedisError as exc:
            raise OpsError(
                f"cannot read Redis at {self.where}: {exc}. Check that it runs and the URL "
                "(--store / $RESTART_GUARD_URL) is right"
            ) from exc


def add_store_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    doc: str | None,
    *,
    aliases: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Add the operator's command ``name``: ``summary`` in the CLI's list, its module's ``doc``
    as its ``--help``, the options that say where the markers are; returns its parser."""
    parser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_store_options(parser)
    parser.set_defaults(run=run)
    return parser


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--dir`` / ``--store`` / ``--namespace``, as ``protect()`` reads them."""
    group = parser.add_argument_group(
        "where markers are",
        f"Default: ${ENV_URL} if set, else ${ENV_DIR}, else the user state directory, "
        "as protect() chooses.",
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--dir",
        metavar="PATH",
        help="a marker directory (protect(marker_dir=...)) or a base directory with one "
        "subfolder per bot",
    )
    where.add_argument(
        "--store", metavar="URL", help="a redis://, rediss:// or unix:// URL (protect(store=...))"
    )
    group.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="with a Redis store: only this namespace (repeatable); default: every "
        f"{REDIS_PREFIX}* namespace",
    )


def resolve_target(args: argparse.Namespace) -> Target:
    """The target the options (or the environment) name, chosen as ``protect()`` does."""
    url, origin = args.store, "--store"
    if url is None and args.dir is None and os.environ.get(ENV_URL):
        url, origin = os.environ[ENV_URL], f"${ENV_URL}"
    if url is not None:
        return _redis_target(url, origin, args.namespace)
    if args.namespace:
        raise OpsError("--namespace applies to a Redis store (--store or $RESTART_GUARD_URL)")
    if args.dir is not None:
        path, origin = Path(args.dir), "--dir"
    elif os.environ.get(ENV_DIR):
        path, origin = Path(os.environ[ENV_DIR]), f"${ENV_DIR}"
    else:
        import platformdirs

        path = Path(platformdirs.user_state_dir("restart-guard"))
        origin = f"the default state directory of user {_user()}"
    return Target(kind="directory", where=str(path), origin=origin, path=path)


def _redis_target(url: str, origin: str, namespaces: list[str]) -> Target:
    if not url.startswith(_URL_SCHEMES):
        raise OpsError(f"unsupported store URL {redact(url)!r} ({origin}): expected redis://…")
    try:
        importlib.import_module("restart_guard.stores.redis")
    except ImportError as exc:
        raise OpsError(
            f'the Redis store needs redis-py: pip install "restart-guard[redis]" ({exc})'
        ) from exc
    return Target(kind="redis", where=redact(url), origin=origin, url=url, namespaces=namespaces)


def redact(url: str) -> str:
    """``url`` without its password, for output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def is_marker_dir(path: Path) -> bool:
    """True if ``path`` holds journals (or their leftovers): one bot's marker directory."""
    try:
        return any(_MARKER_FILE.match(name) for name in os.listdir(path))
    except OSError:
        return False


def bot_folders(path: Path) -> list[Path]:
    """The ``<platform>-<hash>`` subfolders of a base directory, sorted."""
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    return [path / n for n in names if BOT_FOLDER.match(n) and (path / n).is_dir()]


def _directory_sources(path: Path) -> Iterator[Source]:
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.X_OK):
        raise OpsError(f"cannot read {path}: permission denied. Run as the bot's user (sudo -u …)")
    folders = bot_folders(path)
    # A directory with no bot subfolders is a marker directory even when empty.
    if is_marker_dir(path) or not folders:
        yield _directory_source(path, path.name or str(path))
    for folder in folders:
        yield _directory_source(folder, folder.name)


def _directory_source(path: Path, label: str) -> Source:
    return Source(
        label=label, location=str(path), kind="directory", store=DirectoryStore(path), path=path
    )


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
