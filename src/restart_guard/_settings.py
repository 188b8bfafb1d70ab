"""The options of ``protect()``, validated once, and where markers are kept by default."""

from __future__ import annotations

import hashlib
import importlib
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from ._marker import Marker
from .metrics import MetricsHook, check_metrics_option
from .stores.base import Store

__all__ = [
    "DEFAULT",
    "NoticeOption",
    "ReplayOption",
    "Settings",
    "default_marker_dir",
    "make_store",
]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: Use the built-in notice text.
DEFAULT: Any = _Default()

NoticeOption = str | Callable[[Marker], str | None] | None
#: ``replay=``: re-run interrupted turns (True), never (False), ask the user first
#: ("ask"), or a rule ``(marker) -> bool | "ask"``.
ReplayOption = bool | Literal["ask"] | Callable[[Marker], Any]
OnResume = Callable[[Marker], Awaitable[None]]

ENV_DIR = "RESTART_GUARD_DIR"
ENV_URL = "RESTART_GUARD_URL"


@dataclass(frozen=True)
class Settings:
    """Everything ``protect()`` accepts; see its docstring for each option."""

    marker_dir: str | os.PathLike[str] | None = None
    store: Store | str | None = None
    drain_timeout: float = 20.0
    notice: NoticeOption = DEFAULT
    giveup_notice: NoticeOption = DEFAULT
    on_resume: OnResume | None = None
    #: True, False, "ask", or a rule ``(marker) -> bool | "ask"`` (:mod:`restart_guard._policy`).
    replay: ReplayOption = False
    max_attempts: int = 3
    max_age: float = 24 * 3600.0
    #: A :data:`~restart_guard.metrics.MetricsHook` or a prometheus_client registry.
    metrics: MetricsHook | Any | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_age, timedelta):
            object.__setattr__(self, "max_age", self.max_age.total_seconds())
        if isinstance(self.drain_timeout, timedelta):
            object.__setattr__(self, "drain_timeout", self.drain_timeout.total_seconds())
        for name in ("drain_timeout", "max_age"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or (self.max_attempts < 1)
        ):
            raise ValueError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        for name in ("notice", "giveup_notice"):
            value = getattr(self, name)
            if not (value is None or value is DEFAULT or isinstance(value, str) or callable(value)):
                raise TypeError(f"{name} must be text, a callable or None, got {value!r}")
        if not (isinstance(self.replay, bool) or self.replay == "ask" or callable(self.replay)):
            raise TypeError(
                'replay must be True, False, "ask" or a callable (marker) -> bool | "ask", '
                f"got {self.replay!r}"
            )
        if self.on_resume is not None and not callable(self.on_resume):
            raise TypeError(f"on_resume must be an async callable, got {self.on_resume!r}")
        check_metrics_option(self.metrics)


def default_marker_dir(platform: str, bot_identity: str) -> Path:
    """``$RESTART_GUARD_DIR`` or the user state dir, plus one subfolder per bot.

    The subfolder name is a hash of the bot's public identity (never a
    token), so two bots on one machine never share markers.
    """
    base = os.environ.get(ENV_DIR)
    if not base:
        import platformdirs

        base = platformdirs.user_state_dir("restart-guard")
    digest = hashlib.sha256(f"{platform}:{bot_identity}".encode()).hexdigest()[:12]
    return Path(base) / f"{platform}-{digest}"


def make_store(settings: Settings, platform: str, bot_identity: str) -> Store:
    """The store ``settings`` ask for.

    - A :class:`~restart_guard.stores.base.Store` object (``store=RedisStore(...)``,
      a ``FallbackStore``, your own): used as it is.
    - A ``redis://``, ``rediss://`` or ``unix://`` URL, from ``store=`` or else
      ``$RESTART_GUARD_URL``: a ``RedisStore`` in a namespace of this bot,
      backed by a ``DirectoryStore`` in the local marker directory
      (``marker_dir``, else :func:`default_marker_dir`) that takes the
      writes while Redis is unreachable; the next start reads both.
    - Otherwise: a ``DirectoryStore`` in ``marker_dir`` or the default directory.
    """
    if settings.store is not None and not isinstance(settings.store, str):
        return settings.store
    from .stores.directory import DirectoryStore

    local = DirectoryStore(
        settings.marker_dir
        if settings.marker_dir is not None
        else default_marker_dir(platform, bot_identity)
    )
    url = settings.store or os.environ.get(ENV_URL)
    if not url:
        return local
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unsupported store URL {url!r}: expected redis://…")
    # Imported only when asked for, so redis-py is needed only by its users.
    redis_backend = importlib.import_module("restart_guard.stores.redis")
    from .stores.fallback import FallbackStore

    # Same hash as the marker directory's folder name: one namespace per bot, and
    # the token never appears in a key.
    digest = hashlib.sha256(f"{platform}:{bot_identity}".encode()).hexdigest()[:12]
    shared: Store = redis_backend.RedisStore(url, namespace=f"restart-guard:{platform}-{digest}")
    return FallbackStore(shared, local)
