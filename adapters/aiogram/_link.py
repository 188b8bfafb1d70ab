"""Notices and replays through the bot's own aiogram ``Bot`` and the dispatcher."""

from __future__ import annotations

import asyncio
import functools
import inspect

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.methods import TelegramMethod
from aiogram.types import Update

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
    #: replay="ask" has no buttons on aiogram yet: its questions go out as plain
    #: notices, and the three question calls below are never made.
    can_ask = False

    def __init__(self, dispatcher: Dispatcher, bot: Bot, state: DispatcherState) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.state = state

    async def send_notice(self, notice: Notice) -> None:
        """Reply to the interrupted message; in a group, mention the askers (HTML).

        Telegram has no idempotency key for sendMessage: ``notice.nonce`` is not used.
        """
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
        try:
            await self.bot.send_message(**kwargs)
        except TelegramRetryAfter as exc:
            raise common.rate_limited(float(exc.retry_after), exc.message) from exc
        except TelegramMigrateToChat as exc:
            raise common.migrated(exc.migrate_to_chat_id, exc.message) from exc
        except TelegramForbiddenError as exc:
            raise common.forbidden(exc.message) from exc
        except TelegramBadRequest as exc:
            raise common.rejected(exc.message) from exc

    async def send_question(self, notice: Notice, token: str) -> str:
        raise NotImplementedError("replay='ask' is not supported on aiogram yet")

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        raise NotImplementedError("replay='ask' is not supported on aiogram yet")

    async def refuse_press(self, press: Press, text: str) -> None:
        raise NotImplementedError("replay='ask' is not supported on aiogram yet")

    async def replay(self, marker: Marker) -> None:
        """Feed the stored updates to the dispatcher again, each in a task of its own.

        Each run begins here, before this returns, so the marker is never
        released between the notice and the re-run.
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
            key = (self.bot.id, update.update_id)
            self.state.replayed.add(key)
            self.state.taken[key] = run
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
