"""What the Telegram stand-in's modules share: its error answer and parameter reading."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "Json", "error_body", "int_param", "read_params"]

Json = dict[str, Any]

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


class ApiError(Exception):
    """A Bot API error answer (``ok: false``) raised inside a method handler."""

    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def int_param(params: Json, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: wrong parameter {name}") from None


def error_body(status: int, description: str, parameters: Json | None = None) -> Json:
    """Telegram's answer to a failed call: ``ok: false``, ``error_code``, ``description``."""
    body: Json = {"ok": False, "error_code": status, "description": description}
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


async def read_params(request: web.Request) -> Json:
    """A method call's parameters: query string, then JSON body or form (uploads described)."""
    params: Json = {k: _decode_value(k, v) for k, v in request.query.items()}
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body is not an object")
        params.update(body)
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            # An upload: what was sent matters to a test, not the bytes.
            params[name] = {"filename": value.filename, "content_type": value.content_type}
        else:
            params[name] = _decode_value(name, str(value))
    return params
