"""The guarded client class and ``install`` / ``install_class`` / ``uninstall``.

A guarded client's class is a subclass made for its class (by ``@protect``
on the class, or once per class for ``protect(instance)``, whose
``__class__`` is then swapped), so the user's own ``setup_hook``,
``on_ready``, ``close`` and everything else keep running: the overrides
here do their part and call the user's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import discord

from restart_guard import Settings

from ._lifecycle import _LOOP_SIGNALS, close, startup
from ._state import STATE_ATTR, ClientState, log, state_of
from ._tracking import ensure_hooks, remove_hooks, schedule_event

__all__ = ["install", "install_class", "is_guarded_class", "uninstall"]

ClientT = TypeVar("ClientT", bound=discord.Client)

# Client class -> its guarded subclass (for protect() on an instance).
_GUARDED: dict[type, type] = {}
# Class attributes of a guarded class: the class holding the overrides (for
# their super()), and the options of @protect on a class.
_GUARD_CLASS = "_restart_guard_class"
_SETTINGS = "_restart_guard_settings"


def _above(client: discord.Client) -> Any:
    """``super()`` for the overrides below, which are not defined inside the guarded class."""
    return super(getattr(type(client), _GUARD_CLASS), client)


def _init(self: discord.Client, *args: Any, **kwargs: Any) -> None:
    _above(self).__init__(*args, **kwargs)
    settings: Settings | None = getattr(type(self), _SETTINGS)
    if settings is not None and state_of(self) is None:
        _attach(self, settings, None)


async def _setup_hook(self: discord.Client) -> None:
    # Ours first: notices go out before the user's (possibly slow) set-up.
    await startup(self)
    await _above(self).setup_hook()


async def _login(self: discord.Client, token: str) -> None:
    await _above(self).login(token)
    # In case setup_hook was replaced on the instance and never reached ours.
    await startup(self)


def _schedule_event(
    self: discord.Client,
    coro: Callable[..., Coroutine[Any, Any, Any]],
    event_name: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    state: ClientState | None = self.__dict__.get(STATE_ATTR)
    schedule = _above(self)._schedule_event
    if state is None or (state.guard is None and not state.stopping):
        return schedule(coro, event_name, *args, **kwargs)
    return schedule_event(self, state, schedule, coro, event_name, args, kwargs)


async def _close(self: discord.Client) -> None:
    await close(self, _above(self).close)


_OVERRIDES = {
    "__init__": _init,
    "setup_hook": _setup_hook,
    "login": _login,
    "_schedule_event": _schedule_event,
    "close": _close,
}


def _guarded_class(original: type[ClientT], settings: Settings | None) -> type[ClientT]:
    """A subclass of ``original`` with the overrides above.

    ``original`` is its only base, so an instance's ``__class__`` can be swapped
    to it (a mixin base would change the layout CPython checks: ``Bot``'s solid
    base is not ``Client``'s).
    """
    namespace: dict[str, Any] = {
        "__module__": original.__module__,
        "__qualname__": original.__qualname__,
        "__doc__": original.__doc__,
        _SETTINGS: settings,
    }
    if not is_guarded_class(original):
        namespace.update(_OVERRIDES)
    guarded: type[ClientT] = type(original.__name__, (original,), namespace)
    if not is_guarded_class(original):
        setattr(guarded, _GUARD_CLASS, guarded)
    return guarded


def is_guarded_class(cls: type) -> bool:
    """Whether ``cls`` is (or derives from) a class made by ``protect()``."""
    return hasattr(cls, _GUARD_CLASS)


def _attach(client: discord.Client, settings: Settings, original: type | None) -> None:
    state = ClientState(settings, original)
    client.__dict__[STATE_ATTR] = state
    ensure_hooks(client, state)


def install(client: ClientT, settings: Settings) -> ClientT:
    """Guard a ``Client``/``Bot`` instance (called by :func:`restart_guard.protect`). Idempotent."""
    if state_of(client) is not None:
        log.debug("restart-guard: %r is already protected", client)
        return client
    if client.user is not None or client.is_ready():
        raise RuntimeError(
            "restart_guard.protect must be applied before the client logs in "
            "(before run(), start() or login())"
        )
    original = type(client)
    if not is_guarded_class(original):
        guarded = _GUARDED.get(original)
        if guarded is None:
            guarded = _GUARDED[original] = _guarded_class(original, None)
        client.__class__ = guarded
    _attach(client, settings, original)
    return client


def install_class(cls: type[ClientT], settings: Settings) -> type[ClientT]:
    """Guard every instance of a ``Client``/``Bot`` subclass (``@protect`` on a class).

    Returns a subclass with the same name, module and docstring. Decorating
    an already decorated class returns it unchanged.
    """
    if _SETTINGS in cls.__dict__ and cls.__dict__[_SETTINGS] is not None:
        return cls
    # A subclass of a decorated class gets its own options, not a second guard.
    return _guarded_class(cls, settings)


def uninstall(client: ClientT) -> ClientT:
    """Remove the guard from an instance (called by :func:`restart_guard.unprotect`). Idempotent."""
    state = state_of(client)
    if state is None:
        return client
    if state.guard is not None:
        raise RuntimeError("restart_guard.unprotect needs a closed client (await client.close())")
    remove_hooks(client, state)
    for signals in list(_LOOP_SIGNALS.values()):
        signals.unregister(client)
    del client.__dict__[STATE_ATTR]
    if state.original_class is not None:
        client.__class__ = state.original_class
    # An instance of a decorated class keeps its class; without its state the
    # overrides only pass through to discord.py.
    return client
