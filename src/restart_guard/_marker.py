"""The durable record of one interrupted (or possibly interrupted) conversation."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from ._conversation import Conversation

__all__ = ["FORMAT_VERSION", "Marker", "Phase", "marker_json_text"]

#: Version of the JSON record. Readers skip records of a version they do not know.
FORMAT_VERSION = 1


class Phase(str, Enum):
    """Why a marker exists.

    ``IN_FLIGHT``: written ahead when a handler started. ``DRAINING``: written
    again for everything in flight when a stop signal arrived, before the
    drain. ``RESUMING``: claimed by a starting process that is posting the
    notice or re-running the turn. ``ASKED``: ``replay="ask"`` posted the
    question (Continue / Dismiss) and waits for the asker's answer, across
    restarts, until ``max_age``; a claim keeps this phase.
    """

    IN_FLIGHT = "in_flight"
    DRAINING = "draining"
    RESUMING = "resuming"
    ASKED = "asked"


@dataclass(frozen=True)
class Marker:
    """One conversation that must be resumed if the process dies with it in flight.

    ``attempts`` counts how many times a resumed turn was started for it (the
    crash-loop guard); ``owner`` names the process that holds it;
    ``payload`` is the list of stored platform updates, present only when
    replay is on — the only place message text is ever written.
    ``noticed`` says the "resumed" notice for this interruption was already
    posted (the platform confirmed it), so a later start must not post it
    again; written only while a resumed turn still follows the notice.
    """

    conversation: Conversation
    started_at: float
    phase: Phase = Phase.IN_FLIGHT
    attempts: int = 0
    owner: str = ""
    updated_at: float = field(default_factory=time.time)
    payload: list[Any] | None = None
    noticed: bool = False
    question: str | None = None

    @property
    def key(self) -> str:
        """The conversation's stable key (a hash; safe as a file or Redis key name)."""
        return self.conversation.key

    def age(self, now: float | None = None) -> float:
        """Seconds since the interrupted turn started."""
        return (time.time() if now is None else now) - self.started_at

    def with_changes(self, **changes: Any) -> Marker:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The marker as a JSON object (``v`` is :data:`FORMAT_VERSION`)."""
        data: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "key": self.key,
            "conversation": self.conversation.to_json(),
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "phase": self.phase.value,
            "attempts": self.attempts,
            "owner": self.owner,
        }
        if self.payload is not None:
            data["payload"] = self.payload
        if self.noticed:  # absent, as in the previous version's records, when false
            data["noticed"] = True
        if self.question is not None:
            data["question"] = self.question
        return data

    @classmethod
    def from_json(cls, data: Any) -> Marker:
        """Rebuild a marker; ValueError on an unknown version or a malformed record."""
        # Start-up parses thousands of these: checks are plain type tests, no loops.
        if type(data) is not dict:
            raise ValueError("marker record is not a JSON object")
        get = data.get
        version = get("v")
        if version != FORMAT_VERSION or type(version) is not int:
            raise ValueError(f"unknown marker format version {version!r}")
        conversation = Conversation.from_json(get("conversation"))  # type: ignore[arg-type]
        key = get("key")
        if key is not None and key != conversation.key:
            raise ValueError("marker key does not match its conversation")
        started_at = _timestamp(get("started_at"), "started_at")
        updated = get("updated_at")
        updated_at = started_at if updated is None else _timestamp(updated, "updated_at")
        attempts = get("attempts", 0)
        if type(attempts) is not int or attempts < 0:
            raise ValueError("marker attempts is not a non-negative integer")
        payload = get("payload")
        if payload is not None and type(payload) is not list:
            raise ValueError("marker payload is not a list")
        owner = get("owner", "")
        if type(owner) is not str:
            raise ValueError("marker owner is not a string")
        phase = _PHASES.get(get("phase", "in_flight"))
        if phase is None:
            raise ValueError(f"{get('phase')!r} is not a valid Phase")
        noticed = get("noticed", False)
        if type(noticed) is not bool:
            raise ValueError("marker noticed is not a boolean")
        question = get("question")
        if question is not None and type(question) is not str:
            raise ValueError("marker question is not a string")
        return cls(
            conversation, started_at, phase, attempts, owner, updated_at, payload, noticed, question
        )

    def claimed_by(self, owner: str, now: float) -> Marker:
        """This marker, taken over by ``owner`` to be resumed (cheaper than ``with_changes``).

        A question still waiting for its answer stays ``ASKED``.
        """
        return Marker(
            self.conversation,
            self.started_at,
            Phase.ASKED if self.phase is Phase.ASKED else Phase.RESUMING,
            self.attempts,
            owner,
            now,
            self.payload,
            self.noticed,
            self.question,
        )


_PHASES = {phase.value: phase for phase in Phase}
# Beyond any real clock, and small enough that float() cannot overflow.
_MAX_TIMESTAMP = 1e15


def _timestamp(value: Any, name: str) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
        raise ValueError(f"marker {name} is not a number")
    if not -_MAX_TIMESTAMP < value < _MAX_TIMESTAMP:  # also false for NaN and inf
        raise ValueError(f"marker {name} is not finite")
    return float(value)


def newer(a: Marker, b: Marker) -> Marker:
    """Of two records of one conversation, the one to keep: most attempts, then latest."""
    return max(a, b, key=lambda m: (m.attempts, m.updated_at))


def marker_json_text(marker: Marker, head: str = "") -> str:
    """``json.dumps(marker.to_json())``, built from cached pieces, with ``head`` fields first.

    Stores encode thousands of markers in a pre-drain burst; this is several
    times faster than ``json.dumps``. ASCII only (the C escaper), so a lone
    surrogate from a platform's JSON cannot make a batch unencodable, and a
    replay payload that is not JSON is left out with one log line rather
    than keeping every other marker off the store.
    """
    body = (
        f'{{{head}"v":{FORMAT_VERSION},"key":"{marker.key}",'
        f'"conversation":{marker.conversation.json_fragment()},'
        f'"started_at":{marker.started_at!r},"updated_at":{marker.updated_at!r},'
        f'"phase":"{marker.phase.value}","attempts":{marker.attempts},'
        f'"owner":{_quote(marker.owner)}'
    )
    if marker.payload is not None:
        try:
            body += ',"payload":' + json.dumps(marker.payload, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            logging.getLogger("restart_guard").error(
                "restart-guard: replay payload of %s is not JSON (%s); marked without it",
                marker.conversation,
                exc,
            )
    if marker.noticed:
        body += ',"noticed":true'
    if marker.question is not None:
        body += ',"question":' + _quote(marker.question)
    return body + "}"
