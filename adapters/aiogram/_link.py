"""Notices and replays through the bot's own aiogram ``Bot`` and the dispatcher."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from restart_guard import Conversation, Marker
from restart_guard.errors import ConversationGone, RateLimited, ThreadGone

from ._keys import conversation_of
from ._state import DispatcherState, log

__all__ = ["NOTICES_PER_SECOND", "Link", "payload_of"]

#: Telegram allows about 30 messages per second per bot; stay under it.
NOTICES_PER_SECOND = 20.0
_THREAD_GONE = ("thread not found", "topic_deleted", "topic_closed", "topic not found")


def payload_of(update: Update) -> dict[str, Any]:
    """The update as Telegram sent it (JSON, Telegram's field names) for a replay.

    The same shape python-telegram-bot stores, so a marker written by either
    framework replays on the other.
    """
    return update.model_dump(mode="json", exclude_unset=True, by_alias=True)


class Link:
    """Posts notices with ``bot`` and replays updates through ``dispatcher``."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, dispatcher: Dispatcher, bot: Bot, state: DispatcherState) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.state = state

    async def send_notice(self, conversation: Conversation, text: str) -> None:
        """Post ``text`` in the chat, forum topic or business chat; map Telegram's errors."""
        kwargs: dict[str, Any] = {}
        if conversation.thread is not None:
            kwargs["message_thread_id"] = int(conversation.thread)
        if conversation.scope is not None:
            if "business_connection_id" not in inspect.signature(self.bot.send_message).parameters:
                raise ConversationGone("a business chat: aiogram 3.5 or later can post there")
            kwargs["business_connection_id"] = conversation.scope
        try:
            await self.bot.send_message(chat_id=int(conversation.chat), text=text, **kwargs)
        except TelegramRetryAfter as exc:
            raise RateLimited(float(exc.retry_after), exc.message) from exc
        except TelegramForbiddenError as exc:
            raise ConversationGone(f"forbidden: {exc.message}") from exc
        except TelegramBadRequest as exc:
            if any(sign in exc.message.lower() for sign in _THREAD_GONE):
                raise ThreadGone(exc.message) from exc
            # Chat not found, user deactivated, text rejected: retrying cannot help.
            raise ConversationGone(f"rejected by Telegram: {exc.message}") from exc

    async def replay(self, marker: Marker) -> None:
        """Feed the stored updates to the dispatcher again, each in a task of its own.

        Each run begins here, before this returns, so the marker is never
        released between the notice and the re-run.
        """
        bot_guard = self.state.bots.get(self.bot.id)
        if bot_guard is None:
            return
        for raw in marker.payload or ():
            update = Update.model_validate(raw, context={"bot": self.bot})
            conversation = conversation_of(update)
            if conversation is None:
                continue
            key = (self.bot.id, update.update_id)
            self.state.replayed.add(key)
            self.state.taken[key] = (bot_guard.guard, bot_guard.guard.begin(conversation, raw))
            task = asyncio.ensure_future(self._handle(update))
            self.state.replays.add(task)
            task.add_done_callback(self.state.replays.discard)

    async def _handle(self, update: Update) -> None:
        # What aiogram's polling does with an update: feed it, send a returned method.
        try:
            result = await self.dispatcher.feed_update(self.bot, update)
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=self.bot, result=result)
        except Exception:
            log.exception("restart-guard: replayed update %d failed", update.update_id)
