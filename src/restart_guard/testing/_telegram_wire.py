"""The Bot API's wire format as the Telegram stand-in speaks it: errors, parameters, polls."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_Json = dict[str, Any]

_FIRST_UPDATE_ID = 100_000
# How often a waiting long poll looks whether its client has gone away. aiohttp
# does not cancel handlers on disconnect, and a dead poll must not count as
# "the bot is polling" (wait_for_poll) after the bot was killed.
_DISCONNECT_CHECK = 0.1
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
# python-telegram-bot sends str values raw and everything else JSON-encoded, so
# a text "42" or "true" would decode to a number or bool; these stay strings.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "business_connection_id",
        "title",
        "description",
        "short_description",
        "name",
        "first_name",
        "last_name",
        "url",
        "question",
        "explanation",
        "emoji",
        "callback_query_id",
        "inline_message_id",
        "message_effect_id",
        "secret_token",
        "ip_address",
    }
)


class _ApiError(Exception):
    """A Bot API error answer (``ok: false``) raised inside a method handler."""

    def __init__(self, status: int, description: str, parameters: _Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


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


def _error_body(status: int, description: str, parameters: _Json | None = None) -> _Json:
    body: _Json = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def _decode_value(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _int_param(params: _Json, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _ApiError(400, f"Bad Request: wrong parameter {name}") from None


def _utf16_len(text: str) -> int:
    # Telegram measures entity offsets and lengths in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2
