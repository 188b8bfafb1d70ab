"""Which conversation an aiogram ``Update`` belongs to, and what its notice answers.

The key is the python-telegram-bot adapter's, field for field (both build it
with ``_telegram_common.conversation_at``), so that a bot moved from one
framework to the other resumes the markers the other left:
``Conversation("telegram", chat id, forum topic, business connection)``.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import Message, Update

from restart_guard import Conversation, Origin
from restart_guard._ask import Press

from .._telegram_common import PLATFORM, conversation_at, press_in

__all__ = ["PLATFORM", "conversation_of", "origin_of", "press_of"]

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


def origin_of(update: object) -> Origin | None:
    """The ids a notice needs to answer ``update``: its update, message and sender.

    The python-telegram-bot adapter's Origin, field for field. A callback
    query (a button press) is an interaction: its message is the bot's own,
    so the notice mentions the user instead of replying to it.
    """
    if not isinstance(update, Update):
        return None
    user_id = _user_id(update)
    if update.callback_query is not None:
        return Origin(str(update.update_id), None, user_id, interaction=True)
    _, message = _effective(update)
    message_id = None if message is None else str(message.message_id)
    return Origin(str(update.update_id), message_id, user_id)


def press_of(update: object) -> Press | None:
    """The press of a ``replay="ask"`` question's button in ``update``, or None."""
    if not isinstance(update, Update):
        return None
    return press_in(update.callback_query)


def _user_id(update: Update) -> str | None:
    # The sender of whichever event the update carries (python-telegram-bot's effective_user).
    for name in update.model_fields_set:
        event = getattr(update, name, None)
        user = getattr(event, "from_user", None)
        if user is not None and getattr(user, "id", None) is not None:
            return str(user.id)
    return None
