"""aiogram's aiohttp webhook: Telegram hears the 200 only once the update's marker is durable.

``SimpleRequestHandler`` (and ``TokenBasedRequestHandler``) answer Telegram
at once by default (``handle_in_background=True``) and feed the update in a
task of its own — so the 200 that makes Telegram forget the update could
go out before the update's marker reached the disk, and a kill between the
two would lose the turn. ``setup_application`` passes the aiohttp
application to the dispatcher's start-up; there, each request handler of
this dispatcher (found by the ``on_shutdown`` hook its ``register`` added)
gets a subclass whose answer waits for the marker: one loop pass for the
feed task to begin the update's run (write-ahead), then the core's
``Lifecycle.durable()`` — one batch's fsync, on the writer's thread.

Without ``handle_in_background`` the handler answers once the update was
handled (or after aiogram's 55 s), and a webhook served without
``setup_application`` is tracked from ``feed_update`` as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import BaseRequestHandler
from aiohttp import web

from ._state import DispatcherState

__all__ = ["hold_answers_until_durable"]


def hold_answers_until_durable(state: DispatcherState, dispatcher: Dispatcher, app: Any) -> None:
    """Make every aiogram request handler of ``dispatcher`` on ``app`` answer once durable."""
    for callback in getattr(app, "on_shutdown", ()):
        handler = getattr(callback, "__self__", None)
        if (
            isinstance(handler, BaseRequestHandler)
            and handler.dispatcher is dispatcher
            and not isinstance(handler, _DurableAnswer)
        ):
            cls = type(handler)
            namespace = {"_restart_guard": state, "__module__": cls.__module__}
            handler.__class__ = type(cls.__name__, (_DurableAnswer, cls), namespace)


class _DurableAnswer(BaseRequestHandler):
    """Mixed into a request handler's class (see the module docstring)."""

    _restart_guard: DispatcherState

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        answer = await super()._handle_request_background(bot, request)
        bot_state = self._restart_guard.bots.get(bot.id)
        if bot_state is not None:
            # The feed task was created above: it runs first, up to the update's
            # run begun (no await suspends before that), then the marker's batch.
            await asyncio.sleep(0)
            await bot_state.lifecycle.durable()
        return answer
