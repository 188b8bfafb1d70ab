"""The hooks: a subclass mixed into the guarded dispatcher's class, one per dispatcher.

Each bot (token) the dispatcher serves gets a core ``Lifecycle`` of its own
(its own marker folder); the overrides only say where aiogram's start-up,
updates and stop are, and call the lifecycles there. None of them changes
what aiogram does with an update.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from restart_guard._lifecycle import Lifecycle

from .._telegram_common import handled
from . import _offsets as offsets
from ._keys import PLATFORM, conversation_of, origin_of, press_of
from ._link import Link, payload_of
from ._state import IN_HANDLER, BotState, DispatcherState, log, state_of
from ._webhook import hold_answers_until_durable

__all__ = ["GuardedDispatcher"]


class GuardedDispatcher(Dispatcher):
    """Overrides mixed into a guarded dispatcher's class (see the package docstring)."""

    _restart_guard: DispatcherState

    # ------------------------------------------------------------ start-up
    async def emit_startup(self, *args: Any, **kwargs: Any) -> None:
        await super().emit_startup(*args, **kwargs)  # the user's own startup handlers first
        state = state_of(self)
        state.stopping = False
        state.stop_task = None
        app = kwargs.get("app")  # setup_application's aiohttp application: a webhook
        if app is not None:
            hold_answers_until_durable(state, self, app)
        # Several bots: their notices go out side by side, within one start-up wait.
        await asyncio.gather(*(_start(self, state, bot) for bot in _bots_in(kwargs)))

    # ------------------------------------------------------------ intake
    @classmethod
    async def _listen_updates(
        cls, bot: Bot, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Update, None]:
        state = state_of(cls)
        async for update in super()._listen_updates(bot, *args, **kwargs):
            bot_state = state.bots.get(bot.id)
            if bot_state is not None and not bot_state.lifecycle.accepting:
                # Stopping: hand aiogram nothing more and ask Telegram for nothing more;
                # what was fetched stays unconfirmed, so Telegram delivers it again.
                await asyncio.Event().wait()  # until aiogram cancels polling
            if bot_state is not None:
                offsets.took(bot_state, update.update_id)  # confirmed by the next getUpdates
                if bot_state.lifecycle.redelivered(str(update.update_id)):
                    continue  # a claimed turn restart-guard replays itself
                if press_of(update) is None:
                    # In flight from the moment it is taken: the next getUpdates confirms it.
                    run = _begin(state, bot_state, update)
                    if run is not None:
                        state.taken[(bot.id, update.update_id)] = (update, run)
            yield update

    # ------------------------------------------------------------ every update
    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        state = state_of(self)
        run = _adopt(state, bot, update)
        if run is None:
            bot_state = state.bots.get(bot.id)
            if bot_state is None and not state.stopping:
                # A bot first seen here: a webhook with a bot per token.
                bot_state = await _start(self, state, bot, wait_for_notices=False)
            if bot_state is not None:
                press = press_of(update)
                if press is not None:  # a replay="ask" button: never the bot's handlers
                    await bot_state.lifecycle.press(press)
                    return None
                if bot_state.lifecycle.redelivered(str(update.update_id)):
                    return None  # webhook: a claimed turn restart-guard replays itself
                run = _begin(state, bot_state, update)
            if run is None:
                return await super().feed_update(bot, update, **kwargs)
        in_handler = IN_HANDLER.set(True)
        try:
            return await handled(run, super().feed_update(bot, update, **kwargs))
        finally:
            IN_HANDLER.reset(in_handler)

    # ------------------------------------------------------------ stop
    def _signal_stop_polling(self, sig: signal.Signals) -> None:
        # aiogram's SIGTERM/SIGINT handler would cancel polling — and, with
        # handle_as_tasks=False, the running handler — at once. Drain first.
        state = state_of(self)
        if not state.bots or not self._running_lock.locked():
            super()._signal_stop_polling(sig)
            return
        if not _request_stop(state):
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
            if _request_stop(state):
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
        await _stop(state_of(self))
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
                if _request_stop(state):
                    # A stop the signal hook did not see: webhook shutdown, a cancelled
                    # start_polling, polling that failed. aiogram stopped polling already,
                    # so an update it took but never started never will be: it stays marked.
                    log.info("restart-guard: aiogram is shutting down; draining first")
                    await asyncio.sleep(0)  # handler tasks created before the cancel take theirs
                    while state.taken:
                        Lifecycle.end(state.taken.popitem()[1][1], cut_off=True)
                await _stop(state)
                await offsets.confirm_taken(state)
            finally:
                offsets.release(state)
                state.bots.clear()
                state.taken.clear()
                await _release_sessions(state)
        await super().emit_shutdown(*args, **kwargs)  # the user's shutdown handlers last


