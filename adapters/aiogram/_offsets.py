"""Telegram's getUpdates offset: an update polling took is confirmed only once it is marked.

aiogram confirms the updates of one ``getUpdates`` answer with the *next*
``getUpdates`` (its ``offset``). Held until their markers are durable, an
update is either marked or delivered again — a kill can never fall between
"confirmed" and "marked". When polling ends without that next call, one
``getUpdates(offset, timeout=0)`` confirms what was taken, as
python-telegram-bot does when it stops.

The hold is the core's ``Lifecycle.durable()``, as for python-telegram-bot's
``getUpdates``: nothing when every mark is durable already, one batch's fsync
(on the writer's thread) otherwise, bounded if the store hangs.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.methods import GetUpdates

from ._state import BotState, DispatcherState, log

__all__ = ["confirm_taken", "hold_confirmations_until_durable", "release", "took"]


def took(bot_state: BotState, update_id: int) -> None:
    """Polling handed ``update_id`` to aiogram."""
    bot_state.last_taken = max(bot_state.last_taken, update_id)


def hold_confirmations_until_durable(state: DispatcherState, bot: Bot) -> None:
    """Hold every ``getUpdates`` of ``bot``'s session until the taken updates are durable.

    One session middleware per session (several bots may share one); the
    writer thread makes the marks durable, so no fsync blocks the event loop.
    """
    session = bot.session
    if any(known is session for known, _ in state.sessions):
        return
    hold = _HoldOffset(state)
    session.middleware.register(hold)
    state.sessions.append((session, hold))


class _HoldOffset:
    """The session middleware of :func:`hold_confirmations_until_durable`."""

    def __init__(self, state: DispatcherState) -> None:
        self.state = state

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        if isinstance(method, GetUpdates):
            bot_state = self.state.bots.get(bot.id)
            if bot_state is not None:
                await bot_state.lifecycle.durable()
                answer = await make_request(bot, method)
                # Counted once answered: a poll cancelled on the way may never have
                # reached Telegram (confirm_taken then asks again, which is harmless).
                if method.offset:
                    bot_state.asked_offset = max(bot_state.asked_offset, method.offset)
                return answer
        return await make_request(bot, method)


async def confirm_taken(state: DispatcherState) -> None:
    """Confirm to Telegram every update polling took (polling has stopped)."""
    for bot_state in state.bots.values():
        if bot_state.last_taken < bot_state.asked_offset:
            continue
        try:
            await bot_state.bot(GetUpdates(offset=bot_state.last_taken + 1, timeout=0, limit=1))
        except Exception as exc:
            log.warning(
                "restart-guard: could not confirm updates up to %d to Telegram (%s); "
                "it may deliver them again",
                bot_state.last_taken,
                exc,
            )


def release(state: DispatcherState) -> None:
    """Remove the session middlewares (the dispatcher has stopped)."""
    for session, hold in state.sessions:
        if hold in session.middleware:
            session.middleware.unregister(hold)
    state.sessions.clear()
