"""Which conversation an aiogram ``Update`` belongs to.

The key is the python-telegram-bot adapter's, field for field (both build it
with ``_telegram_common.conversation_at``), so that a bot moved from one
framework to the other resumes the markers the other left:
``Conversation("telegram", chat id, forum topic, business connection)``.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import Message, Update

from restart_guard import Conversation

from .._telegram_common import PLATFORM, conversation_at

__all__ = ["PLATFORM", "conversation_of"]

# python-telegram-bot's Update.effective_chat / effective_message, in its order.
# Read with getattr: older aiogram releases lack the newer update kinds (and keep
# them as plain dicts, which no handler of theirs is given: not tracked).
_MESSAGES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
)
_CHAT_ONLY_MESSAGES = ("deleted_business_messages", "guest_message")
_CHAT_EVENTS = (
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
)


def _effective(update: Update) -> tuple[Any, Any]:
    """(chat, message) as python-telegram-bot's ``effective_chat``/``effective_message``."""
    for name in _MESSAGES:
        message = getattr(update, name, None)
        if message is not None and not isinstance(message, dict):
            return message.chat, message
    for name in _CHAT_ONLY_MESSAGES:
        event = getattr(update, name, None)
        if event is not None and not isinstance(event, dict):
            return event.chat, None
    query = update.callback_query
    if query is not None and query.message is not None:
        # An inaccessible (too old) message still names its chat, but is no Message.
        message = query.message
        return message.chat, message if isinstance(message, Message) else None
    for name in _CHAT_EVENTS:
        event = getattr(update, name, None)
        if event is not None and not isinstance(event, dict):
            return event.chat, None
    return None, None


def conversation_of(update: object) -> Conversation | None:
    """Where a reply to ``update`` belongs: chat, forum topic, business connection.

    Updates without a chat (inline queries, poll answers, payments) are not tracked.
    """
    if not isinstance(update, Update):
        return None
    chat, message = _effective(update)
    if chat is None:
        return None
    return conversation_at(chat.id, message)
