"""The durable record of one interrupted (or possibly interrupted) conversation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ._conversation import Conversation

__all__ = ["FORMAT_VERSION", "Marker", "Phase"]

#: Version of the JSON record. Readers skip records of a version they do not know.
FORMAT_VERSION = 1


class Phase(str, Enum):
    """Why a marker exists.

    ``IN_FLIGHT``: written ahead when a handler started. ``DRAINING``: written
    again for everything in flight when a stop signal arrived, before the
    drain. ``RESUMING``: claimed by a starting process that is posting the
    notice or re-running the turn.
    """

    IN_FLIGHT = "in_flight"
    DRAINING = "draining"
    RESUMING = "resuming"


@dataclass(frozen=True)
class Marker:
    """One conversation that must be resumed if the process dies with it in flight.

    ``attempts`` counts how many times a resumed turn was started for it (the
    crash-loop guard); ``owner`` names the process that holds it;
    ``payload`` is the list of stored platform updates, present only when
    replay is on — the only place message text is ever written.
    """

    conversation: Conversation
    started_at: float
    phase: Phase = Phase.IN_FLIGHT
    attempts: int = 0
    owner: str = ""
    updated_at: float = field(default_factory=time.time)
    payload: list[Any] | None = None

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
        return data

    @classmethod
    def from_json(cls, data: Any) -> Marker:
        """Rebuild a marker; ValueError on an unknown version or a malformed record."""
        if not isinstance(data, dict):
            raise ValueError("marker record is not a JSON object")
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown marker format version {data.get('v')!r}")
        conversation = Conversation.from_json(data.get("conversation"))  # type: ignore[arg-type]
        if data.get("key") not in (None, conversation.key):
            raise ValueError("marker key does not match its conversation")
        started_at = data.get("started_at")
        updated_at = data.get("updated_at", started_at)
        attempts = data.get("attempts", 0)
        payload = data.get("payload")
        for name, number in (("started_at", started_at), ("updated_at", updated_at)):
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValueError(f"marker {name} is not a number")
            try:
                finite = math.isfinite(number)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise ValueError(f"marker {name} is not finite")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError("marker attempts is not a non-negative integer")
        if payload is not None and not isinstance(payload, list):
            raise ValueError("marker payload is not a list")
        owner = data.get("owner", "")
        if not isinstance(owner, str):
            raise ValueError("marker owner is not a string")
        return cls(
            conversation=conversation,
            started_at=float(started_at),  # type: ignore[arg-type]
            phase=Phase(data.get("phase", Phase.IN_FLIGHT.value)),
            attempts=attempts,
            owner=owner,
            updated_at=float(updated_at),  # type: ignore[arg-type]
            payload=payload,
        )


def newer(a: Marker, b: Marker) -> Marker:
    """Of two records of one conversation, the one to keep: most attempts, then latest."""
    return max(a, b, key=lambda m: (m.attempts, m.updated_at))
