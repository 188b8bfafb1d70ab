"""Start-up (claim, notices, signals) and the stop (pre-mark, refuse new events, drain, close).

discord.py has no SIGTERM handler (SIGTERM kills the bot at once) and its
``run()`` turns SIGINT into cancelling every task, handlers included. The
adapter puts its own handlers on the client's event loop from
``setup_hook``: the first SIGTERM or SIGINT durably marks everything in
flight of every guarded client on that loop, then closes them — and a
guarded client's ``close()`` drains before it closes. Further signals are
logged and ignored: the drain is bounded by ``drain_timeout``, and cutting
it short is exactly the loss this prevents.
"""

from __future__ import annotations

import asyncio
import signal
import time
import weakref
from collections.abc import Awaitable, Callable

import discord

from restart_guard import Guard, Resumer, make_store
from restart_guard._systemd import notify_ready

from ._link import Link
from ._state import IN_HANDLER, PLATFORM, STARTUP_NOTICE_WAIT, ClientState, log, state_of
from ._tracking import ensure_hooks

__all__ = ["LoopSignals", "close", "loop_signals", "startup"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _identity(client: discord.Client) -> str:
    # The bot's user id (public), never the token; login() has fetched it.
    user = client.user
    if user is not None:
        return str(user.id)
    return str(client.application_id or "unknown")


async def startup(client: discord.Client) -> None:
    """Claim the markers of a dead process and post their notices. Idempotent.

    Called from ``setup_hook`` (before the gateway connects), and again after
    ``login()`` in case the instance's ``setup_hook`` was replaced.
    """
    state = state_of(client)
    if state is None or state.guard is not None or client.is_closed():
        return  # closed during login: nothing will run, so nothing to guard
    ensure_hooks(client, state)
    identity = _identity(client)
    guard = Guard(PLATFORM, make_store(state.settings, PLATFORM, identity), state.settings)
    claimed = guard.start()
    state.guard = guard
    state.stopping = False
    state.stop_task = None
    state.refused = state.refused_marked = 0
    link = Link(client, state)
    state.resumer = Resumer(guard, link)
    loop = asyncio.get_running_loop()
    loop_signals(loop).register(client)
    task = state.resumer.start(claimed)
    if task is not None:
        # Notices go out over HTTP now; a replay needs the gateway, so stop
        # waiting (and let login() go on to connect) as soon as one asks for it.
        wanted = asyncio.ensure_future(link.gateway_wanted.wait())
        try:
            done, _ = await asyncio.wait(
                {task, wanted}, timeout=STARTUP_NOTICE_WAIT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            wanted.cancel()
        if task not in done:
            log.info("restart-guard: notices continue in the background while the bot connects")
    log.info(
        "restart-guard: guarding discord bot %s (%d interrupted conversation(s) claimed)",
        identity,
        len(claimed),
    )
    notify_ready()  # systemd (Type=notify): start-up recovery is done


async def close(client: discord.Client, close_client: Callable[[], Awaitable[None]]) -> None:
    """A guarded client's ``close()``: drain first, then ``close_client()`` (the real close).

    Called from inside a handler (``await bot.close()`` in a shutdown command)
    it only starts the stop: waiting for the drain there would wait for
    itself. The client closes once that handler and the others are done.
    """
    state = state_of(client)
    if state is None or state.guard is None:
        await close_client()
        return
    if state.stop_task is None:
        state.stop_task = asyncio.ensure_future(_stop(state, state.guard, close_client))
    if IN_HANDLER.get() or asyncio.current_task() in state.tasks:
        log.info("restart-guard: close() called by a handler; closing once the drain is over")
        return
    await asyncio.shield(state.stop_task)


async def _stop(
    state: ClientState, guard: Guard, close_client: Callable[[], Awaitable[None]]
) -> None:
    state.begin_stop()  # already done by the signal handler, unless close() came first
    drained = False
    try:
        if state.resumer is not None:
            await state.resumer.cancel()  # unfinished notices stay marked
        left = state.settings.drain_timeout - (time.monotonic() - state.stop_started)
        drained = await guard.wait_idle(max(left, 0.0))
        if not drained:
            guard.seal()
        # Markers first: once the drain is over, a SIGKILL must not find stale ones.
        guard.close()
    finally:
        state.guard = None
        state.resumer = None
        if state.refused:
            log.info(
                "restart-guard: %d event(s) arrived during the drain and were not handled "
                "(%d addressed to the bot, marked for a notice)",
                state.refused,
                state.refused_marked,
            )
        for signals in list(_LOOP_SIGNALS.values()):
            signals.unregister_state(state)
    log.info(
        "restart-guard: %s after %.1fs; closing the discord client",
        "drain complete" if drained else "drain timed out",
        time.monotonic() - state.stop_started,
    )
    await close_client()


class LoopSignals:
    """SIGTERM/SIGINT on one event loop, for every guarded client running on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: list[discord.Client] = []
        self.installed = False
        self.stopping = False

    def register(self, client: discord.Client) -> None:
        """Stop ``client`` on SIGTERM/SIGINT delivered to this loop."""
        if client not in self.clients:
            self.clients.append(client)
        if self.installed:
            return
        try:
            for sig in SIGNALS:
                # Replaces asyncio.run()'s SIGINT handler, which would cancel every task.
                self.loop.add_signal_handler(sig, self._on_signal, sig)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            log.warning(
                "restart-guard: cannot handle SIGTERM/SIGINT on this event loop (%s); "
                "stop the bot with await client.close(), which drains first",
                exc,
            )
            return
        self.installed = True

    def unregister(self, client: discord.Client) -> None:
        """Forget ``client``; the loop's handlers go when no client is left."""
        if client in self.clients:
            self.clients.remove(client)
        if not self.clients and self.installed:
            for sig in SIGNALS:
                self.loop.remove_signal_handler(sig)
            self.installed = False
            self.stopping = False

    def unregister_state(self, state: ClientState) -> None:
        """:meth:`unregister` the client whose state is ``state``."""
        for client in [c for c in self.clients if state_of(c) is state]:
            self.unregister(client)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            log.info(
                "restart-guard: %s ignored: the drain is running (at most drain_timeout)", name
            )
            return
        self.stopping = True
        clients = list(self.clients)
        log.info("restart-guard: %s received; stopping %d discord client(s)", name, len(clients))
        for client in clients:
            state = state_of(client)
            if state is not None:
                state.begin_stop()  # every client durable before anything else runs
        for client in clients:
            self.loop.create_task(client.close(), name="restart-guard-stop")


_LOOP_SIGNALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopSignals] = (
    weakref.WeakKeyDictionary()
)


def loop_signals(loop: asyncio.AbstractEventLoop) -> LoopSignals:
    """The :class:`LoopSignals` of ``loop`` (made on first use)."""
    signals = _LOOP_SIGNALS.get(loop)
    if signals is None:
        signals = _LOOP_SIGNALS[loop] = LoopSignals(loop)
    return signals
