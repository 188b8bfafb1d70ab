"""Inline keyboards on the Telegram stand-in: presses, callback answers, message edits.

A mixin of :class:`~restart_guard.testing.telegram.TelegramStandIn`. Like
Telegram: a keyboard is checked when sent (``callback_data`` of 1-64
bytes), only a button a message carries *now* can be pressed, a callback
query is answered once, and an edit without ``reply_markup`` removes the
keyboard.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._telegram_api import ApiError, Json, int_param

__all__ = ["Buttons", "inline_keyboard"]

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


def inline_keyboard(markup: Any) -> Json | None:
    """A sent ``reply_markup`` checked as Telegram does; None for no (or an empty) keyboard."""
    if markup is None or markup == "":
        return None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise ApiError(
                400, "Bad Request: can't parse reply keyboard markup JSON object"
            ) from None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return dict(markup)  # a reply keyboard: kept as it is
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ApiError(400, 'Bad Request: field "inline_keyboard" must be an Array of Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not (1 <= len(str(data).encode()) <= 64):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    if not any(rows):
        return None
    return {"inline_keyboard": rows}


class Buttons:
    """Button presses and edits; the stand-in provides the state named below."""

    _lock: threading.Lock
    _changed: threading.Condition
    _messages: dict[tuple[str, int], Json]
    _bot_user: Json
    _open_queries: dict[str, float]
    _query_answers: dict[str, Json]
    _next_query: int

    if TYPE_CHECKING:  # provided by the stand-in

        def inject_update(self, update: dict[str, Any]) -> int: ...
        def _notify_async(self) -> None: ...
        @staticmethod
        def _chat_key(chat_id: Any) -> str | None: ...

    def press_button(
        self, chat_id: int | str, message_id: int, data: str, *, user_id: int = 1001
    ) -> str:
        """A user presses the inline button with callback ``data`` under a message.

        Queues a ``callback_query`` update and returns the query's id;
        :meth:`callback_answer` tells how the bot answered it. As in a
        Telegram client, only a button the message carries *now* can be
        pressed: ``ValueError`` if it has no such button (never had, or an
        edit removed it).
        """
        key = str(chat_id)
        with self._lock:
            message = self._messages.get((key, int(message_id)))
            if message is None:
                raise ValueError(f"no message {message_id} in chat {chat_id}")
            buttons = [
                b
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            if not any(b.get("callback_data") == data for b in buttons):
                raise ValueError(
                    f"message {message_id} has no button with data {data!r}; buttons: {buttons!r}"
                )
            query_id = f"cq{self._next_query}"
            self._next_query += 1
            query: Json = {
                "id": query_id,
                "from": {
                    "id": user_id,
                    "is_bot": False,
                    "first_name": "User",
                    "username": f"user{user_id}",
                },
                "message": copy.deepcopy(message),
                "chat_instance": str(zlib.crc32(key.encode())),
                "data": data,
            }
        self.inject_update({"callback_query": query})
        return query_id

    def buttons(self, chat_id: int | str, message_id: int) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of the inline buttons a message carries now."""
        with self._lock:
            message = self._messages.get((str(chat_id), int(message_id))) or {}
            markup = message.get("reply_markup") or {}
            return [
                (b.get("text", ""), b.get("callback_data", ""))
                for row in markup.get("inline_keyboard", [])
                for b in row
            ]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """A message as it is now (after edits), or None; a copy."""
        with self._lock:
            found = self._messages.get((str(chat_id), int(message_id)))
            return copy.deepcopy(found)

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        """How the bot answered a callback query (``answerCallbackQuery`` params), or None."""
        with self._lock:
            answer = self._query_answers.get(str(query_id))
            return None if answer is None else dict(answer)

    async def _answer_callback_query(self, params: Json, request: web.Request) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        with self._lock:
            if self._open_queries.pop(query_id, None) is None:
                # Unknown, or answered already: Telegram's words for both.
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or "
                    "query ID is invalid",
                )
            text = params.get("text")
            if text is not None and len(str(text)) > 200:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            self._query_answers[query_id] = dict(params)
        return True

    def _message_to_edit(self, params: Json) -> Json:
        # Caller holds self._lock.
        chat = self._chat_key(params.get("chat_id"))
        if chat is None or params.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self._messages.get((chat, int_param(params, "message_id", 0)))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self._bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    async def _edit_message_text(self, params: Json, request: web.Request) -> Any:
        text = params.get("text")
        if text is None or not str(text).strip():
            raise ApiError(400, "Bad Request: message text is empty")
        markup = inline_keyboard(params.get("reply_markup"))
        with self._lock:
            message = self._message_to_edit(params)
            if message["text"] == str(text) and message.get("reply_markup") == markup:
                raise ApiError(400, _NOT_MODIFIED)
            message["text"] = str(text)
            message["edit_date"] = int(time.time())
            # As on Telegram: an edit without reply_markup removes the inline keyboard.
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            result = copy.deepcopy(message)
        self._notify_changed()
        return result

    async def _edit_message_reply_markup(self, params: Json, request: web.Request) -> Any:
        markup = inline_keyboard(params.get("reply_markup"))
        with self._lock:
            message = self._message_to_edit(params)
            if message.get("reply_markup") == markup:
                raise ApiError(400, _NOT_MODIFIED)
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            message["edit_date"] = int(time.time())
            result = copy.deepcopy(message)
        self._notify_changed()
        return result

    def _notify_changed(self) -> None:
        with self._changed:
            self._changed.notify_all()
        self._notify_async()
