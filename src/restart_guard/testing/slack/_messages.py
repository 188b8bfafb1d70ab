"""The Slack stand-in's messages: what each channel holds now, who is in it, ephemerals.

Like Slack: a message is addressed by ``(channel, ts)``; only the bot's own
messages can be updated (``cant_update_message`` otherwise, ``message_not_found``
for a ts nobody posted); ``chat.update`` keeps the message's blocks unless it
is given ``blocks`` (an empty list removes them — the usual way to take
buttons off a message); an ephemeral message reaches one member of the
channel (``user_not_in_channel`` for anybody else) and is never stored in
the channel. Block Kit is checked as Slack checks it where a bot could get
it wrong (``invalid_blocks``): an actions block holds 1-25 elements, a button
has ``plain_text`` of at most 75 characters and an ``action_id`` of at most
255, unique in its message.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._workspace import _Workspace

__all__ = ["Ephemeral"]

#: Slack's limits on an actions block's elements and on a button.
_MAX_ACTIONS = 25
_MAX_BUTTON_TEXT = 75
_MAX_ACTION_ID = 255
_MAX_VALUE = 2000

Json = dict[str, Any]


@dataclass(frozen=True)
class Ephemeral:
    """A message only ``user`` sees in ``channel`` (``thread``: in that thread).

    ``via`` is ``"chat.postEphemeral"`` or ``"response_url"`` (then
    ``trigger_id`` names the press whose ``response_url`` carried it).
    """

    channel: str
    user: str
    text: str
    thread: str | None = None
    blocks: tuple[Any, ...] = ()
    via: str = "chat.postEphemeral"
    trigger_id: str | None = None
    at: float = field(default_factory=time.time)


class ApiError(Exception):
    """A Web API call Slack answers with ``{"ok": false, "error": error}``."""

    def __init__(self, error: str, **details: Any) -> None:
        super().__init__(error)
        self.error = error
        self.details = details

    def body(self) -> Json:
        return {"ok": False, "error": self.error, **self.details}


def check_blocks(blocks: Any) -> None:
    """Raise ``invalid_blocks`` for Block Kit Slack would refuse (see the module docstring)."""
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format")
    errors: list[str] = []
    action_ids: set[str] = set()
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:/blocks/{index}]")
            continue
        if block["type"] != "actions":
            continue
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= _MAX_ACTIONS:
            errors.append(f"must have 1-{_MAX_ACTIONS} elements [json-pointer:/blocks/{index}]")
            continue
        for number, element in enumerate(elements):
            where = f"[json-pointer:/blocks/{index}/elements/{number}]"
            errors.extend(f"{e} {where}" for e in _button_errors(element, action_ids))
    if errors:
        raise ApiError("invalid_blocks", errors=errors)


def _button_errors(element: Any, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict) or element.get("type") != "button":
        return []  # other interactive elements are not modelled
    errors = []
    text = element.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        errors.append("must be a plain_text text object")
    elif not 1 <= len(str(text.get("text", ""))) <= _MAX_BUTTON_TEXT:
        errors.append(f"must be 1-{_MAX_BUTTON_TEXT} characters")
    action_id = element.get("action_id")
    if action_id is not None:
        if not 1 <= len(str(action_id)) <= _MAX_ACTION_ID:
            errors.append(f"action_id must be 1-{_MAX_ACTION_ID} characters")
        elif action_id in action_ids:
            errors.append("action_id must be unique in the message")
        action_ids.add(str(action_id))
    if len(str(element.get("value", ""))) > _MAX_VALUE:
        errors.append(f"value must be at most {_MAX_VALUE} characters")
    return errors


def buttons_of(message: Mapping[str, Any]) -> list[tuple[str, Json]]:
    """``(block_id, button)`` of every button in a message's actions blocks, in order."""
    return [
        (str(block.get("block_id", "")), element)
        for block in message.get("blocks") or ()
        if isinstance(block, dict) and block.get("type") == "actions"
        for element in block.get("elements") or ()
        if isinstance(element, dict) and element.get("type") == "button"
    ]


