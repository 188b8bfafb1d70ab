"""What the two Telegram adapters (python-telegram-bot, aiogram) share: keys and notices.

Both frameworks talk to the same Bot API, so where a reply belongs and what
Telegram's refusals of a notice mean is decided once, here. Each adapter
catches its own framework's exception classes and hands their message (and
``retry_after`` / ``migrate_to_chat_id``) to these functions. Imports no
framework.
"""

from __future__ import annotations

from typing import Any

from restart_guard import Conversation
from restart_guard._registry import TELEGRAM
from restart_guard.errors import ConversationGone, ConversationMoved, RateLimited, ThreadGone

__all__ = [
    "NOTICES_PER_SECOND",
    "PLATFORM",
    "conversation_at",
    "forbidden",
    "migrated",
    "notice_target",
    "rate_limited",
    "rejected",
]

#: ``Conversation.platform`` of every Telegram conversation, whichever the framework.
PLATFORM = TELEGRAM.platform
#: Telegram allows about 30 messages per second per bot; stay under it.
NOTICES_PER_SECOND = 20.0
# What Telegram's 400 says when the forum topic (not the chat) is gone.
_THREAD_GONE = ("thread not found", "topic_deleted", "topic_closed", "topic not found")


def conversation_at(chat_id: object, message: Any) -> Conversation:
    """The conversation of a chat and (if any) the message of the update.

    ``message_thread_id`` counts only when ``is_topic_message`` is true:
    otherwise it is a reply chain's root, not a topic. Both frameworks name
    these message fields alike.
    """
    thread = None
    business = None
    if message is not None:
        if getattr(message, "is_topic_message", False) and message.message_thread_id:
            thread = str(message.message_thread_id)
        business = getattr(message, "business_connection_id", None)
    return Conversation(PLATFORM, str(chat_id), thread, business)


def notice_target(conversation: Conversation) -> dict[str, Any]:
    """``sendMessage`` arguments that address ``conversation``: chat, topic, business chat."""
    target: dict[str, Any] = {"chat_id": int(conversation.chat)}
    if conversation.thread is not None:
        target["message_thread_id"] = int(conversation.thread)
    if conversation.scope is not None:
        target["business_connection_id"] = conversation.scope
    return target


def rate_limited(retry_after: float, message: str) -> RateLimited:
    """429: wait ``retry_after`` seconds."""
    return RateLimited(retry_after, message)


def migrated(new_chat_id: int, message: str) -> ConversationMoved:
    """400 with ``migrate_to_chat_id``: a group upgraded to a supergroup has a new chat id."""
    return ConversationMoved(str(new_chat_id), message)


def forbidden(message: str) -> ConversationGone:
    """403: kicked from the chat, blocked by the user — nobody to tell."""
    return ConversationGone(f"forbidden: {message}")


def rejected(message: str) -> ThreadGone | ConversationGone:
    """Any other 400: the topic is gone (post in the chat), or the chat is."""
    if any(sign in message.lower() for sign in _THREAD_GONE):
        return ThreadGone(message)
    # Chat not found, user deactivated, text rejected: retrying cannot help.
    return ConversationGone(f"rejected by Telegram: {message}")
