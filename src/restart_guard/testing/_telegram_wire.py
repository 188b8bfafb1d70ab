"""The getUpdates side of the Telegram stand-in: update ids, long polls, conflicts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

_FIRST_UPDATE_ID = 100_000
# How often a waiting long poll looks whether its client has gone away. aiohttp
# does not cancel handlers on disconnect, and a dead poll must not count as
# "the bot is polling" (wait_for_poll) after the bot was killed.
_DISCONNECT_CHECK = 0.1
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


@dataclass(eq=False)
class _Poll:
    """A getUpdates long poll that is waiting for an update."""

    offset: int
    event: asyncio.Event
    request: web.Request
    conflict: bool = False
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        transport = self.request.transport
        return not self.conflict and transport is not None and not transport.is_closing()


def _utf16_len(text: str) -> int:
    # Telegram measures entity offsets and lengths in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2