async def _start(
    dispatcher: Dispatcher, state: DispatcherState, bot: Bot, *, wait_for_notices: bool = True
) -> BotState:
    """Start ``bot``'s lifecycle: its marker folder is named after the bot's user id."""
    bot_state = state.bots.get(bot.id)
    if bot_state is None:
        bot_state = state.bots[bot.id] = BotState(bot, Lifecycle(PLATFORM, state.settings))
    offsets.hold_confirmations_until_durable(state, bot)
    _close_the_session_after_the_drain(state, bot)
    dont_wait = None
    if not wait_for_notices:
        dont_wait = asyncio.Event()
        dont_wait.set()
    await bot_state.lifecycle.start(
        str(bot.id), Link(dispatcher, bot, state), stop_waiting=dont_wait
    )
    return bot_state


def _close_the_session_after_the_drain(state: DispatcherState, bot: Bot) -> None:
    """While ``bot`` is guarded, ``bot.session.close()`` waits until the drain is over.

    aiogram's ``SimpleRequestHandler`` closes the session in aiohttp's
    ``on_shutdown``, before the dispatcher's shutdown (where the drain runs):
    a handler's request in flight then fails and its turn is lost. So a
    close asked for while guarded is made after the drain (see
    :func:`_release_sessions`); aiogram reopens a closed session by itself, so
    a close it makes to renew one (``create_session``) loses nothing either.
    """
    session = bot.session
    if all(deferred.session is not session for deferred in state.closing_sessions):
        deferred = _DeferredClose(session, state)
        session.close = deferred  # type: ignore[method-assign]
        state.closing_sessions.append(deferred)


class _DeferredClose:
    """The ``close`` of a guarded bot's session (see :func:`_close_the_session_after_the_drain`)."""

    def __init__(self, session: Any, state: DispatcherState) -> None:
        self.session = session
        self.state = state
        self.close = session.close
        self.wanted = False

    async def __call__(self) -> None:
        if any(b.lifecycle.guard is not None for b in self.state.bots.values()):
            self.wanted = True
            return
        await self.close()

    async def restore(self) -> None:
        del self.session.close  # the instance attribute: aiogram's own close again
        if self.wanted:
            await self.close()


async def _release_sessions(state: DispatcherState) -> None:
    closing, state.closing_sessions = state.closing_sessions, []
    for deferred in closing:
        try:
            await deferred.restore()
        except Exception as exc:
            log.warning("restart-guard: closing the bot session failed: %s", exc)


def _adopt(state: DispatcherState, bot: Bot, update: Update) -> Any:
    """The run begun for this very ``update`` object before ``feed_update``, or None."""
    if not state.taken:
        return None
    key = (bot.id, update.update_id)
    taken = state.taken.get(key)
    if taken is None or taken[0] is not update:
        return None  # not taken, or Telegram's own copy of a replayed update
    del state.taken[key]
    return taken[1]


def _begin(state: DispatcherState, bot_state: BotState, update: Update) -> Any:
    conversation = conversation_of(update)
    if conversation is None:
        return None
    payload = payload_of(update) if state.settings.replay else None
    return bot_state.lifecycle.begin(conversation, payload, origin_of(update))


def _request_stop(state: DispatcherState) -> bool:
    """Pre-mark every bot (durable, intake off) before anything else runs; False if asked."""
    if state.stopping:
        return False
    state.stopping = True
    for bot_state in state.bots.values():
        bot_state.lifecycle.pre_mark()
    return True


async def _stop(state: DispatcherState) -> None:
    """Every bot's core stop: drain bounded by drain_timeout, seal or close."""
    lifecycles = [bot_state.lifecycle for bot_state in state.bots.values()]
    started = min((lifecycle.stop_started for lifecycle in lifecycles), default=0.0)
    drained = await asyncio.gather(*(lifecycle.stop() for lifecycle in lifecycles))
    log.info(
        "restart-guard: %s after %.1fs; aiogram stops now",
        "drain complete" if all(drained) else "drain timed out",
        time.monotonic() - started,
    )


def _bots_in(kwargs: dict[str, Any]) -> list[Bot]:
    # start_polling passes bots= (and bot=); setup_application passes what the user gave it.
    found = [b for b in kwargs.get("bots") or () if isinstance(b, Bot)]
    bot = kwargs.get("bot")
    if isinstance(bot, Bot) and all(b is not bot for b in found):
        found.append(bot)
    return found
