"""Notices and replays through the bot's own aiogram ``Bot`` and the dispatcher."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Update

from restart_guard import Marker
from restart_guard._guard import LazyPayload
from restart_guard.errors import ConversationGone

from .._telegram_link import Refusals, TelegramLink
from ._keys import conversation_of, origin_of
from ._state import DispatcherState, log

__all__ = ["Link", "payload_of"]


def payload_of(update: Update) -> LazyPayload:
    """The update as Telegram sent it (JSON, Telegram's field names), made when marked.

    The same shape python-telegram-bot stores, so a marker written by either
    framework replays on the other. Returned uncalled: pydantic's dump is the
    costliest step of a run, and the guard's writer thread makes it (aiogram's
    update objects are frozen).
    """
    return functools.partial(update.model_dump, mode="json", exclude_unset=True, by_alias=True)


class Link(TelegramLink):
    """Posts notices with ``bot`` and replays updates through ``dispatcher``."""

    refusals = Refusals(
        TelegramRetryAfter,
        TelegramMigrateToChat,
        "migrate_to_chat_id",
        TelegramForbiddenError,
        TelegramBadRequest,
        TelegramAPIError,
    )

    def __init__(self, dispatcher: Dispatcher, bot: Bot, state: DispatcherState) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.state = state

    async def _send_message(
        self, kwargs: dict[str, Any], reply_to: int | None, buttons: list[tuple[str, str]] | None
    ) -> int:
        accepts = inspect.signature(self.bot.send_message).parameters
        if "business_connection_id" in kwargs and "business_connection_id" not in accepts:
            raise ConversationGone("a business chat: aiogram 3.5 or later can post there")
        kwargs.setdefault("parse_mode", None)  # plain text, whatever the bot's default
        if reply_to is not None and "reply_parameters" in accepts:  # aiogram 3.4+ (Bot API 7.0)
            from aiogram.types import ReplyParameters

            kwargs["reply_parameters"] = ReplyParameters(
                message_id=reply_to, allow_sending_without_reply=True
            )
        elif reply_to is not None:
            kwargs.update(reply_to_message_id=reply_to, allow_sending_without_reply=True)
        if buttons is not None:
            keys = [InlineKeyboardButton(text=label, callback_data=data) for label, data in buttons]
            kwargs["reply_markup"] = InlineKeyboardMarkup(inline_keyboard=[keys])
        message = await self.bot.send_message(**kwargs)
        return message.message_id

    async def _edit_text(self, chat_id: int, message_id: int, text: str) -> None:
        await self.bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)

    async def _answer_query(self, query_id: str, text: str | None) -> None:
        await self.bot.answer_callback_query(query_id, text=text, show_alert=text is not None)

    async def _pending_update_ids(self) -> list[int]:
        return [update.update_id for update in await self.bot(GetUpdates(timeout=0, limit=100))]

    async def replay(self, marker: Marker) -> None:
        """Feed the stored updates to the dispatcher again, each in a task of its own.

        Each run begins here, before this returns, so the marker is never
        released between the notice and the re-run. The run waits in
        ``state.taken`` for this very update object: Telegram's own copy of
        it (a new object) is not the replay, and is skipped as redelivered.
        """
        bot_state = self.state.bots.get(self.bot.id)
        if bot_state is None:
            return
        for raw in marker.payload or ():
            update = Update.model_validate(raw, context={"bot": self.bot})
            conversation = conversation_of(update)
            if conversation is None:
                continue
            run = bot_state.lifecycle.begin(conversation, raw, origin_of(update))
            if run is None:
                continue
            self.state.taken[(self.bot.id, update.update_id)] = (update, run)
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
