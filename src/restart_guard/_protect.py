"""``protect()``: the one decorator. Finds the adapter for the object it is given."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._adapter import Adapter
from ._compat import check_framework, refuse_fork_object
from ._registry import SUPPORTED, AdapterSpec, spec_for_class
from ._settings import DEFAULT, NoticeOption, OnResume, ReplayOption, Settings
from .errors import AdapterNotAvailable
from .metrics import MetricsHook
from .stores.base import Store

__all__ = ["protect", "unprotect"]

T = TypeVar("T")


def _load(spec: AdapterSpec) -> Adapter[Any]:
    """The ``ADAPTER`` of ``spec``'s module; AdapterNotAvailable names the pip command."""
    check_framework(spec.platform)  # before the import: a moved internal may break it
    try:
        module = importlib.import_module(spec.module)
    except AdapterNotAvailable:
        raise
    except ImportError as exc:
        raise AdapterNotAvailable(spec.missing(exc)) from exc
    adapter = getattr(module, "ADAPTER", None)
    if not isinstance(adapter, Adapter) or adapter.spec != spec:
        raise TypeError(f"{spec.module}.ADAPTER must be the Adapter of {spec.platform}")
    return adapter


@overload
def protect(target: T, /) -> T: ...
@overload
def protect(
    target: None = None,
    /,
    *,
    marker_dir: str | Any | None = ...,
    store: Store | str | None = ...,
    drain_timeout: float = ...,
    notice: NoticeOption = ...,
    giveup_notice: NoticeOption = ...,
    on_resume: OnResume | None = ...,
    replay: ReplayOption = ...,
    max_attempts: int = ...,
    max_age: float = ...,
    metrics: MetricsHook | Any | None = ...,
) -> Callable[[T], T]: ...


def protect(
    target: Any = None,
    /,
    *,
    marker_dir: Any = None,
    store: Store | str | None = None,
    drain_timeout: float = 20.0,
    notice: NoticeOption = DEFAULT,
    giveup_notice: NoticeOption = DEFAULT,
    on_resume: OnResume | None = None,
    replay: ReplayOption = False,
    max_attempts: int = 3,
    max_age: float = 24 * 3600.0,
    metrics: MetricsHook | Any | None = None,
) -> Any:
    """Guard a bot against losing conversations to a restart.

    Use it bare or with options, on a factory function that returns the bot
    object, on the bot object itself, or (discord.py) on a ``Client``
    subclass::

        @restart_guard.protect(marker_dir="/var/lib/mybot/restart-guard", drain_timeout=20)
        def build_app() -> Application: ...

        app = restart_guard.protect()(app)

    Options:

    - ``marker_dir``: where markers are kept. Default ``$RESTART_GUARD_DIR``,
      else the user state directory for "restart-guard", with one
      subfolder per bot in either case.
    - ``store``: a :class:`~restart_guard.Store` object or a ``redis://`` URL
      (default ``$RESTART_GUARD_URL``) instead of a directory.
    - ``drain_timeout``: seconds to wait for running handlers after a stop
      signal (default 20, which fits Kubernetes' 30 s grace period). Keep it
      a few seconds under your service manager's kill timeout.
    - ``notice``: the text posted in the interrupted conversation, or a
      callable ``(marker) -> str | None``; None posts nothing.
    - ``giveup_notice``: the text posted when ``max_attempts`` is exceeded
      (``{attempts}`` is filled in), or a callable, or None.
    - ``on_resume``: ``async def on_resume(marker)`` called after the notice.
    - ``replay``: re-run the interrupted update after the notice (default
      False). Only then is message text stored in a marker. ``"ask"``: the
      notice asks the user with two buttons, *Continue* (re-run it) and
      *Dismiss*; only the user who was cut off may press them, and the
      question stays open across restarts until ``max_age``. A callable
      ``(marker) -> bool | "ask"`` decides per marker (a bot-wide rule; text
      is stored as with True). Turns that ran a handler marked
      :func:`restart_guard.no_replay` are never replayed.
    - ``max_attempts``: resumed turns cut off this many times are given up
      (default 3).
    - ``max_age``: seconds (or a timedelta); older markers are dropped with a
      log line (default 24 h).
    - ``metrics``: a callable receiving a
      :class:`~restart_guard.metrics.MetricsEvent` for every counter
      change (marked, cleared, resumed, dropped, gave_up) and the in-flight
      gauge, or a ``prometheus_client.CollectorRegistry`` to expose them in
      (default None; see :mod:`restart_guard.metrics`).
    """
    settings = Settings(
        marker_dir=marker_dir,
        store=store,
        drain_timeout=drain_timeout,
        notice=notice,
        giveup_notice=giveup_notice,
        on_resume=on_resume,
        replay=replay,
        max_attempts=max_attempts,
        max_age=max_age,
        metrics=metrics,
    )
    if target is None:
        return functools.partial(_apply, settings=settings)
    return _apply(target, settings=settings)


def _apply(target: Any, *, settings: Settings) -> Any:
    refuse_fork_object(target)
    if isinstance(target, type):
        spec = spec_for_class(target)
        if spec is None:
            raise TypeError(
                f"restart_guard.protect cannot guard the class {target!r}; it supports {SUPPORTED}"
            )
        return _load(spec).install_class(target, settings)
    spec = spec_for_class(type(target))
    if spec is not None:
        return _load(spec).install(target, settings)
    if callable(target):
        return _wrap_factory(target, settings)
    raise TypeError(
        f"restart_guard.protect cannot guard {type(target).__module__}."
        f"{type(target).__qualname__}; it supports {SUPPORTED}, or a function returning one"
    )


def _wrap_factory(factory: Callable[..., Any], settings: Settings) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(factory):

        @functools.wraps(factory)
        async def build_async(*args: Any, **kwargs: Any) -> Any:
            return _apply_to_product(await factory(*args, **kwargs), factory, settings)

        return build_async

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Any:
        return _apply_to_product(factory(*args, **kwargs), factory, settings)

    return build


def _apply_to_product(product: Any, factory: Any, settings: Settings) -> Any:
    refuse_fork_object(product)
    if spec_for_class(type(product)) is None:
        raise TypeError(
            f"{getattr(factory, '__qualname__', factory)!r} returned {type(product).__qualname__}, "
            f"which restart_guard.protect cannot guard; it supports {SUPPORTED}"
        )
    return _apply(product, settings=settings)


def unprotect(target: Any) -> Any:
    """Remove the guard from a bot object protected earlier (idempotent)."""
    spec = spec_for_class(type(target))
    if spec is None:
        return target
    return _load(spec).uninstall(target)
