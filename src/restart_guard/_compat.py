"""Which framework releases restart-guard supports, checked when ``protect()`` installs an adapter.

The adapters hook framework internals no framework promises to keep. A bot
on a release that moved one of them must not start unguarded with nobody
told, so before an adapter is imported :func:`check_framework`:

- reads the installed version of each distribution the adapter needs
  (``importlib.metadata``) and compares it with the range tested in CI
  (the adapter registry, the one place the ranges are declared; a test keeps
  ``pyproject.toml``'s extras in step);
- refuses a fork that installs itself under the framework's module name
  (py-cord is the ``discord`` package too);
- verifies every hook point the adapter declares (``restart_guard.adapters._hooks``)
  exists with the expected kind and leading parameters.

Outside the range: :class:`~restart_guard.errors.UnsupportedFrameworkVersion`,
unless ``RESTART_GUARD_ALLOW_UNTESTED=1``, which downgrades it to one WARNING.
A missing or reshaped hook point is always an error: the adapter cannot work.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from ._registry import ADAPTERS, Requirement
from .errors import UnsupportedFrameworkVersion

__all__ = [
    "ALLOW_UNTESTED_ENV",
    "FORKS",
    "FRAMEWORKS",
    "FrameworkSupport",
    "HookPoint",
    "Requirement",
    "check_framework",
    "in_range",
    "refuse_fork_object",
]

log = logging.getLogger("restart_guard")

#: Set to 1 to run on a framework release outside the tested range (one WARNING).
ALLOW_UNTESTED_ENV = "RESTART_GUARD_ALLOW_UNTESTED"


@dataclass(frozen=True)
class HookPoint:
    """One framework internal an adapter overrides, wraps or calls.

    ``target`` is ``"module:Qualified.name"``; ``kind`` is ``"function"``,
    ``"coroutine"``, ``"class"`` or ``"attribute"`` (exists, any kind);
    ``params`` are the leading parameter names it must take, ``self`` included.
    """

    target: str
    kind: str
    params: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class FrameworkSupport:
    """What one adapter needs: its framework's distributions and their ranges."""

    framework: str
    #: The framework's top-level import name; a fork may install itself under it too.
    import_name: str
    requirements: tuple[Requirement, ...]


#: The ranges, from the one place they are declared: the adapter registry.
FRAMEWORKS: dict[str, FrameworkSupport] = {
    spec.platform: FrameworkSupport(spec.framework, spec.import_name, spec.requirements)
    for spec in ADAPTERS
}

#: Forks of discord.py, by distribution name: refused, with the reason.
FORKS: dict[str, str] = {
    "py-cord": (
        "it has no setup_hook, no app_commands.CommandTree and no ViewStore.add_task, "
        "and stops the event loop on SIGTERM"
    ),
    "nextcord": (
        "it has no setup_hook, no app_commands.CommandTree and no ViewStore.add_task, "
        "and stops the event loop on SIGTERM"
    ),
    "disnake": "its client internals differ from discord.py's (no setup_hook, no CommandTree)",
}
# Import name -> fork distribution, for forks whose classes live under their own name.
_FORK_MODULES = {"nextcord": "nextcord", "disnake": "disnake"}


