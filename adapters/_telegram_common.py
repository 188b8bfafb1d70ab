"""What the two Telegram adapters (python-telegram-bot, aiogram) share: keys and notices.

Both frameworks talk to the same Bot API, so where a reply belongs and what
Telegram's refusals of a notice mean is decided once, here. Each adapter
catches its own framework's exception classes and hands their message (and
``retry_after`` / ``migrate_to_chat_id``) to these functions. Imports no
framework.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable
from typing import Any, TypeVar

from restart_guard import Conversation, Notice, Run
from restart_guard._ask import Choice, Press, press_data, press_from
from restart_guard._lifecycle import CUT_OFF, Lifecycle
from restart_guard._policy import running
from restart_guard._registry import TELEGRAM

__all__ = [
    "MENTION_LABEL",
    "NOTICES_PER_SECOND",
    "PLATFORM",
    "conversation_at",
    "handled",
    "is_private",
    "notice_message",
    "notice_target",
    "press_in",
    "question_buttons",
]

#: ``Conversation.platform`` of every Telegram conversation, whichever the framework.
PLATFORM = TELEGRAM.platform
#: Telegram allows about 30 messages per second per bot; stay under it.
NOTICES_PER_SECOND = 20.0
#: What a mention of an asker shows in a group (names are never stored: ids only);
#: Telegram links it to the user, who is notified.
MENTION_LABEL = "👤"


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


def notice_message(notice: Notice) -> tuple[dict[str, Any], int | None]:
    """``sendMessage`` arguments for ``notice``, and the id of the message it answers.

    In a group the askers are mentioned (HTML, so the text is escaped); in a
    private chat there is nobody else to tell them apart from. The caller
    wraps the returned message id in its framework's ``ReplyParameters``
    with ``allow_sending_without_reply``, so a deleted message does not keep
    the notice from going out.
    """
    kwargs = notice_target(notice.conversation)
    text = notice.text
    if not is_private(notice.conversation) and notice.askers:
        text = notice.addressed(_mention, html.escape(text, quote=False))
        kwargs["parse_mode"] = "HTML"
    kwargs["text"] = text
    reply_to = notice.reply_to
    return kwargs, int(reply_to) if reply_to is not None and reply_to.isdigit() else None


def is_private(conversation: Conversation) -> bool:
    """A private chat: users have positive ids; groups, supergroups and channels negative."""
    return not conversation.chat.startswith("-")


def _mention(user: str) -> str:
    return f'<a href="tg://user?id={html.escape(user)}">{MENTION_LABEL}</a>'


def press_in(query: Any) -> Press | None:
    """The restart-guard button press a ``callback_query`` is, or None (the bot's own button).

    Both frameworks name the query's fields as the Bot API does (``id``,
    ``data``, ``from_user``).
    """
    if query is None:
        return None
    return press_from(query.data, query.from_user.id, query.id)


def question_buttons(token: str) -> list[tuple[str, str]]:
    """``(label, callback_data)`` of a question's *Continue* and *Dismiss* buttons, in order."""
    return [(choice.label, press_data(choice, token)) for choice in Choice]


_T = TypeVar("_T")


async def handled(run: Run, work: Awaitable[_T]) -> _T:
    """Await ``work`` as ``run``'s handler work: the run ends with it.

    A ``@no_replay`` handler inside flags the run's turn; cancelled by a
    drain that did not finish, the run is cut off (its conversation stays
    marked).
    """
    cut_off = False
    try:
        with running(run):
            return await work
    except CUT_OFF:
        cut_off = True
        raise
    finally:
        Lifecycle.end(run, cut_off=cut_off)
