"""What the two Telegram adapters' links share: notices, questions, presses, refusals.

python-telegram-bot and aiogram talk to the same Bot API, so how a notice
is addressed, how a ``replay="ask"`` question is closed or a press refused,
and what Telegram's refusals mean is written once, in :class:`TelegramLink`.
Each adapter's link subclasses it with the four calls its framework makes
(send, edit, answer a callback query, look at pending updates) and names
its framework's exception classes (:class:`Refusals`). Imports no framework.
"""

from __future__ import annotations

import abc
import datetime as dtm
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from restart_guard import Conversation, Notice
from restart_guard._ask import Press
from restart_guard.errors import (
    ConversationGone,
    ConversationMoved,
    DeliveryError,
    RateLimited,
    ThreadGone,
)

from ._telegram_common import NOTICES_PER_SECOND, notice_message, question_buttons

__all__ = ["Refusals", "TelegramLink", "refusal"]

log = logging.getLogger("restart_guard")

# What Telegram's 400 says when the forum topic (not the chat) is gone.
_THREAD_GONE = ("thread not found", "topic_deleted", "topic_closed", "topic not found")


@dataclass(frozen=True)
class Refusals:
    """A framework's exception classes for Telegram's answers that refuse a call."""

    #: 429, with ``retry_after`` (seconds, or a timedelta).
    retry_after: type[Exception]
    #: 400 with ``migrate_to_chat_id``; the new id is the exception's ``new_chat_id_attr``.
    migrated: type[Exception]
    new_chat_id_attr: str
    #: 403.
    forbidden: type[Exception]
    #: Any other 400.
    bad_request: type[Exception]
    #: Every error of the framework's Bot API client (network errors included).
    any_error: type[Exception]

    @property
    def of_a_message(self) -> tuple[type[Exception], ...]:
        """The refusals :func:`refusal` translates."""
        return (self.retry_after, self.migrated, self.forbidden, self.bad_request)


def refusal(exc: Exception, refusals: Refusals) -> DeliveryError:
    """What Telegram's refusal of a notice means to the resume step.

    429: wait ``retry_after``; a group upgraded to a supergroup has a new chat
    id; 403 (kicked, blocked): nobody to tell; any other 400: the topic is
    gone (post in the chat), or the chat is — retrying cannot help.
    """
    message = str(getattr(exc, "message", exc))
    if isinstance(exc, refusals.retry_after):
        delay: Any = getattr(exc, "retry_after", 1)
        seconds = delay.total_seconds() if isinstance(delay, dtm.timedelta) else float(delay)
        return RateLimited(seconds, message)
    if isinstance(exc, refusals.migrated):
        return ConversationMoved(str(getattr(exc, refusals.new_chat_id_attr)), message)
    if isinstance(exc, refusals.forbidden):
        return ConversationGone(f"forbidden: {message}")
    if any(sign in message.lower() for sign in _THREAD_GONE):
        return ThreadGone(message)
    # Chat not found, user deactivated, text rejected.
    return ConversationGone(f"rejected by Telegram: {message}")


class TelegramLink(abc.ABC):
    """A :class:`~restart_guard.PlatformLink` to Telegram, less its framework's calls.

    Notices reply to the interrupted message (a deleted one does not keep
    them from going out) and, in a group, mention the askers (HTML).
    Telegram has no idempotency key for ``sendMessage``: ``notice.nonce`` is
    not used.
    """

    notices_per_second = NOTICES_PER_SECOND
    #: The framework's exception classes (see :class:`Refusals`).
    refusals: ClassVar[Refusals]

    async def send_notice(self, notice: Notice) -> None:
        await self._send(notice)

    async def send_question(self, notice: Notice, token: str) -> str:
        """The notice with *Continue* / *Dismiss* as an inline keyboard; its message_id."""
        return str(await self._send(notice, question_buttons(token)))

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        if press is not None:  # first: the presser's client stops its spinner
            await self._answer(press)
        try:
            # Without reply_markup, Telegram removes the inline keyboard.
            await self._edit_text(int(conversation.chat), int(question), text)
        except self.refusals.bad_request as exc:
            if "not modified" not in str(getattr(exc, "message", exc)).lower():
                raise

    async def refuse_press(self, press: Press, text: str) -> None:
        await self._answer(press, text)

    async def pending_deliveries(self) -> set[str] | None:
        """``update_id`` s Telegram still holds for this bot (None: cannot tell).

        ``getUpdates`` without an offset confirms nothing: these updates go
        to the first poll after start-up all the same. With a webhook set
        Telegram refuses the call (409): None, every notice goes out.
        """
        try:
            return {str(update_id) for update_id in await self._pending_update_ids()}
        except self.refusals.any_error as exc:
            log.info("restart-guard: cannot look at the pending updates: %s", exc)
            return None

    async def _answer(self, press: Press, text: str | None = None) -> None:
        try:
            await self._answer_query(str(press.handle), text)
        except self.refusals.bad_request as exc:  # answered already, or too old
            log.info("restart-guard: could not answer a button press: %s", exc)

    async def _send(self, notice: Notice, buttons: list[tuple[str, str]] | None = None) -> int:
        kwargs, reply_to = notice_message(notice)
        try:
            return await self._send_message(kwargs, reply_to, buttons)
        except self.refusals.of_a_message as exc:
            raise refusal(exc, self.refusals) from exc

    # ------------------------------------------------------- the framework's calls
    @abc.abstractmethod
    async def _send_message(
        self, kwargs: dict[str, Any], reply_to: int | None, buttons: list[tuple[str, str]] | None
    ) -> int:
        """``sendMessage(**kwargs)`` replying to ``reply_to`` (if any, allowed to be gone),
        with ``buttons`` (``(label, callback_data)``) as an inline keyboard; its message_id."""

    @abc.abstractmethod
    async def _edit_text(self, chat_id: int, message_id: int, text: str) -> None:
        """``editMessageText`` without a ``reply_markup`` (the buttons go)."""

    @abc.abstractmethod
    async def _answer_query(self, query_id: str, text: str | None) -> None:
        """``answerCallbackQuery``: with ``text``, an alert only the presser sees."""

    @abc.abstractmethod
    async def _pending_update_ids(self) -> Iterable[int]:
        """``getUpdates(timeout=0, limit=100)`` without an offset: what Telegram still holds."""