# ------------------------------------------------------------------ versions
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|<|>)\s*(\d+(?:\.\d+)*)\s*$")


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version (``"2.7.1rc1"`` → ``(2, 7, 1)``), zeros trimmed."""
    found = _RELEASE.match(version.strip().lstrip("v"))
    if found is None:
        raise ValueError(f"not a version: {version!r}")
    parts = [int(p) for p in found.group().split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def in_range(version: str, supported: str) -> bool:
    """Whether ``version`` lies in ``supported``, comma-separated clauses like ``">=2.6,<3"``.

    Pre-release and local suffixes are ignored (``3.0b1`` counts as 3.0); the
    ranges here only ever name releases.
    """
    found = _release(version)
    for clause in supported.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"unsupported range clause {clause!r} in {supported!r}")
        op, bound = match.group(1), _release(match.group(2))
        ok = {
            ">=": found >= bound,
            "<=": found <= bound,
            ">": found > bound,
            "<": found < bound,
            "==": found == bound,
            "!=": found != bound,
        }[op]
        if not ok:
            return False
    return True


# --------------------------------------------------------------- hook points
def _resolve(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():
        obj = inspect.getattr_static(obj, part) if isinstance(obj, type) else getattr(obj, part)
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    return obj


def hook_problem(hook: HookPoint) -> str | None:
    """What is wrong with one hook point in the installed framework, or None."""
    try:
        obj = _resolve(hook.target)
    except (ImportError, AttributeError):
        return f"{hook.target} is missing"
    if isinstance(obj, property):
        obj = obj.fget
    kind_ok = {
        "coroutine": inspect.iscoroutinefunction(obj),
        "function": callable(obj) and not inspect.iscoroutinefunction(obj),
        "class": isinstance(obj, type),
        "attribute": True,
    }.get(hook.kind)
    if kind_ok is None:
        raise ValueError(f"unknown hook kind {hook.kind!r} for {hook.target}")
    if not kind_ok:
        return f"{hook.target} is no longer a {hook.kind}"
    if hook.params:
        try:
            names = tuple(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            return f"{hook.target} has no readable signature"
        if names[: len(hook.params)] != hook.params:
            expected, got = ", ".join(hook.params), ", ".join(names)
            return f"{hook.target} takes ({got}), expected ({expected}, ...)"
    return None


# --------------------------------------------------------------------- check
def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _fork_owning(module: str) -> str | None:
    """The fork distribution that installed the import name ``module``, if any."""
    owners = metadata.packages_distributions().get(module, [])
    return next((name for name in owners if name.lower() in FORKS), None)


def _what_to_do(support: FrameworkSupport) -> str:
    pins = " ".join(f'"{r.distribution}{r.supported}"' for r in support.requirements)
    return (
        f"pin a supported release (pip install {pins}), or upgrade restart-guard "
        "(pip install -U restart-guard) if a newer one supports yours"
    )


def _fork_error(fork: str, support: FrameworkSupport) -> UnsupportedFrameworkVersion:
    version = _installed(fork) or "unknown"
    ranges = ", ".join(f"{r.distribution}{r.supported}" for r in support.requirements)
    supported = ", ".join(spec.framework for spec in ADAPTERS)
    return UnsupportedFrameworkVersion(
        f"restart-guard does not support {fork} {version}, a fork of discord.py: "
        f"{FORKS[fork]}, so its bots would run unguarded. restart-guard supports "
        f"{supported} (for Discord: {ranges}); install discord.py instead of {fork}.",
        framework=fork,
        version=version,
        supported=ranges,
    )


@cache
def _findings(platform: str) -> tuple[str | None, tuple[str, ...], bool, tuple[str, ...]]:
    """(fork installed instead, "dist version" found, all in range, hook problems); cached."""
    support = FRAMEWORKS[platform]
    fork = _fork_owning(support.import_name)
    if fork is not None:
        return fork, (), False, ()
    found, in_supported = [], True
    for req in support.requirements:
        version = _installed(req.distribution)
        found.append(f"{req.distribution} {version or '(version unknown)'}")
        in_supported = in_supported and version is not None and in_range(version, req.supported)
    # Data only, importing no framework (the adapters ship as restart_guard.adapters).
    hooks: tuple[HookPoint, ...] = importlib.import_module(_HOOKS_MODULE).HOOKS[platform]
    problems = tuple(p for hook in hooks if (p := hook_problem(hook)) is not None)
    return None, tuple(found), in_supported, problems


_HOOKS_MODULE = "restart_guard.adapters._hooks"
_warned: set[str] = set()


def check_framework(platform: str) -> None:
    """Refuse (or, if allowed, warn about) a framework release the adapter is not tested with.

    Called by ``protect()`` before the ``platform`` adapter is imported.
    Raises :class:`UnsupportedFrameworkVersion`.
    """
    support = FRAMEWORKS.get(platform)
    if support is None or importlib.util.find_spec(support.import_name) is None:
        return  # not installed: the adapter's import says what to pip install
    fork, found, in_supported, problems = _findings(platform)
    if fork is not None:
        raise _fork_error(fork, support)
    versions = ", ".join(found)
    supported = ", ".join(f"{r.distribution}{r.supported}" for r in support.requirements)
    if problems:
        raise UnsupportedFrameworkVersion(
            f"restart-guard cannot guard {versions}: {'; '.join(problems)}. The bot would "
            f"run unguarded, so protect() refuses it. Supported: {supported}. To fix: "
            f"{_what_to_do(support)}.",
            framework=support.framework,
            version=versions,
            supported=supported,
        )
    if in_supported:
        return
    if os.environ.get(ALLOW_UNTESTED_ENV, "") not in ("", "0"):
        if platform not in _warned:
            _warned.add(platform)
            log.warning(
                "restart-guard: running on untested %s (supported: %s) because %s is set; "
                "every framework internal the adapter hooks was found",
                versions,
                supported,
                ALLOW_UNTESTED_ENV,
            )
        return
    raise UnsupportedFrameworkVersion(
        f"restart-guard is not tested with {versions} (supported: {supported}). To fix: "
        f"{_what_to_do(support)}. To run anyway on this untested release, set "
        f"{ALLOW_UNTESTED_ENV}=1 (the bot then logs one warning).",
        framework=support.framework,
        version=versions,
        supported=supported,
    )


def refuse_fork_object(obj: object) -> None:
    """Raise a clear error if ``obj`` (or its class) comes from a refused discord.py fork."""
    cls = obj if isinstance(obj, type) else type(obj)
    fork = _FORK_MODULES.get(cls.__module__.partition(".")[0])
    if fork is not None:
        raise _fork_error(fork, FRAMEWORKS["discord"])
