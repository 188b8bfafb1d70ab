"""Start-up and stop of a guarded dispatcher — the sequence, in three functions.

This is the part the core lifecycle (issue 10) will own; the hooks in
``_dispatcher.py`` only call these::

    start-up  start()         per bot: open the store → claim → notices (≤ 5 s
                              for all bots together) → then systemd READY
    stop      request_stop()  every bot durably pre-marked (one fsync each),
                              polling hands aiogram no new update
              drain()         notices cancelled → handler runs awaited, at most
                              drain_timeout from the stop request → seal if cut
              close()         taken updates confirmed to Telegram → guards closed

``start_bot`` is also called on its own for a bot first seen in
``feed_update`` (a webhook with a bot per token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates

from restart_guard import Guard, Resumer, make_store
from restart_guard.ops.systemd import notify_ready

from ._keys import PLATFORM
from ._link import Link
from ._state import BotGuard, DispatcherState, log

__all__ = ["STARTUP_NOTICE_WAIT", "close", "drain", "request_stop", "start", "start_bot"]

#: Start-up waits this long for notices before polling starts; the rest go out
#: in the background at the platform's rate.
STARTUP_NOTICE_WAIT = 5.0


def start_bot(
    dispatcher: Dispatcher, state: DispatcherState, bot: Bot
) -> asyncio.Task[None] | None:
    """Open ``bot``'s marker store, claim a dead process's markers, start their notices.

    Markers live in a folder named after the bot's user id (the number before
    the token's colon, never the token): the python-telegram-bot adapter's.
    Returns the notice task, if there is anything to resume.
    """
    guard = Guard(PLATFORM, make_store(state.settings, PLATFORM, str(bot.id)), state.settings)
    claimed = guard.start()
    resumer = Resumer(guard, Link(dispatcher, bot, state))
    bot_guard = BotGuard(bot, guard, resumer)
    state.bots[bot.id] = bot_guard
    _hold_offsets(state, bot)
    log.info(
        "restart-guard: guarding aiogram bot %d (%d interrupted conversation(s) claimed)",
        bot.id,
        len(claimed),
    )
    return resumer.start(claimed)


async def start(dispatcher: Dispatcher, state: DispatcherState, bots: Iterable[Bot]) -> None:
    """Start-up for every bot not started yet; then tell systemd the bot is ready."""
    state.intake_closed = False
    state.stop_task = None
    notices = [
        task
        for bot in bots
        if bot.id not in state.bots and (task := start_bot(dispatcher, state, bot)) is not None
    ]
    if notices:
        done, _ = await asyncio.wait(notices, timeout=STARTUP_NOTICE_WAIT)
        if len(done) < len(notices):
            log.info("restart-guard: notices continue in the background while the bot runs")
    notify_ready()  # systemd (Type=notify): start-up recovery is done


def request_stop(state: DispatcherState) -> bool:
    """Mark every conversation in flight durably and close the intake. False if already asked."""
    if state.intake_closed:
        return False
    state.intake_closed = True
    state.stop_started = time.monotonic()
    for bot_guard in state.bots.values():
        bot_guard.guard.pre_mark()  # durable before the drain can be cut short by SIGKILL
    return True


async def drain(state: DispatcherState, *, polling_stopped: bool) -> bool:
    """Wait for running handlers, at most ``drain_timeout`` after the stop request.

    ``polling_stopped``: aiogram already cancelled polling (a stop that did not
    come through the guard's signal hook), so an update it took but never
    started never will be — it stays marked instead of holding up the drain.
    """
    for bot_guard in state.bots.values():
        await bot_guard.resumer.cancel()  # unfinished notices stay marked
    if polling_stopped:
        await asyncio.sleep(0)  # handler tasks created before the cancel take their runs
        for key, (guard, run) in list(state.taken.items()):
            del state.taken[key]
            guard.end(run, completed=False)
    drained = True
    for bot_guard in state.bots.values():
        left = state.settings.drain_timeout - (time.monotonic() - state.stop_started)
        if not await bot_guard.guard.wait_idle(max(left, 0.0)):
            bot_guard.guard.seal()
            drained = False
    log.info(
        "restart-guard: %s after %.1fs; aiogram stops now",
        "drain complete" if drained else "drain timed out",
        time.monotonic() - state.stop_started,
    )
    return drained


async def close(state: DispatcherState) -> None:
    """Confirm the updates polling took, then commit and release every bot's markers.

    aiogram confirms an update with the *next* getUpdates. After a drain that
    call never comes, and Telegram would deliver the last updates again — a
    finished turn would run twice. One ``getUpdates(offset, timeout=0)``
    confirms them, as python-telegram-bot does when it stops.
    """
    bots = list(state.bots.values())
    for bot_guard in bots:
        if bot_guard.last_taken >= bot_guard.asked_offset:
            try:
                await bot_guard.bot(GetUpdates(offset=bot_guard.last_taken + 1, timeout=0, limit=1))
            except Exception as exc:
                log.warning(
                    "restart-guard: could not confirm updates up to %d to Telegram (%s); "
                    "it may deliver them again",
                    bot_guard.last_taken,
                    exc,
                )
    for bot_guard in bots:
        bot_guard.guard.close()
    for session, hold in state.sessions:
        if hold in session.middleware:
            session.middleware.unregister(hold)
    state.sessions.clear()
    state.bots.clear()
    state.taken.clear()
    state.replayed.clear()


class _HoldOffset:
    """Session middleware: no getUpdates leaves before the taken updates' markers are durable.

    That call is what confirms them to Telegram; held, an update is either
    marked or delivered again — a kill can no longer fall in between.
    """

    def __init__(self, state: DispatcherState) -> None:
        self.state = state

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        if isinstance(method, GetUpdates):
            bot_guard = self.state.bots.get(bot.id)
            if bot_guard is not None:
                if bot_guard.unsynced:
                    bot_guard.unsynced = False
                    await bot_guard.guard.flush_async()  # in a worker thread: no fsync here
                if method.offset:
                    bot_guard.asked_offset = max(bot_guard.asked_offset, method.offset)
        return await make_request(bot, method)


def _hold_offsets(state: DispatcherState, bot: Bot) -> None:
    session = bot.session
    if any(known is session for known, _ in state.sessions):
        return  # several bots can share one session; one middleware serves them all
    hold = _HoldOffset(state)
    session.middleware.register(hold)
    state.sessions.append((session, hold))