class _Messages(_Workspace):
    """Messages by ``(channel, ts)``, channel members, and the ephemerals users were shown."""

    # ------------------------------------------------------------------ controls
    def join(self, channel: str, *users: str) -> None:
        """``users`` become members of ``channel`` (who posts there joins by posting)."""
        with self._lock:
            self._members.setdefault(str(channel), set()).update(map(str, users))

    def members(self, channel: str) -> set[str]:
        """The users the stand-in knows to be in ``channel``."""
        with self._lock:
            return set(self._members.get(str(channel), ()))

    # ------------------------------------------------------------------- readers
    def message(self, channel: str, ts: str) -> Json | None:
        """A message as it is now (after ``chat.update``), or None; a copy."""
        with self._lock:
            found = self._messages.get((str(channel), str(ts)))
            return copy.deepcopy(found)

    def buttons(self, channel: str, ts: str) -> list[tuple[str, str]]:
        """``(label, action_id)`` of the buttons a message carries now."""
        message = self.message(channel, ts) or {}
        return [
            (str((b.get("text") or {}).get("text", "")), str(b.get("action_id", "")))
            for _, b in buttons_of(message)
        ]

    def wait_for_message(
        self, channel: str, ts: str, predicate: Callable[[Json], bool], timeout: float = 15.0
    ) -> Json:
        """Block until the message ``(channel, ts)`` matches ``predicate`` (after edits)."""

        def check() -> Json | None:
            found = self._messages.get((str(channel), str(ts)))
            return copy.deepcopy(found) if found is not None and predicate(found) else None

        return self._wait_until(
            check,
            timeout,
            lambda: (
                f"waited {timeout}s for message {ts} in {channel}: "
                f"{self._messages.get((str(channel), str(ts)))!r}"
            ),
        )

    @property
    def ephemerals(self) -> list[Ephemeral]:
        """Every ephemeral message the bot showed a user, oldest first."""
        with self._lock:
            return list(self._ephemerals)

    def wait_for_ephemeral(
        self, predicate: Callable[[Ephemeral], bool] | None = None, timeout: float = 15.0
    ) -> Ephemeral:
        """Block until an ephemeral message matches ``predicate``; return the first that does."""

        def check() -> Ephemeral | None:
            return next((e for e in self._ephemerals if predicate is None or predicate(e)), None)

        return self._wait_until(
            check,
            timeout,
            lambda: f"waited {timeout}s for an ephemeral message; shown: {self._ephemerals!r}",
        )

    # ----------------------------------------------------------- for the parts
    def _store_message(self, channel: str, message: Json) -> None:
        """Keep a message the bot posted or a user wrote (the author joins the channel)."""
        with self._changed:
            self._messages[(channel, str(message["ts"]))] = copy.deepcopy(dict(message))
            if message.get("user"):
                self._members.setdefault(channel, set()).add(str(message["user"]))
            self._changed.notify_all()

    def _remember_user_message(self, event: Mapping[str, Any]) -> None:
        """A delivered event of a user's message: the message exists now, its author is in."""
        if event.get("type") not in ("message", "app_mention") or event.get("subtype"):
            return
        if not (event.get("channel") and event.get("ts")):
            return
        self._store_message(str(event["channel"]), {k: v for k, v in event.items() if k != "type"})

    def _update_message(self, params: Mapping[str, Any]) -> Json:
        """``chat.update``: Slack's answer, or :class:`ApiError`."""
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if not channel:
            raise ApiError("channel_not_found")
        self._channel_error(channel)
        if not (params.get("text") or "blocks" in params or "attachments" in params):
            raise ApiError("no_text")
        if "blocks" in params:
            check_blocks(params["blocks"])
        edited = {"user": self.bot_user_id, "ts": self.next_ts()}  # next_ts takes the lock
        with self._changed:
            message = self._messages.get((channel, ts))
            if message is None:
                raise ApiError("message_not_found")
            if message.get("bot_id") != self.bot_id:
                raise ApiError("cant_update_message")
            if params.get("text") is not None:
                message["text"] = str(params["text"])
            for key in ("blocks", "attachments"):  # kept unless given; [] removes them
                if key in params:
                    if params[key]:
                        message[key] = copy.deepcopy(params[key])
                    else:
                        message.pop(key, None)
            message["edited"] = edited
            result = copy.deepcopy(message)
            self._changed.notify_all()
        return {"ok": True, "channel": channel, "ts": ts, "text": result["text"], "message": result}

    def _post_ephemeral(self, params: Mapping[str, Any]) -> Json:
        """``chat.postEphemeral``: Slack's answer, or :class:`ApiError`."""
        channel, user = str(params.get("channel") or ""), str(params.get("user") or "")
        if not channel:
            raise ApiError("channel_not_found")
        self._channel_error(channel)
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise ApiError("no_text")
        if user not in self.members(channel):
            raise ApiError("user_not_in_channel")
        self._show_ephemeral(
            Ephemeral(
                channel,
                user,
                str(params.get("text") or ""),
                str(params["thread_ts"]) if params.get("thread_ts") else None,
                tuple(params.get("blocks") or ()),
            )
        )
        return {"ok": True, "message_ts": self.next_ts()}

    def _show_ephemeral(self, ephemeral: Ephemeral) -> None:
        with self._changed:
            self._ephemerals.append(ephemeral)
            self._changed.notify_all()

    def _channel_error(self, channel: str) -> None:
        """Raise the lasting error :meth:`fail_channel` set for ``channel``, if any."""
        with self._lock:
            error = self._channel_errors.get(channel)
        if error is not None:
            raise ApiError(error)
