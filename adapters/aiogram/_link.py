"""Notices and replays through the bot's own aiogram ``Bot`` and the dispatcher."""

from __future__ import annotations

import asyncio
import functools
import inspect

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from restart_guard import Conversation, Marker, Notice
from restart_guard._ask import Press
from restart_guard._guard import LazyPayload
from restart_guard.errors import ConversationGone

from .. import _telegram_common as common
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


class Link:
    """Posts notices with ``bot`` and replays updates through ``dispatcher``."""

    notices_per_second = common.NOTICES_PER_SECOND

    def __init__(self, dispatcher: Dispatcher, bot: Bot, state: DispatcherState) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.state = state

    async def send_notice(self, notice: Notice) -> None:
        """Reply to the interrupted message; in a group, mention the askers (HTML).

        Telegram has no idempotency key for sendMessage: ``notice.nonce`` is not used.
        """
        await self._send(notice)

    async def send_question(self, notice: Notice, token: str) -> str:
        """The notice with *Continue* / *Dismiss* as an inline keyboard; its message_id."""
        buttons = [
            InlineKeyboardButton(text=label, callback_data=data)
            for label, data in common.question_buttons(token)
        ]
        message = await self._send(notice, InlineKeyboardMarkup(inline_keyboard=[buttons]))
        return str(message.message_id)

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        if press is not None:  # first: the presser's client stops its spinner
            await self._answer(press)
        try:
            # Without reply_markup, Telegram removes the inline keyboard.
            await self.bot.edit_message_text(
                text=text, chat_id=int(conversation.chat), message_id=int(question)
            )
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise

    async def refuse_press(self, press: Press, text: str) -> None:
        await self._answer(press, text)

    async def _answer(self, press: Press, text: str | None = None) -> None:
        try:
            await self.bot.answer_callback_query(
                str(press.handle), text=text, show_alert=text is not None
            )
        except TelegramBadRequest as exc:  # answered already, or older than Telegram keeps them
            log.info("restart-guard: could not answer a button press: %s", exc.message)

    async def _send(self, notice: Notice, markup: InlineKeyboardMarkup | None = None) -> Message:
        kwargs, reply_to = common.notice_message(notice)
        accepts = inspect.signature(self.bot.send_message).parameters
        if "business_connection_id" in kwargs and "business_connection_id" not in accepts:
            raise ConversationGone("a business chat: aiogram 3.5 or later can post there")
        kwargs.setdefault("parse_mode", None)  # plain text, whatever the bot's default
        if reply_to is not None:
            # A deleted message must not keep the notice from going out.
            if "reply_parameters" in accepts:  # aiogram 3.4+ (Bot API 7.0)
                from aiogram.types import ReplyParameters

                kwargs["reply_parameters"] = ReplyParameters(
                    message_id=reply_to, allow_sending_without_reply=True
                )
            else:
                kwargs["reply_to_message_id"] = reply_to
                kwargs["allow_sending_without_reply"] = True
        if markup is not None:
            kwargs["reply_markup"] = markup
        try:
            return await self.bot.send_message(**kwargs)
        except TelegramRetryAfter as exc:
            raise common.rate_limited(float(exc.retry_after), exc.message) from exc
        except TelegramMigrateToChat as exc:
            raise common.migrated(exc.migrate_to_chat_id, exc.message) from exc
        except TelegramForbiddenError as exc:
            raise common.forbidden(exc.message) from exc
        except TelegramBadRequest as exc:
            raise common.rejected(exc.message) from exc

    async def pending_deliveries(self) -> set[str] | None:
        """``update_id`` s Telegram still holds for this bot (None: cannot tell).

        ``getUpdates`` without an offset confirms nothing: these updates go
        to the first poll after start-up all the same. With a webhook set
        Telegram refuses the call (409): None, every notice goes out.
        """
        try:
            updates = await self.bot(GetUpdates(timeout=0, limit=100))
        except TelegramAPIError as exc:
            log.info("restart-guard: cannot look at the pending updates: %s", exc)
            return None
        return {str(update.update_id) for update in updates}

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
