"""``replay="ask"``: the notice asks the interrupted user *Continue* or *Dismiss*.

What the core needs to ask, and how a button press travels back::

    notice:  link.send_question(conversation, text, token=...) ─► message id
             marker ─► phase ASKED, ``question`` = that id (durable)
    press:   the adapter sees a button whose data starts with PRESS_PREFIX,
             keeps it from the bot's handlers, builds a :class:`Press` and
             calls ``Lifecycle.press(press)``; the resume step answers it:
             - not the asker            ─► link.refuse_press (privately)
             - Continue                 ─► attempt counted, durable; the notice
                                           edited; the stored update replayed
             - Dismiss                  ─► marker removed, durable; notice edited
    max_age: link.close_question(..., press=None): buttons gone, "expired"

Button data is ``rg1:<c|d>:<token>``: at most 22 bytes (Telegram allows 64),
and the token is a hash of the marker, never a name built from what a user
sent. Markers keep only ids: the asker's user id (``Marker.origins``) and
the notice's message id.

Several instances on one Redis store: the instance that posted the question
(or claimed its marker after that instance died) holds it, and only the
holder answers a press — a pop from its in-memory table, so one press is
acted on once, and the store's atomic claim guarantees no two instances
hold one marker. An instance that receives a press for a question it does
not hold answers privately that the question is not open here; once the
holder has stopped, its markers are claimed (at start-up or by the
background re-claim) and a new press is honoured.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._marker import Marker

__all__ = [
    "ASK_NOTICE",
    "CLOSED_ANSWER",
    "CONTINUED_NOTICE",
    "DISMISSED_NOTICE",
    "EXPIRED_NOTICE",
    "NOT_YOURS_ANSWER",
    "PRESS_PREFIX",
    "RESTARTING_ANSWER",
    "Choice",
    "Press",
    "askers_of",
    "is_press_data",
    "parse_press",
    "press_data",
    "press_from",
    "question_token",
]

#: Every button restart-guard posts carries data starting with this.
PRESS_PREFIX = "rg1:"
_DATA = re.compile(r"rg1:([cd]):([0-9a-f]{16})")

ASK_NOTICE = (
    "♻️ I was restarted while I was working on your last message, so I could not finish it. "
    "Shall I pick it up again?"
)
CONTINUED_NOTICE = (
    "♻️ I was restarted while I was working on your last message. Picking it up again now."
)
DISMISSED_NOTICE = (
    "♻️ I was restarted while I was working on your last message. Dismissed: I will not "
    "pick it up again."
)
EXPIRED_NOTICE = (
    "♻️ I was restarted while I was working on your last message. Nobody answered in time, "
    "so I did not pick it up again. Please send it again if you still need it."
)
NOT_YOURS_ANSWER = "Only the person whose message was interrupted can answer this."
CLOSED_ANSWER = (
    "This question is not open here any more (answered or expired), or another instance "
    "of the bot holds it; try again in a minute."
)
RESTARTING_ANSWER = "The bot is restarting; press again in a moment."

#: What the two buttons say.
CONTINUE_LABEL = "Continue"
DISMISS_LABEL = "Dismiss"


class Choice(str, enum.Enum):
    """The button pressed."""

    CONTINUE = "c"
    DISMISS = "d"

    @property
    def label(self) -> str:
        """The button's text."""
        return CONTINUE_LABEL if self is Choice.CONTINUE else DISMISS_LABEL


@dataclass(frozen=True)
class Press:
    """A user pressed one of a question's buttons.

    ``user`` is the presser's platform user id (a string); ``handle`` is
    whatever the adapter's link needs to answer this very press (a callback
    query id, an interaction's id and token, a Slack ``response_url``) — the
    core never looks into it.
    """

    choice: Choice
    token: str
    user: str
    handle: Any = None


def question_token(marker: Marker) -> str:
    """The key of a marker's question in button data: the same at every start."""
    identity = f"{marker.key}|{marker.started_at!r}"
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()  # 16 characters


def press_data(choice: Choice, token: str) -> str:
    """The data of one button (``rg1:c:<token>``); 22 ASCII bytes."""
    return f"{PRESS_PREFIX}{choice.value}:{token}"


def parse_press(data: object) -> tuple[Choice, str] | None:
    """``(choice, token)`` of a restart-guard button's data, else None (not ours, or garbage)."""
    if not isinstance(data, str) or not data.startswith(PRESS_PREFIX):
        return None
    match = _DATA.fullmatch(data)
    if match is None:
        return None
    return Choice(match.group(1)), match.group(2)


def is_press_data(data: object) -> bool:
    """Whether button data is restart-guard's (malformed ``rg1:`` data too: never the bot's)."""
    return isinstance(data, str) and data.startswith(PRESS_PREFIX)


def press_from(data: object, user: object, handle: Any = None) -> Press | None:
    """The :class:`Press` of a button whose data is ``data``, pressed by ``user``; None if
    the button is not restart-guard's.

    What every adapter does with a pressed button's data (Telegram
    ``callback_data``, Discord ``custom_id``, Slack ``action_id``): malformed
    ``rg1:`` data is still restart-guard's — kept from the bot's handlers and
    answered as a question that is not open (its token matches none).
    """
    if not is_press_data(data):
        return None
    choice, token = parse_press(data) or (Choice.DISMISS, "")
    return Press(choice, token, "" if user is None else str(user), handle)


def askers_of(marker: Marker) -> frozenset[str]:
    """The user ids allowed to answer ``marker``'s question (empty: not known, anyone may)."""
    return frozenset(o.user for o in marker.origins if o.user is not None)
