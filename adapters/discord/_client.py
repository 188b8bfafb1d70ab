"""The guarded client class: start-up in ``setup_hook``, the drain in ``close()``.

A guarded client's class is a subclass made for its class (by ``@protect``
on the class, or once per class for ``protect(instance)``, whose
``__class__`` is then swapped), so the user's own ``setup_hook``,
``on_ready``, ``close`` and everything else keep running: the overrides
here do their part and call the user's.

Signals: discord.py has no SIGTERM handler (SIGTERM kills the bot at once)
and its ``run()`` turns SIGINT into cancelling every task, handlers
included. Start-up asks the client's ``Lifecycle`` to handle both on the
client's loop: the first signal durably marks everything in flight of every
guarded client on that loop, then closes them — and a guarded client's
``close()`` drains before it closes; a second signal during the drain stops
now (the unfinished turns stay marked).

The gateway handshake: discord.py's ``close()`` must not run while
``connect()`` is inside ``DiscordWebSocket.from_client`` (the socket is open,
HELLO and IDENTIFY or RESUME not through yet). ``close()`` closes the HTTP
session and with it that socket; ``connect()`` takes the drop for a reconnect
and, on the first connection, reads ``self.ws.sequence`` of a websocket it
never had — an AttributeError out of ``run()``. An ``AutoShardedClient``'s
``connect()`` launches its shards one by one and retries a failed handshake
forever, closed or not: ``run()`` never returns. So when the drain is over
and ``connect()`` has no open gateway socket (or shards left to launch), the
stop cancels ``connect()`` first (it then returns, as after a close), and
closes once it has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import discord

from restart_guard import Settings
from restart_guard._lifecycle import CUT_OFF_WAIT

from ._link import Link
from ._state import (
    IN_HANDLER,
    STATE_ATTR,
    SWAPPED_CLASS,
    BotState,
    Connecting,
    above,
    log,
    state_of,
)
from ._tracking import ensure_hooks, schedule_event

__all__ = ["SETTINGS", "attach", "guarded_class", "is_guarded_class", "swap_in"]

ClientT = TypeVar("ClientT", bound=discord.Client)

# Client class -> its guarded subclass (for protect() on an instance).
_GUARDED: dict[type, type] = {}
# Class attribute of a guarded class: the options of @protect on a class.
SETTINGS = "_restart_guard_settings"


def _identity(client: discord.Client) -> str:
    # The bot's user id (public), never the token; login() has fetched it.
    user = client.user
    if user is not None:
        return str(user.id)
    return str(client.application_id or "unknown")


async def _start(client: discord.Client) -> None:
    """Claim the markers of a dead process and post their notices. Idempotent.

    Called from ``setup_hook`` (before the gateway connects), and again after
    ``login()`` in case the instance's ``setup_hook`` was replaced.
    """
    state = state_of(client)
    if state is None or state.lifecycle.guard is not None or client.is_closed():
        return  # closed during login: nothing will run, so nothing to guard
    ensure_hooks(client, state)
    state.stop_task = None
    state.refused = state.refused_marked = 0
    link = Link(client)
    state.lifecycle.handle_signals(
        client.close, how_to_stop="stop the bot with await client.close(), which drains first"
    )
    # Notices go out over HTTP now; a replay needs the gateway, so stop waiting
    # (and let login() go on to connect) as soon as one asks for it.
    await state.lifecycle.start(_identity(client), link, stop_waiting=link.gateway_wanted)


async def _close(client: discord.Client, close_client: Callable[[], Awaitable[None]]) -> None:
    """A guarded client's ``close()``: drain first, then ``close_client()`` (the real close).

    Called from inside a handler (``await bot.close()`` in a shutdown command)
    it only starts the stop: waiting for the drain there would wait for
    itself. The client closes once that handler and the others are done.
    """
    state = state_of(client)
    if state is None or state.lifecycle.guard is None:
        await close_client()
        return
    connecting = state.connecting
    if connecting is not None and connecting.task is asyncio.current_task():
        # connect() closes the client itself after a gateway error it will raise:
        # it is past any handshake, and cancelling it would swallow that error.
        state.connecting = None
    if state.stop_task is None:
        state.stop_task = asyncio.ensure_future(_stop_then_close(client, state, close_client))
    if IN_HANDLER.get() or asyncio.current_task() in state.tasks:
        log.info("restart-guard: close() called by a handler; closing once the drain is over")
        return
    await asyncio.shield(state.stop_task)


async def _stop_then_close(
    client: discord.Client, state: BotState, close_client: Callable[[], Awaitable[None]]
) -> None:
    lifecycle = state.lifecycle
    drained = False
    try:
        drained = await lifecycle.stop()
    finally:
        if state.refused:
            log.info(
                "restart-guard: %d event(s) arrived during the drain and were not handled "
                "(%d addressed to the bot, marked for a notice)",
                state.refused,
                state.refused_marked,
            )
    outcome = "drain complete"
    if not drained:
        outcome = "drain cut short" if lifecycle.cut_short else "drain timed out"
    log.info(
        "restart-guard: %s after %.1fs; closing the discord client",
        outcome,
        time.monotonic() - lifecycle.stop_started,
    )
    await _leave_handshake(client, state)
    await close_client()


def _in_handshake(client: discord.Client, connecting: Connecting) -> bool:
    """Whether ``connect()`` runs without an open gateway socket: a handshake, or a reconnect.

    An ``AutoShardedClient`` has no ``client.ws``: its ``connect()`` is in a
    handshake until every shard it launches is up (``launch_shards``).
    """
    if connecting.task.done():
        return False
    if isinstance(client, discord.AutoShardedClient):
        return _launching_shards(client)
    ws = client.ws
    return ws is None or not ws.open


def _launching_shards(client: discord.AutoShardedClient) -> bool:
    """Whether ``launch_shards`` has shards left to connect.

    It retries a shard whose handshake failed every 5 s for as long as it
    takes, closed client or not: a ``close()`` in the middle leaves ``run()``
    retrying forever (until the service manager's SIGKILL).
    """
    count = client.shard_count  # None until /gateway/bot was read
    wanted = client.shard_ids or (range(count) if count is not None else None)
    return wanted is None or len(client.shards) < len(wanted)


async def _leave_handshake(client: discord.Client, state: BotState) -> None:
    """Cancel ``connect()`` if it is in a gateway handshake; wait (bounded) until it returned.

    Not connecting yet, or connected, ``close()`` ends ``connect()`` cleanly
    by itself (see the module docstring for why a handshake is different).
    """
    connecting = state.connecting
    if connecting is None or not _in_handshake(client, connecting):
        return
    log.info("restart-guard: the gateway handshake is not over; cancelling it to close")
    connecting.cut = True
    connecting.task.cancel()
    try:
        await asyncio.wait_for(connecting.over.wait(), CUT_OFF_WAIT)
    except asyncio.TimeoutError:
        # The handshake ended on its own as the cancellation came (Python < 3.12's
        # wait_for may swallow it then): the gateway is open, close() handles it.
        log.info("restart-guard: connect() went on after the cancellation; closing anyway")


def _init(self: discord.Client, *args: Any, **kwargs: Any) -> None:
    above(self).__init__(*args, **kwargs)
    settings: Settings | None = getattr(type(self), SETTINGS)
    if settings is not None and state_of(self) is None:
        attach(self, settings, None)


async def _setup_hook(self: discord.Client) -> None:
    # Ours first: notices go out before the user's (possibly slow) set-up.
    await _start(self)
    await above(self).setup_hook()


async def _login(self: discord.Client, token: str) -> None:
    await above(self).login(token)
    # In case setup_hook was replaced on the instance and never reached ours.
    await _start(self)


def _schedule_event(
    self: discord.Client,
    coro: Callable[..., Coroutine[Any, Any, Any]],
    event_name: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    state: BotState | None = self.__dict__.get(STATE_ATTR)
    schedule = above(self)._schedule_event
    if state is None or (state.lifecycle.guard is None and state.lifecycle.accepting):
        return schedule(coro, event_name, *args, **kwargs)
    return schedule_event(self, state, schedule, coro, event_name, args, kwargs)


async def _connect(self: discord.Client, *, reconnect: bool = True) -> None:
    state = state_of(self)
    task = asyncio.current_task()
    if state is None or task is None:
        await above(self).connect(reconnect=reconnect)
        return
    connecting = state.connecting = Connecting(task)
    try:
        await above(self).connect(reconnect=reconnect)
    except asyncio.CancelledError:
        if not connecting.cut:
            raise
        # Cut short by the stop to close the client: return as after a close().
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
    finally:
        connecting.over.set()
        if state.connecting is connecting:
            state.connecting = None


async def _close_override(self: discord.Client) -> None:
    await _close(self, above(self).close)


_OVERRIDES = {
    "__init__": _init,
    "setup_hook": _setup_hook,
    "login": _login,
    "connect": _connect,
    "_schedule_event": _schedule_event,
    "close": _close_override,
}


def guarded_class(original: type[ClientT], settings: Settings | None) -> type[ClientT]:
    """A subclass of ``original`` with the overrides above.

    ``original`` is its only base, so an instance's ``__class__`` can be swapped
    to it (a mixin base would change the layout CPython checks: ``Bot``'s solid
    base is not ``Client``'s).
    """
    namespace: dict[str, Any] = {
        "__module__": original.__module__,
        "__qualname__": original.__qualname__,
        "__doc__": original.__doc__,
        SETTINGS: settings,
    }
    if not is_guarded_class(original):
        namespace.update(_OVERRIDES)
    guarded: type[ClientT] = type(original.__name__, (original,), namespace)
    if not is_guarded_class(original):
        setattr(guarded, SWAPPED_CLASS, guarded)
    return guarded


def is_guarded_class(cls: type) -> bool:
    """Whether ``cls`` is (or derives from) a class made by ``protect()``."""
    return hasattr(cls, SWAPPED_CLASS)


def attach(client: discord.Client, settings: Settings, original: type | None) -> None:
    """Give ``client`` its state (and hook what exists of it already)."""
    state = BotState(settings, original)
    client.__dict__[STATE_ATTR] = state
    ensure_hooks(client, state)


def swap_in(client: ClientT) -> None:
    """Swap ``client``'s class for its guarded subclass (made once per class)."""
    original = type(client)
    if is_guarded_class(original):
        return
    guarded = _GUARDED.get(original)
    if guarded is None:
        guarded = _GUARDED[original] = guarded_class(original, None)
    client.__class__ = guarded
