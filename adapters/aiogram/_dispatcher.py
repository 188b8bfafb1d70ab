"""The hooks: a subclass mixed into the guarded dispatcher's class, one per dispatcher.

Every override does its framework step and hands the sequence to
``_lifecycle``; none of them changes what aiogram does with an update.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from restart_guard import Settings

from . import _lifecycle as lifecycle
from ._keys import conversation_of
from ._link import payload_of
from ._state import IN_HANDLER, DispatcherState, log, state_of

__all__ = ["install", "uninstall"]

_CUT_OFF = (asyncio.CancelledError, GeneratorExit)


class _GuardedDispatcher(Dispatcher):
    """Overrides mixed into a guarded dispatcher's class (see the package docstring)."""

    _restart_guard: DispatcherState

    # ------------------------------------------------------------ start-up
    async def emit_startup(self, *args: Any, **kwargs: Any) -> None:
        await super().emit_startup(*args, **kwargs)  # the user's own startup handlers first
        await lifecycle.start(self, state_of(self), _bots_in(kwargs))

    # ------------------------------------------------------------ intake
    @classmethod
    async def _listen_updates(
        cls, bot: Bot, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Update, None]:
        state = state_of(cls)
        async for update in super()._listen_updates(bot, *args, **kwargs):
            if state.intake_closed:
                # Stopping: hand aiogram nothing more and ask Telegram for nothing more;
                # what was fetched stays unconfirmed, so Telegram delivers it again.
                await asyncio.Event().wait()  # until aiogram cancels polling
            key = (bot.id, update.update_id)
            if key in state.replayed:
                log.info(
                    "restart-guard: update %d was redelivered by Telegram and already "
                    "replayed; skipped",
                    update.update_id,
                )
                continue
            bot_guard = state.bots.get(bot.id)
            if bot_guard is not None:
                # In flight from the moment it is taken: the next getUpdates confirms it.
                bot_guard.last_taken = max(bot_guard.last_taken, update.update_id)
                conversation = conversation_of(update)
                if conversation is not None:
                    payload = payload_of(update) if state.settings.replay else None
                    guard = bot_guard.guard
                    state.taken[key] = (guard, guard.begin(conversation, payload))
                    bot_guard.unsynced = True
            yield update

    # ------------------------------------------------------------ every update
    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        state = state_of(self)
        taken = state.taken.pop((bot.id, update.update_id), None) if state.taken else None
        if taken is None:
            bot_guard = state.bots.get(bot.id)
            if bot_guard is None and not state.intake_closed:
                lifecycle.start_bot(self, state, bot)  # a bot first seen here (webhook per token)
                bot_guard = state.bots[bot.id]
            conversation = conversation_of(update)
            if bot_guard is None or conversation is None:
                return await super().feed_update(bot, update, **kwargs)
            payload = payload_of(update) if state.settings.replay else None
            taken = (bot_guard.guard, bot_guard.guard.begin(conversation, payload))
        guard, run = taken
        in_handler = IN_HANDLER.set(True)
        completed = True
        try:
            return await super().feed_update(bot, update, **kwargs)
        except _CUT_OFF:
            completed = not guard.stopping
            raise
        finally:
            IN_HANDLER.reset(in_handler)
            guard.end(run, completed=completed)

    # ------------------------------------------------------------ stop
    def _signal_stop_polling(self, sig: signal.Signals) -> None:
        # aiogram's SIGTERM/SIGINT handler would cancel polling — and, with
        # handle_as_tasks=False, the running handler — at once. Drain first.
        state = state_of(self)
        if not state.bots or not self._running_lock.locked():
            super()._signal_stop_polling(sig)
            return
        if not lifecycle.request_stop(state):
            log.info(
                "restart-guard: %s ignored: the drain is running (at most drain_timeout)", sig.name
            )
            return
        log.info(
            "restart-guard: %s received; draining (at most %.0fs) before aiogram stops polling",
            sig.name,
            state.settings.drain_timeout,
        )
        state.stop_task = asyncio.ensure_future(self._restart_guard_stop(sig))

    async def stop_polling(self) -> None:
        state = state_of(self)
        if state.bots and self._running_lock.locked():
            if lifecycle.request_stop(state):
                state.stop_task = asyncio.ensure_future(self._restart_guard_stop(None))
            if IN_HANDLER.get():
                # Waiting here would wait for this very handler to finish.
                log.info(
                    "restart-guard: stop_polling() called by a handler; stopping after the drain"
                )
                return
            if state.stop_task is not None:
                await asyncio.shield(state.stop_task)
                return
        await super().stop_polling()

    async def _restart_guard_stop(self, sig: signal.Signals | None) -> None:
        await lifecycle.drain(state_of(self), polling_stopped=False)
        if sig is not None:
            super()._signal_stop_polling(sig)  # aiogram's own stop from here on
        elif self._stop_signal is not None:
            self._stop_signal.set()
            if self._stopped_signal is not None:
                await self._stopped_signal.wait()

    async def emit_shutdown(self, *args: Any, **kwargs: Any) -> None:
        state = state_of(self)
        if state.bots:
            try:
                if lifecycle.request_stop(state):
                    # A stop the signal hook did not see: webhook shutdown, a cancelled
                    # start_polling, polling that failed. aiogram stopped polling already.
                    log.info("restart-guard: aiogram is shutting down; draining first")
                    await lifecycle.drain(state, polling_stopped=True)
            finally:
                await lifecycle.close(state)
        await super().emit_shutdown(*args, **kwargs)  # the user's shutdown handlers last


def _bots_in(kwargs: dict[str, Any]) -> list[Bot]:
    # start_polling passes bots= (and bot=); setup_application passes what the user gave it.
    found = [b for b in kwargs.get("bots") or () if isinstance(b, Bot)]
    bot = kwargs.get("bot")
    if isinstance(bot, Bot) and all(b is not bot for b in found):
        found.append(bot)
    return found


def install(dispatcher: Dispatcher, settings: Settings) -> Dispatcher:
    """Guard ``dispatcher`` (called by :func:`restart_guard.protect`). Idempotent."""
    if isinstance(dispatcher, _GuardedDispatcher):
        log.debug("restart-guard: %r is already protected", dispatcher)
        return dispatcher
    if dispatcher._running_lock.locked():
        raise RuntimeError("restart_guard.protect must be applied before the dispatcher starts")
    original = type(dispatcher)
    state = DispatcherState(settings, original)
    namespace = {"_restart_guard": state, "__module__": original.__module__}
    dispatcher.__class__ = type(original.__name__, (_GuardedDispatcher, original), namespace)
    return dispatcher


def uninstall(dispatcher: Dispatcher) -> Dispatcher:
    """Remove the guard (called by :func:`restart_guard.unprotect`). Idempotent."""
    if not isinstance(dispatcher, _GuardedDispatcher):
        return dispatcher
    if dispatcher._running_lock.locked():
        raise RuntimeError("restart_guard.unprotect needs a stopped dispatcher")
    dispatcher.__class__ = state_of(dispatcher).original_class
    return dispatcher
