"""What the Telegram stand-in's modules share: its error answer and parameter reading."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "Json", "int_param"]

Json = dict[str, Any]


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
