"""One notice to post: its text, where it goes, what it answers and whom it addresses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._conversation import Conversation
from ._marker import Marker, Origin

__all__ = ["MAX_MENTIONS", "Notice"]

#: Askers a notice mentions by name; the rest are counted ("and 3 others").
MAX_MENTIONS = 5


@dataclass(frozen=True)
class Notice:
    """What :meth:`PlatformLink.send_notice` posts.

    ``conversation`` is where it goes — the marker's, or where the resume
    step followed it (a deleted thread's parent, a migrated chat);
    ``nonce`` is the same for this notice of this marker at every start;
    ``marker`` carries the ids of the interrupted turns (``marker.origins``)
    that :attr:`reply_to` and :attr:`askers` are read from.
    """

    conversation: Conversation
    text: str
    nonce: str
    marker: Marker

    @property
    def reply_to(self) -> str | None:
        """The message to answer: the latest interrupted user message, if the notice can.

        None for markers of the previous version, turns that were
        interactions (their message is the bot's), and a notice that no
        longer goes where the turn was (another chat's message ids mean
        other messages; a deleted thread took its messages with it).
        """
        where = self.marker.conversation
        if self.conversation.chat != where.chat or self.conversation.thread != where.thread:
            return None
        for origin in reversed(self.marker.origins):
            if origin.message is not None and not origin.interaction:
                return origin.message
        return None

    @property
    def replied_user(self) -> str | None:
        """Who wrote :attr:`reply_to` (a reply already notifies them on some platforms)."""
        reply_to = self.reply_to
        for origin in reversed(self.marker.origins):
            if origin.message == reply_to and not origin.interaction:
                return origin.user
        return None

    @property
    def askers(self) -> tuple[str, ...]:
        """Every user whose turn was interrupted, in the order they asked, once each."""
        return tuple(dict.fromkeys(o.user for o in self.marker.origins if o.user is not None))

    @property
    def interactions(self) -> tuple[Origin, ...]:
        """The interrupted turns that were slash commands, components or callbacks."""
        return tuple(o for o in self.marker.origins if o.interaction)

    def mentions(self, mention: Callable[[str], str], *, leave_out: str | None = None) -> str:
        """The askers as one phrase: ``mention(id)`` for up to :data:`MAX_MENTIONS`, then
        "and N others"; empty when there is nobody (besides ``leave_out``) to mention."""
        users = [u for u in self.askers if u != leave_out]
        if not users:
            return ""
        shown = [mention(u) for u in users[:MAX_MENTIONS]]
        others = len(users) - len(shown)
        if others:
            return ", ".join(shown) + f" and {others} other{'s' if others > 1 else ''}"
        if len(shown) == 1:
            return shown[0]
        return ", ".join(shown[:-1]) + " and " + shown[-1]

    def addressed(
        self,
        mention: Callable[[str], str],
        text: str | None = None,
        *,
        leave_out: str | None = None,
    ) -> str:
        """``text`` (default :attr:`text`) preceded by :meth:`mentions`, if any."""
        body = self.text if text is None else text
        phrase = self.mentions(mention, leave_out=leave_out)
        return f"{phrase} {body}" if phrase else body
