"""A loopback stand-in of the Telegram Bot API for offline tests of Telegram bots.

:class:`TelegramStandIn` is a small HTTP server on 127.0.0.1 that answers the
Bot API calls a bot makes (``getMe``, ``deleteWebhook``, long-polling
``getUpdates``, ``sendMessage`` ...). The bot under test is a real
python-telegram-bot ``Application``; only Telegram is replaced. Point the
bot at the stand-in with ``ApplicationBuilder().base_url(...)``::

    from telegram.ext import ApplicationBuilder

    app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()

In the test's own event loop (``async`` tests)::

    from restart_guard.testing.telegram import TelegramStandIn

    async def test_echo() -> None:
        async with TelegramStandIn() as api:
            app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
            app.add_handler(MessageHandler(filters.TEXT, echo))
            async with app:
                await app.updater.start_polling()
                await app.start()
                api.inject_message(42, "hello")
                [reply] = await api.wait_for_sent_async(lambda m: m.chat == "42")
                await app.updater.stop()
                await app.stop()

aiogram 3 talks to it the same way (``api.url`` is the API root; aiogram adds
``/bot{token}/{method}`` and sends multipart/form-data, which the stand-in
reads like Telegram does)::

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))

The blocking waits (``wait_for_sent``, ``wait_until_confirmed`` ...) would
freeze a loop that also runs the stand-in; in ``async`` code use their
``..._async`` twins.

In a thread of its own, for synchronous tests and for a bot that runs in
another thread or in a subprocess (pass ``api.base_url`` and ``api.token`` to
it, for example in its environment)::

    with TelegramStandIn.running() as api:
        bot = subprocess.Popen([...], env={..., "BOT_API": api.base_url})
        api.wait_for_poll()                    # the bot is up and long polling
        update_id = api.inject_message(-1001234, "/start", message_thread_id=7)
        api.wait_for_sent(lambda m: m.chat == "-1001234" and m.thread == "7")
        api.wait_until_confirmed(update_id)    # Telegram will not deliver it again

What the stand-in does like Telegram:

- every call is ``{base_url}{token}/{method}``, POST form-encoded or
  multipart/form-data (values JSON-encoded), a JSON body or a GET query
  string; a wrong token gets 401 (and is not recorded);
- ``getUpdates`` is a real long poll: it answers as soon as an update is
  injected, honours ``offset`` (updates below it are confirmed and dropped
  for good), ``limit`` and ``timeout``, and a newer ``getUpdates`` terminates a
  waiting one with 409 Conflict, as when two bot instances poll;
- errors have Telegram's exact shape, so python-telegram-bot raises
  ``BadRequest``, ``Forbidden``, ``RetryAfter``, ``Conflict`` ... by itself;
- ``setWebhook`` turns on webhook delivery (see
  :mod:`restart_guard.testing._telegram_webhook`): pending updates are POSTed
  to the URL until it answers 2xx, ``getUpdates`` then answers 409;
- an update is redelivered until confirmed — by a later ``getUpdates``
  offset or a 2xx webhook answer. :meth:`TelegramStandIn.hold_confirmations`
  plays a confirmation that never arrives (the bot killed after taking an
  update, before confirming it);
- methods it does not model answer ``{"ok": true, "result": true}``.

Everything the bot sent is in :attr:`~TelegramStandIn.sent`, every call in
:attr:`~TelegramStandIn.calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from ._standin import Failure, SentMessage
from ._telegram_api import ApiError as _ApiError
from ._telegram_api import error_body, read_params
from ._telegram_api import int_param as _int_param
from ._telegram_buttons import Buttons, inline_keyboard
from ._telegram_html import HtmlError, parse_html
from ._telegram_waits import TelegramWaits
from ._telegram_webhook import WEBHOOK_CONFLICT, WebhookDelivery, _WebhookControls
from ._telegram_wire import _CONFLICT, _DISCONNECT_CHECK, _FIRST_UPDATE_ID, _Poll, _utf16_len

__all__ = ["TelegramStandIn"]

_T = TypeVar("_T")
_Json = dict[str, Any]


class TelegramStandIn(_WebhookControls, Buttons, TelegramWaits):
    """Loopback Telegram Bot API for one bot token.

    ``token`` must look like a real one (``"<bot id>:<secret>"``); the bot's
    user id is the number before the colon. ``host`` and ``port`` are where to
    listen (port 0: a free port, see :attr:`url` once started).

    Use it with ``async with TelegramStandIn() as api:`` in the test's loop or
    ``with TelegramStandIn.running() as api:`` in a thread of its own; every
    public method is thread-safe.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhook_retry_delay: float = 1.0,
    ) -> None:
        bot_id, colon, secret = token.partition(":")
        if not (bot_id.isdigit() and colon and secret):
            raise ValueError(f"not a bot token (want '<digits>:<secret>'): {token!r}")
        super().__init__(host, port)
        self._token = token
        self._bot_user: _Json = {
            "id": int(bot_id),
            "is_bot": True,
            "first_name": "Stand-in Bot",
            "username": "standin_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self._updates: list[_Json] = []  # not yet confirmed, in update_id order
        self._next_update_id = _FIRST_UPDATE_ID
        self._confirmed_offset = 0
        self._polls: list[_Poll] = []
        self._stopping = False
        self._chats: dict[str, _Json] = {}
        self._message_ids: dict[str, int] = {}
        self._messages: dict[tuple[str, int], _Json] = {}
        self._message_of_update: dict[int, int] = {}  # inject_message's update_id -> message_id
        self._forgotten: set[str] = set()
        self._kicked: set[str] = set()
        self._deleted_topics: set[tuple[str, str]] = set()
        # Confirmations held (hold_confirmations): update_ids a webhook answered meanwhile.
        self._holding = False
        self._answered_held: set[int] = set()
        self._webhook = WebhookDelivery(
            self._next_webhook_update,
            self._webhook_answered,
            lambda update_id, status: self._notify_async(),
            webhook_retry_delay,
        )
        self._methods: dict[str, Callable[[_Json, web.Request], Awaitable[Any]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setwebhook": self._set_webhook,
            "sendmessage": self._send_message,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
        }
        # Callback queries delivered and not answered yet, and the answers given.
        self._open_queries: dict[str, float] = {}
        self._query_answers: dict[str, _Json] = {}
        self._next_query = 1

    # ------------------------------------------------------------------ identity
    @property
    def token(self) -> str:
        """The bot token the stand-in accepts; every other token gets 401 Unauthorized."""
        return self._token

    @property
    def base_url(self) -> str:
        """What ``ApplicationBuilder().base_url()`` (or ``Bot(base_url=...)``) takes."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What ``ApplicationBuilder().base_file_url()`` takes (file downloads answer 404)."""
        return f"{self.url}/file/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's User object, as ``getMe`` answers it (a copy)."""
        return dict(self._bot_user)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one)."""
        with self._lock:
            self._stopping = False
        await super().start()

    async def _before_stop(self) -> None:
        # aiohttp's cleanup waits for running handlers: answer the long polls now.
        with self._lock:
            self._stopping = True
            polls = list(self._polls)
        for poll in polls:
            poll.event.set()
        await self._webhook.close()

    # ----------------------------------------------------------------- injection
    def inject_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int = 1001,
        chat_type: str | None = None,
        message_thread_id: int | None = None,
        is_topic_message: bool | None = None,
        is_forum: bool | None = None,
        business_connection_id: str | None = None,
    ) -> int:
        """Queue a text message from a user for the bot; return its ``update_id``.

        ``chat_type`` defaults to ``"private"`` for a positive ``chat_id`` and
        ``"supergroup"`` otherwise (``"group"`` and ``"channel"`` work too; a
        channel message arrives as ``channel_post`` without a sender).
        ``message_thread_id`` puts the message in a forum topic:
        ``is_topic_message`` and the chat's ``is_forum`` then default to true
        (pass ``is_topic_message=False`` for a reply thread of a normal group).
        With ``business_connection_id`` the update is a ``business_message``.
        A text starting with ``/`` carries a ``bot_command`` entity, so
        ``CommandHandler`` matches it. Delivered to ``getUpdates`` in order.
        """
        if chat_type is None:
            chat_type = "private" if chat_id > 0 else "supergroup"
        if is_topic_message is None:
            is_topic_message = message_thread_id is not None
        if is_forum is None:
            is_forum = message_thread_id is not None and is_topic_message
        chat: _Json = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat.update(first_name="User", username=f"user{chat_id}")
        else:
            chat["title"] = f"Chat {chat_id}"
        if is_forum:
            chat["is_forum"] = True
        message: _Json = {"date": int(time.time()), "chat": chat, "text": text}
        if chat_type == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = {
                "id": user_id,
                "is_bot": False,
                "first_name": "User",
                "username": f"user{user_id}",
                "language_code": "en",
            }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            if is_topic_message:
                message["is_topic_message"] = True
        if business_connection_id is not None:
            message["business_connection_id"] = business_connection_id
            kind = "business_message"
        else:
            kind = "channel_post" if chat_type == "channel" else "message"
        key = str(chat_id)
        with self._lock:
            self._chats[key] = chat
            message["message_id"] = self._next_message_id(key)
            self._messages[(key, message["message_id"])] = message
        update_id = self.inject_update({kind: message})
        with self._lock:
            self._message_of_update[update_id] = int(message["message_id"])
        return update_id

    def last_message_id(self, chat_id: int | str) -> int:
        """The id of the latest message in ``chat_id`` (a user's injected one, or the bot's)."""
        with self._lock:
            return self._message_ids.get(str(chat_id), 0)

    def message_id_of(self, update_id: int) -> int:
        """The ``message_id`` of the message :meth:`inject_message` queued as ``update_id``.

        Unlike :meth:`last_message_id` it stays right when the bot answers at once.
        """
        with self._lock:
            return self._message_of_update[update_id]

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue a raw Update object (a dict as Telegram sends it); return its ``update_id``.

        A missing ``update_id`` is assigned; a given one must be above every
        confirmed and pending one. The dict is copied.
        """
        update = copy.deepcopy(update)
        with self._changed:
            if update.get("update_id") is None:
                update["update_id"] = self._next_update_id
            update_id = int(update["update_id"])
            if update_id < self._next_update_id or update_id < self._confirmed_offset:
                raise ValueError(
                    f"update_id {update_id} is not new (next free id: {self._next_update_id})"
                )
            self._next_update_id = update_id + 1
            self._updates.append(update)
            query = update.get("callback_query")
            if isinstance(query, dict) and query.get("id") is not None:
                self._open_queries[str(query["id"])] = time.monotonic()
            self._changed.notify_all()
        self._wake_polls()
        self._wake_webhook()
        self._notify_async()
        return update_id

    # --------------------------------------------------------- failure injection
    def forget_chat(self, chat_id: int | str) -> None:
        """From now on every call naming this chat answers 400 "Bad Request: chat not found"."""
        with self._lock:
            self._forgotten.add(str(chat_id))

    def kick_bot(self, chat_id: int | str) -> None:
        """From now on every call naming this chat answers 403 Forbidden.

        The description is Telegram's for the chat type: "Forbidden: bot was
        kicked from the supergroup chat" (the default for a negative id),
        "... from the group chat", "... from the channel chat", and for a
        private chat "Forbidden: bot was blocked by the user".
        """
        with self._lock:
            self._kicked.add(str(chat_id))

    def delete_topic(self, chat_id: int | str, message_thread_id: int | str) -> None:
        """Calls into this forum topic answer 400 "Bad Request: message thread not found".

        The rest of the chat (no ``message_thread_id``, other topics) keeps working.
        """
        with self._lock:
            self._deleted_topics.add((str(chat_id), str(message_thread_id)))

    def rate_limit(
        self, chat_id: int | str | None = None, retry_after: int = 1, times: int = 1
    ) -> None:
        """The next ``times`` sendMessage calls (to ``chat_id``, or any) answer 429.

        The body carries ``parameters.retry_after``, so python-telegram-bot
        raises ``RetryAfter`` with that many seconds.
        """
        self.fail_next(
            "sendMessage",
            429,
            f"Too Many Requests: retry after {retry_after}",
            chat_id=chat_id,
            times=times,
            parameters={"retry_after": retry_after},
        )

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        chat_id: int | str | None = None,
        times: int = 1,
        *,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (to ``chat_id``, or any) get this error.

        ``method`` as the bot spells it (python-telegram-bot: ``"sendMessage"``);
        any method can fail, ``getUpdates`` included. The answer is
        ``{"ok": false, "error_code": status, "description": description}``
        plus ``parameters`` when given (``{"migrate_to_chat_id": ...}`` ...).
        """
        self.fail(
            Failure(
                method=method,
                status=status,
                body=error_body(status, description, parameters),
                chat=None if chat_id is None else str(chat_id),
                times=times,
            )
        )

    # ------------------------------------------------------------------- routes
    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if not path.startswith("/bot"):
            return web.json_response(error_body(404, "Not Found"), status=404)
        token, _, method = path[len("/bot") :].partition("/")
        if token != self._token:
            return web.json_response(error_body(401, "Unauthorized"), status=401)
        if not method or "/" in method:
            return web.json_response(error_body(404, "Not Found"), status=404)
        try:
            params = await read_params(request)
        except ConnectionError:
            # The client gave up before its request was read; nobody hears an answer.
            return web.Response(status=499)
        except ValueError:
            return web.json_response(
                error_body(400, "Bad Request: can't parse request body"), status=400
            )
        self._record_call(method, params)
        chat = self._chat_key(params.get("chat_id"))
        failure = self._take_failure(method, chat)
        if failure is not None:
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        try:
            self._check_chat_state(chat, params)
            handler = self._methods.get(method.lower())
            result = True if handler is None else await handler(params, request)
        except _ApiError as err:
            return web.json_response(
                error_body(err.status, err.description, err.parameters), status=err.status
            )
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _chat_key(chat_id: Any) -> str | None:
        return None if chat_id is None or chat_id == "" else str(chat_id)

    def _check_chat_state(self, chat: str | None, params: _Json) -> None:
        if chat is None:
            return
        thread = params.get("message_thread_id")
        with self._lock:
            forgotten = chat in self._forgotten
            kicked = chat in self._kicked
            topic_gone = thread is not None and (chat, str(thread)) in self._deleted_topics
            chat_type = self._chat_type(chat)
        if forgotten:
            raise _ApiError(400, "Bad Request: chat not found")
        if kicked:
            if chat_type == "private":
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
            raise _ApiError(403, f"Forbidden: bot was kicked from the {chat_type} chat")
        if topic_gone:
            raise _ApiError(400, "Bad Request: message thread not found")

    # ------------------------------------------------------------------ methods
    async def _get_me(self, params: _Json, request: web.Request) -> Any:
        return dict(self._bot_user)

    async def _delete_webhook(self, params: _Json, request: web.Request) -> Any:
        self._webhook.set(None)
        if params.get("drop_pending_updates") in (True, "true", "True", 1):
            with self._changed:
                self._confirm(self._next_update_id)
            self._notify_async()
        return True

    async def _get_webhook_info(self, params: _Json, request: web.Request) -> Any:
        with self._lock:
            pending = len(self._updates)
        url = self.webhook_url or ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": pending}

    async def _get_updates(self, params: _Json, request: web.Request) -> Any:
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        try:
            timeout = max(float(params.get("timeout") or 0), 0.0)
        except (TypeError, ValueError):
            raise _ApiError(400, "Bad Request: wrong parameter timeout") from None
        if self._webhook.webhook is not None:
            raise _ApiError(409, WEBHOOK_CONFLICT)
        if offset > 0 and not await self._confirmation_arrives(offset, request):
            return []  # the client went away while its confirmation was held
        poll: _Poll | None = None
        with self._changed:
            if offset > 0:
                self._confirm(offset)
            elif offset < 0:
                # A negative offset keeps only the last -offset updates.
                kept = self._updates[offset:]
                self._confirm(int(kept[0]["update_id"]) if kept else self._next_update_id)
            # As on Telegram, the newest getUpdates wins and an older waiting one is
            # terminated: two bot instances polling one token see 409 Conflict.
            for older in self._polls:
                older.conflict = True
                older.event.set()
            self._polls.clear()
            batch = copy.deepcopy(self._updates[:limit])
            if not (batch or timeout == 0 or self._stopping):
                poll = _Poll(self._confirmed_offset, asyncio.Event(), request)
                self._polls.append(poll)
            self._changed.notify_all()
        self._notify_async()
        if poll is None:
            return self._hand_out(batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                poll.event.clear()
                if poll.conflict:
                    raise _ApiError(409, _CONFLICT)
                with self._lock:
                    batch = copy.deepcopy(self._updates[:limit])
                    stopping = self._stopping
                left = deadline - loop.time()
                if batch or stopping or left <= 0 or not poll.alive():
                    return self._hand_out(batch)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(poll.event.wait(), min(left, _DISCONNECT_CHECK))
        finally:
            with self._changed:
                if poll in self._polls:
                    self._polls.remove(poll)
                self._changed.notify_all()
            self._notify_async()

    def _hand_out(self, batch: list[_Json]) -> list[_Json]:
        for update in batch:
            self._handed_out(update)
        return batch

    async def _send_message(self, params: _Json, request: web.Request) -> Any:
        chat_id = params.get("chat_id")
        chat = self._chat_key(chat_id)
        if chat is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if text is None or not str(text).strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        thread = params.get("message_thread_id")
        business = params.get("business_connection_id")
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            # The parameters before Bot API 7.0 (aiogram < 3.4 sends them); Telegram takes both.
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        entities = params.get("entities")
        if params.get("parse_mode") == "HTML":
            try:
                text, entities = parse_html(text)
            except HtmlError as exc:
                raise _ApiError(400, str(exc)) from None
        elif params.get("parse_mode") not in (None, ""):
            raise _ApiError(400, f"Bad Request: unsupported parse_mode {params['parse_mode']!r}")
        with self._lock:
            chat_obj = dict(self._chats.get(chat) or self._unknown_chat(chat, chat_id))
            if thread is not None and chat_obj["type"] == "supergroup":
                chat_obj.setdefault("is_forum", True)
            message: _Json = {
                "message_id": self._next_message_id(chat),
                "from": dict(self._bot_user),
                "chat": chat_obj,
                "date": int(time.time()),
                "text": text,
            }
            if thread is not None:
                message["message_thread_id"] = int(thread)
                message["is_topic_message"] = True
            if business:
                message["business_connection_id"] = str(business)
            markup = inline_keyboard(params.get("reply_markup"))
            if markup is not None:
                message["reply_markup"] = markup
            if isinstance(entities, list) and entities:
                message["entities"] = entities
            reply_to = None
            notified: list[str] = [
                str(e["user"]["id"])
                for e in (entities if isinstance(entities, list) else ())
                if isinstance(e, dict) and e.get("type") == "text_mention"
            ]
            if isinstance(reply, dict) and reply.get("message_id") is not None:
                reply_id = int(reply["message_id"])
                replied = self._messages.get((chat, reply_id))
                if replied is None and not reply.get("allow_sending_without_reply"):
                    # Telegram's answer to a reply to a message it does not have.
                    raise _ApiError(400, "Bad Request: message to be replied not found")
                if replied is not None:
                    reply_to = str(reply_id)
                    author = (replied.get("from") or {}).get("id")
                    if author is not None and str(author) != str(self._bot_user["id"]):
                        notified.append(str(author))  # Telegram notifies whom it answers
                    message["reply_to_message"] = {
                        k: v for k, v in replied.items() if k != "reply_to_message"
                    }
            self._messages[(chat, message["message_id"])] = message
        self._record(
            SentMessage(
                chat=chat,
                thread=None if thread is None else str(thread),
                text=text,
                params=dict(params),
                id=str(message["message_id"]),
                reply_to=reply_to,
                mentions=tuple(dict.fromkeys(notified)),
            )
        )
        return message

    # ---------------------------------------------------------------- internals
    def _next_message_id(self, chat: str) -> int:
        # Caller holds self._lock.
        self._message_ids[chat] = self._message_ids.get(chat, 0) + 1
        return self._message_ids[chat]

    def _chat_type(self, chat: str) -> str:
        # Caller holds self._lock.
        known = self._chats.get(chat)
        if known is not None:
            return str(known["type"])
        return str(self._unknown_chat(chat, chat)["type"])

    @staticmethod
    def _unknown_chat(chat: str, chat_id: Any) -> _Json:
        """A plausible Chat for a chat the bot was never told about (Telegram would know it)."""
        try:
            number = int(chat)
        except ValueError:
            username = chat.lstrip("@")
            # A stable id (crc32, not hash()) so runs of a test see the same chat.
            channel_id = -1_000_000_000_000 - zlib.crc32(username.encode())
            return {"id": channel_id, "type": "channel", "title": username, "username": username}
        if number > 0:
            return {"id": number, "type": "private", "first_name": "User"}
        return {"id": number, "type": "supergroup", "title": f"Chat {number}"}

    def _confirm(self, offset: int) -> None:
        # Caller holds self._lock (through self._changed).
        if offset <= self._confirmed_offset:
            return
        self._confirmed_offset = offset
        self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]

    def _wake_polls(self) -> None:
        """Wake the waiting long polls, from any thread."""
        loop = self._loop

        def wake() -> None:
            with self._lock:
                polls = list(self._polls)
            for poll in polls:
                poll.event.set()

        if loop is not None:
            # A closed loop means the stand-in is gone; the update stays queued.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake)
