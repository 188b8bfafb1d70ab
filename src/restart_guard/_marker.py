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

__all__ = ["FORMAT_VERSION", "MAX_ORIGINS", "Marker", "Origin", "Phase", "marker_json_text"]

#: Version of the JSON record. Readers skip records of a version they do not know.
FORMAT_VERSION = 1
#: How many interrupted turns one marker remembers the origin of (the latest ones).
MAX_ORIGINS = 20


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
class Origin:
    """Where one interrupted turn came from: platform ids only, never text."""

    #: The platform's delivery id: Telegram update_id, Slack event_id; None on Discord.
    delivery: str | None = None
    #: The user's message the turn answers (Telegram message_id, Discord message id, Slack ts).
    message: str | None = None
    #: The asking user's id.
    user: str | None = None
    #: A slash command / component / callback (its token expires: mention, don't reply).
    interaction: bool = False
    #: False once a handler of the turn is ``@restart_guard.no_replay``.
    replayable: bool = True

    def to_json(self) -> dict[str, Any]:
        """The origin as a compact JSON object: fields left at their default are omitted."""
        data: dict[str, Any] = {}
        if self.delivery is not None:
            data["delivery"] = self.delivery
        if self.message is not None:
            data["message"] = self.message
        if self.user is not None:
            data["user"] = self.user
        if self.interaction:
            data["interaction"] = True
        if not self.replayable:
            data["replayable"] = False
        return data

    @classmethod
    def from_json(cls, data: Any) -> Origin:
        """Rebuild an origin; ValueError on a malformed record."""
        if type(data) is not dict:
            raise ValueError("marker origin is not a JSON object")
        get = data.get
        ids = [get("delivery"), get("message"), get("user")]
        for value in ids:
            if value is not None and type(value) is not str:
                raise ValueError("marker origin id is not a string")
        interaction, replayable = get("interaction", False), get("replayable", True)
        if type(interaction) is not bool or type(replayable) is not bool:
            raise ValueError("marker origin flag is not a boolean")
        return cls(ids[0], ids[1], ids[2], interaction, replayable)

    def same_turn(self, other: Origin) -> bool:
        """Both describe one turn (several handlers ran for one update)."""
        return (self.delivery, self.message, self.user, self.interaction) == (
            other.delivery,
            other.message,
            other.user,
            other.interaction,
        )


def bounded_origins(origins: list[Origin]) -> tuple[Origin, ...]:
    """``origins`` (oldest first) merged per turn and cut to :data:`MAX_ORIGINS`.

    A turn that ran several handlers is one origin, replayable only if every
    handler was. Cutting drops the oldest *replayable* turns first, so the
    verdict "some interrupted turn must not be replayed" survives the cut.
    """
    merged: list[Origin] = []
    for origin in origins:
        for i, seen in enumerate(merged):
            if seen.same_turn(origin):
                if not origin.replayable:
                    merged[i] = replace(seen, replayable=False)
                break
        else:
            merged.append(origin)
    excess = len(merged) - MAX_ORIGINS
    if excess <= 0:
        return tuple(merged)
    droppable = min(excess, sum(1 for o in merged if o.replayable))
    kept: list[Origin] = []
    for origin in merged:  # drop the oldest replayable ones first
        if origin.replayable and droppable:
            droppable -= 1
            continue
        kept.append(origin)
    return tuple(kept[-MAX_ORIGINS:])


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
    ``origins`` says where each interrupted turn came from (platform ids
    only, the latest :data:`MAX_ORIGINS`): what the notice replies to and
    whom it mentions. Markers of the previous version have none.
    """

    conversation: Conversation
    started_at: float
    phase: Phase = Phase.IN_FLIGHT
    attempts: int = 0
    owner: str = ""
    updated_at: float = field(default_factory=time.time)
    payload: list[Any] | None = None
    noticed: bool = False
    origins: tuple[Origin, ...] = ()
    question: str | None = None

    @property
    def replayable(self) -> bool:
        """False when a handler of an interrupted turn was marked ``no_replay``."""
        return all(origin.replayable for origin in self.origins)

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
        if self.origins:
            data["origins"] = [origin.to_json() for origin in self.origins]
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
        raw_origins = get("origins")
        origins: tuple[Origin, ...] = ()
        if raw_origins is not None:
            if type(raw_origins) is not list:
                raise ValueError("marker origins is not a list")
            origins = tuple(Origin.from_json(o) for o in raw_origins[-MAX_ORIGINS:])
        return cls(
            conversation,
            started_at,
            phase,
            attempts,
            owner,
            updated_at,
            payload,
            noticed,
            origins,
            question,
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
            self.origins,
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
    if marker.origins:
        body += ',"origins":' + json.dumps(
            [origin.to_json() for origin in marker.origins], separators=(",", ":")
        )
    if marker.question is not None:
        body += ',"question":' + _quote(marker.question)
    return body + "}"
