"""What the resume step needs from an adapter: the :class:`PlatformLink` protocol.

Every adapter implements it for its framework (notices, replay, and the three
calls of ``replay="ask"``); :class:`~restart_guard.Resumer` is its only caller.
"""

from __future__ import annotations

from typing import Protocol

from ._ask import Press
from ._conversation import Conversation
from ._marker import Marker
from ._notice import Notice

__all__ = ["NONCE_LENGTH", "PlatformLink"]

#: Discord's limit on a message nonce.
NONCE_LENGTH = 25


class PlatformLink(Protocol):
    """What the resume step needs from an adapter."""

    #: Notices per second the platform tolerates from one bot.
    notices_per_second: float

    async def send_notice(self, notice: Notice) -> None:
        """Post ``notice.text`` in ``notice.conversation``'s chat and thread.

        Where the platform can, the notice answers ``notice.reply_to`` (the
        interrupted message) and mentions ``notice.askers`` where a reply
        alone would not tell them. ``notice.nonce`` is the same for the same
        notice of the same marker at every start (at most
        :data:`NONCE_LENGTH` characters): a platform that can drop a
        repeated message by it (Discord's ``enforce_nonce``) should pass
        it. Raise :class:`~restart_guard.errors.ConversationGone`,
        :class:`~restart_guard.errors.ThreadGone`,
        :class:`~restart_guard.errors.ConversationMoved` or
        :class:`~restart_guard.errors.RateLimited` where the platform says
        so; any other exception counts as transient and is retried.
        """

    async def replay(self, marker: Marker) -> None:
        """Feed the stored updates of ``marker.payload`` to the bot again."""

    # replay="ask" (see restart_guard._ask): three calls more. A link that sets
    # ``can_ask = False`` has none of them working: its questions are plain notices.
    async def send_question(self, notice: Notice, token: str) -> str:
        """:meth:`send_notice` with two buttons, *Continue* and *Dismiss*; return its message id.

        The buttons carry ``press_data(Choice.CONTINUE, token)`` and
        ``press_data(Choice.DISMISS, token)``. The id is what the platform
        edits the message by later (Telegram message_id, Discord message
        id, Slack ts), as a string. Errors as for :meth:`send_notice`.
        """

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        """Replace the question's text by ``text`` and remove its buttons.

        ``press``: the press that answered it, to acknowledge on the
        platform's terms (Telegram ``answerCallbackQuery``, a Discord
        UPDATE_MESSAGE response); None when it expired.
        """

    async def refuse_press(self, press: Press, text: str) -> None:
        """Answer the presser privately with ``text``; the question stays as it is.

        Telegram: an ``answerCallbackQuery`` alert; Discord: an ephemeral
        interaction response; Slack: ``chat.postEphemeral``.
        """
