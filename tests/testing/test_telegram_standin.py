"""The Telegram stand-in against a real python-telegram-bot Application (no mocks).

Every test waits for an observable condition with a deadline; none sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from restart_guard.testing.telegram import TelegramStandIn

Context = ContextTypes.DEFAULT_TYPE


def build(api: TelegramStandIn) -> Application[Any, Any, Any, Any, Any, Any]:
    return ApplicationBuilder().token(api.token).base_url(api.base_url).build()


@contextlib.asynccontextmanager
async def polling(
    app: Application[Any, Any, Any, Any, Any, Any], **kwargs: Any
) -> AsyncIterator[None]:
    """initialize → start_polling → start ... updater.stop → stop → shutdown, as run_polling."""
    async with app:
        await app.updater.start_polling(**kwargs)  # type: ignore[union-attr]
        await app.start()
        try:
            yield
        finally:
            if app.updater.running:  # type: ignore[union-attr]
                await app.updater.stop()  # type: ignore[union-attr]
            if app.running:
                await app.stop()


async def echo(update: Update, context: Context) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


@pytest.fixture
async def api() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


# ------------------------------------------------------------------ basics
async def test_initialize_gets_the_bot_user(api: TelegramStandIn) -> None:
    app = build(api)
    async with app:
        assert app.bot.id == 123456
        assert app.bot.username == "standin_bot"
        assert app.bot.bot.is_bot
        assert app.bot.bot.can_join_groups
    assert api.calls[0] == ("getMe", {})


async def test_wrong_token_is_unauthorized_and_not_recorded(api: TelegramStandIn) -> None:
    bot = Bot("999:WRONG", base_url=api.base_url)
    with pytest.raises(InvalidToken, match="rejected by the server"):
        await bot.initialize()
    with pytest.raises(InvalidToken, match="Unauthorized"):
        await bot.get_updates(timeout=0)
    await bot.shutdown()
    assert api.calls == []


def test_token_must_look_like_a_token() -> None:
    with pytest.raises(ValueError, match="not a bot token"):
        TelegramStandIn("nonsense")


async def test_echo_bot_replies_in_private_chat_and_forum_topic(api: TelegramStandIn) -> None:
    app = build(api)
    app.add_handler(CommandHandler("start", echo))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with polling(app):
        api.inject_message(42, "hello")
        api.inject_message(-1001234, "/start now", message_thread_id=7)
        api.inject_message(-1001234, "main thread")
        await api.wait_for_sent_async(count=3, timeout=10)

    assert [(m.chat, m.thread, m.text) for m in api.sent] == [
        ("42", None, "echo: hello"),
        ("-1001234", "7", "echo: /start now"),
        ("-1001234", None, "echo: main thread"),
    ]
    assert api.sent_to(-1001234, 7)[0].params["message_thread_id"] == 7
    assert api.sent_to(42)[0].params["chat_id"] == 42


async def test_send_message_answers_a_realistic_message(api: TelegramStandIn) -> None:
    async with build(api) as app:
        first = await app.bot.send_message(-100555, "one", message_thread_id=3)
        second = await app.bot.send_message(-100555, "two", reply_to_message_id=first.message_id)
    assert second.message_id == first.message_id + 1
    assert first.text == "one"
    assert first.from_user is not None
    assert first.from_user.id == app.bot.id
    assert (first.chat.id, first.chat.type) == (-100555, "supergroup")
    assert first.message_thread_id == 3
    assert first.is_topic_message
    assert isinstance(first.date, dtm.datetime)
    assert second.reply_to_message is not None
    assert second.reply_to_message.text == "one"
    assert not second.is_topic_message


async def test_commands_in_groups_and_business_messages(api: TelegramStandIn) -> None:
    seen: list[Update] = []

    async def record(update: Update, context: Context) -> None:
        seen.append(update)
        await echo(update, context)

    app = build(api)
    app.add_handler(CommandHandler("status", record))
    app.add_handler(MessageHandler(filters.TEXT, record))
    async with polling(app):
        api.inject_message(-100777, "/status@standin_bot", user_id=5)
        api.inject_message(42, "via business", business_connection_id="bc-1")
        await api.wait_for_sent_async(count=2, timeout=10)

    command, business = seen
    assert command.message is not None
    assert command.message.from_user is not None
    assert command.message.from_user.id == 5
    assert command.message.chat.type == "supergroup"
    assert business.business_message is not None
    assert business.business_message.business_connection_id == "bc-1"
    assert api.sent_to(42)[0].params["business_connection_id"] == "bc-1"


async def test_raw_update_and_unknown_methods_answer_true(api: TelegramStandIn) -> None:
    answered: list[str] = []

    async def on_button(update: Update, context: Context) -> None:
        assert update.callback_query is not None
        answered.append(str(update.callback_query.data))
        assert await update.callback_query.answer("done") is True

    app = build(api)
    app.add_handler(CallbackQueryHandler(on_button))
    async with polling(app):
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("go", callback_data="go")]])
        sent = await app.bot.send_message(42, "pick", reply_markup=markup)
        update_id = api.inject_update(
            {
                "callback_query": {
                    "id": "cq-1",
                    "from": {"id": 42, "is_bot": False, "first_name": "U"},
                    "chat_instance": "ci",
                    "data": "go",
                    "message": sent.to_dict(),
                }
            }
        )
        [call] = await api.wait_for_call_async("answerCallbackQuery", timeout=10)
        assert await app.bot.set_my_commands([("start", "Start")]) is True
    assert answered == ["go"]
    assert call == {"callback_query_id": "cq-1", "text": "done"}
    assert update_id not in api.pending_update_ids
    assert api.sent[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"


# -------------------------------------------------------- offsets and polling
async def test_processed_updates_are_confirmed_and_not_redelivered(api: TelegramStandIn) -> None:
    seen: list[str] = []

    async def record(update: Update, context: Context) -> None:
        assert update.message is not None
        seen.append(str(update.message.text))
        await echo(update, context)

    first = build(api)
    first.add_handler(MessageHandler(filters.TEXT, record))
    async with polling(first):
        ids = [api.inject_message(42, "a"), api.inject_message(42, "b")]
        await api.wait_for_sent_async(count=2, timeout=10)
    # updater.stop() made the last getUpdates(offset=last+1).
    assert api.confirmed_offset == ids[-1] + 1
    assert api.pending_update_ids == []
    assert api.calls[-1] == ("getUpdates", {"offset": ids[-1] + 1, "timeout": 0})

    second = build(api)
    second.add_handler(MessageHandler(filters.TEXT, record))
    async with polling(second):
        api.inject_message(42, "c")
        await api.wait_for_sent_async(count=3, timeout=10)
    assert seen == ["a", "b", "c"]


async def test_unconfirmed_updates_are_delivered_again(api: TelegramStandIn) -> None:
    ids = [api.inject_message(42, str(n)) for n in range(3)]
    async with build(api) as app:
        again = await app.bot.get_updates(timeout=0, limit=2)
        assert [u.update_id for u in again] == ids[:2]
        assert [u.update_id for u in await app.bot.get_updates(timeout=0)] == ids
        assert api.pending_update_ids == ids

        rest = await app.bot.get_updates(offset=ids[0] + 1, timeout=0)
        assert [u.update_id for u in rest] == ids[1:]
        assert await api.wait_until_confirmed_async(ids[0]) == ids[0] + 1
        assert api.pending_update_ids == ids[1:]

        last = await app.bot.get_updates(offset=-1, timeout=0)
        assert [u.update_id for u in last] == ids[2:]
        assert api.confirmed_offset == ids[2]


async def test_drop_pending_updates_confirms_everything(api: TelegramStandIn) -> None:
    stale = api.inject_message(42, "stale")
    app = build(api)
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with polling(app, drop_pending_updates=True):
        assert api.confirmed_offset == stale + 1
        api.inject_message(42, "fresh")
        [reply] = await api.wait_for_sent_async(timeout=10)
    assert reply.text == "echo: fresh"


async def test_long_poll_answers_as_soon_as_an_update_arrives(api: TelegramStandIn) -> None:
    async with build(api) as app:
        poll = asyncio.create_task(app.bot.get_updates(timeout=30))
        assert await api.wait_for_poll_async(timeout=5) == 0
        started = time.monotonic()
        update_id = api.inject_message(42, "wake up")
        updates = await asyncio.wait_for(poll, 10)
    assert time.monotonic() - started < 5
    assert [u.update_id for u in updates] == [update_id]


async def test_stop_answers_a_waiting_long_poll_at_once() -> None:
    api = TelegramStandIn()
    await api.start()
    async with build(api) as app:
        poll = asyncio.create_task(app.bot.get_updates(timeout=30))
        await api.wait_for_poll_async(timeout=5)
        started = time.monotonic()
        await api.stop()
        assert await asyncio.wait_for(poll, 10) == ()
    assert time.monotonic() - started < 5


async def test_newer_get_updates_terminates_the_older_with_conflict(
    api: TelegramStandIn,
) -> None:
    async with build(api) as one, build(api) as two:
        older = asyncio.create_task(one.bot.get_updates(timeout=30))
        await api.wait_for_poll_async(timeout=5)
        assert await two.bot.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(older, 10)


async def test_a_poll_whose_client_went_away_does_not_count(api: TelegramStandIn) -> None:
    async with build(api) as app:
        poll = asyncio.create_task(app.bot.get_updates(timeout=30))
        await api.wait_for_poll_async(timeout=5)
        poll.cancel()
        deadline = time.monotonic() + 5
        while True:
            try:
                await api.wait_for_poll_async(timeout=0)
            except TimeoutError:
                break
            assert time.monotonic() < deadline, "the abandoned poll still counts as polling"
            await asyncio.sleep(0.01)


async def test_wait_for_poll_since_ignores_older_polls(api: TelegramStandIn) -> None:
    async with build(api) as old, build(api) as new:
        stale = asyncio.create_task(old.bot.get_updates(timeout=30))
        await api.wait_for_poll_async(timeout=5)
        since = time.monotonic()
        with pytest.raises(TimeoutError):
            await api.wait_for_poll_async(timeout=0.05, since=since)
        fresh = asyncio.create_task(new.bot.get_updates(timeout=30))
        await api.wait_for_poll_async(timeout=5, since=since)
        with pytest.raises(Conflict):
            await asyncio.wait_for(stale, 10)
        update_id = api.inject_message(42, "for the new poll")
        assert [u.update_id for u in await asyncio.wait_for(fresh, 10)] == [update_id]


def test_waits_time_out_with_the_state_in_the_message() -> None:
    api = TelegramStandIn()
    update_id = api.inject_message(42, "never fetched")
    with pytest.raises(TimeoutError, match=rf"confirmed offset: 0, pending: \[{update_id}\]"):
        api.wait_until_confirmed(update_id, timeout=0.05)
    with pytest.raises(TimeoutError, match="getUpdates long poll"):
        api.wait_for_poll(timeout=0.05)


# ------------------------------------------------------------- failures
async def test_forgotten_chat_is_bad_request_chat_not_found(api: TelegramStandIn) -> None:
    api.forget_chat(42)
    async with build(api) as app:
        with pytest.raises(BadRequest, match="Chat not found"):
            await app.bot.send_message(42, "anyone there?")
        with pytest.raises(BadRequest, match="Chat not found"):
            await app.bot.send_message(42, "still?")
        await app.bot.send_message(43, "other chat works")
    assert [m.chat for m in api.sent] == ["43"]
    assert [p["chat_id"] for m, p in api.calls if m == "sendMessage"] == [42, 42, 43]


async def test_kicked_bot_is_forbidden(api: TelegramStandIn) -> None:
    api.kick_bot(-100500)
    api.kick_bot(42)
    async with build(api) as app:
        with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
            await app.bot.send_message(-100500, "hello?")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await app.bot.send_message(42, "hello?")
    assert api.sent == []


async def test_rate_limit_is_retry_after(
    api: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opt in to PTB's future timedelta type; the int form warns since 22.2.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    api.rate_limit(chat_id=42, retry_after=3, times=2)
    async with build(api) as app:
        await app.bot.send_message(43, "other chats are not limited")
        for _ in range(2):
            with pytest.raises(RetryAfter) as caught:
                await app.bot.send_message(42, "too fast")
            # PTB 22 with PTB_TIMEDELTA gives a timedelta; PTB 21 gives an int.
            assert caught.value.retry_after in (3, dtm.timedelta(seconds=3))
        await app.bot.send_message(42, "now it goes")
    assert [m.text for m in api.sent] == ["other chats are not limited", "now it goes"]


async def test_deleted_topic_is_message_thread_not_found_only_there(
    api: TelegramStandIn,
) -> None:
    api.delete_topic(-100777, 5)
    async with build(api) as app:
        with pytest.raises(BadRequest, match="Message thread not found"):
            await app.bot.send_message(-100777, "into the topic", message_thread_id=5)
        await app.bot.send_message(-100777, "other topic", message_thread_id=6)
        await app.bot.send_message(-100777, "general")
        await app.bot.send_message(-100888, "same topic id elsewhere", message_thread_id=5)
    assert [(m.chat, m.thread) for m in api.sent] == [
        ("-100777", "6"),
        ("-100777", None),
        ("-100888", "5"),
    ]


async def test_fail_next_any_method(api: TelegramStandIn) -> None:
    api.fail_next("sendMessage", 502, "Bad Gateway")
    api.fail_next(
        "sendMessage",
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        chat_id=-100,
        parameters={"migrate_to_chat_id": -100999},
    )
    async with build(api) as app:
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await app.bot.send_message(1, "x")
        await app.bot.send_message(1, "recovered")
        with pytest.raises(ChatMigrated) as migrated:
            await app.bot.send_message(-100, "x")
        assert migrated.value.new_chat_id == -100999
        api.fail_next("getUpdates", 409, "Conflict: can't use getUpdates while webhook is active")
        with pytest.raises(Conflict, match="webhook is active"):
            await app.bot.get_updates(timeout=0)
    assert [m.text for m in api.sent] == ["recovered"]


async def test_a_failed_reply_reaches_the_error_handler(api: TelegramStandIn) -> None:
    errors: list[object] = []

    async def on_error(update: object, context: Context) -> None:
        errors.append(context.error)

    app = build(api)
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_error_handler(on_error)
    api.kick_bot(-100321)
    async with polling(app):
        update_id = api.inject_message(-100321, "hi")
        api.inject_message(42, "marker")
        await api.wait_for_sent_async(lambda m: m.chat == "42", timeout=10)
        await api.wait_until_confirmed_async(update_id, timeout=10)
    assert len(errors) == 1
    assert isinstance(errors[0], Forbidden)


# ------------------------------------------------------------ wire format
async def test_wire_format_json_get_and_errors(api: TelegramStandIn) -> None:
    base = f"{api.base_url}{api.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/sendMessage", json={"chat_id": "@news", "text": "42"}
        ) as resp:
            body = await resp.json()
            assert resp.status == 200
            assert body["ok"] is True
            assert body["result"]["chat"]["type"] == "channel"
        async with http.get(f"{base}/getMe") as resp:
            assert (await resp.json())["result"]["username"] == "standin_bot"
        async with http.get(f"{base}/getUpdates", params={"timeout": "0"}) as resp:
            assert await resp.json() == {"ok": True, "result": []}
        async with http.post(f"{base}/sendMessage", data={"chat_id": "7", "text": "42"}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/sendMessage", data={"chat_id": "7"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["description"] == "Bad Request: message text is empty"
        async with http.post(f"{base}/close") as resp:
            assert await resp.json() == {"ok": True, "result": True}
        async with http.post(f"{api.base_url}1:WRONG/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        api.rate_limit(retry_after=9)
        async with http.post(f"{base}/sendMessage", data={"chat_id": "7", "text": "x"}) as resp:
            assert resp.status == 429
            assert await resp.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 9",
                "parameters": {"retry_after": 9},
            }
    assert [(m.chat, m.text) for m in api.sent] == [("@news", "42"), ("7", "42")]
    # A form value is JSON-decoded except for text fields, which PTB sends raw.
    assert api.sent[1].params == {"chat_id": 7, "text": "42"}


# ------------------------------------------------------------ thread runner
def test_thread_runner_with_run_polling_in_another_thread() -> None:
    with TelegramStandIn.running() as api:
        app = build(api)

        async def quit_bot(update: Update, context: Context) -> None:
            context.application.stop_running()

        app.add_handler(CommandHandler("quit", quit_bot))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))

        # run_polling makes its own loop; no signal handlers outside the main thread.
        def run() -> None:
            # python-telegram-bot 21 needs the thread's loop set; 22 makes one itself.
            asyncio.set_event_loop(asyncio.new_event_loop())
            app.run_polling(stop_signals=None, close_loop=True)

        bot = threading.Thread(target=run, daemon=True)
        bot.start()
        try:
            api.wait_for_poll(timeout=10)
            api.inject_message(-100200, "from the test thread", message_thread_id=9)
            [reply] = api.wait_for_sent(timeout=10)
            assert (reply.chat, reply.thread) == ("-100200", "9")
            quit_id = api.inject_message(42, "/quit")
            api.wait_until_confirmed(quit_id, timeout=10)
            bot.join(10)
        finally:
            if bot.is_alive():  # a failed test must not leave the bot polling
                api.inject_message(42, "/quit")
                bot.join(10)
        assert not bot.is_alive()
        assert api.pending_update_ids == []


# ------------------------------------------------------ inline keyboards
async def test_a_button_press_reaches_the_bot_and_its_answer_is_recorded(
    api: TelegramStandIn,
) -> None:
    pressed: list[tuple[str, int]] = []

    async def on_button(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        pressed.append((str(query.data), query.from_user.id))
        await query.answer("not for you", show_alert=True)
        with pytest.raises(BadRequest, match=r"(?i)query id is invalid"):
            await query.answer("twice")  # a query is answered once

    app = build(api)
    app.add_handler(CallbackQueryHandler(on_button))
    async with polling(app):
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go:1")]])
        sent = await app.bot.send_message(-1001, "pick", reply_markup=markup)
        assert api.buttons(-1001, sent.message_id) == [("Go", "go:1")]
        query_id = api.press_button(-1001, sent.message_id, "go:1", user_id=77)
        with pytest.raises(ValueError, match="no button"):
            api.press_button(-1001, sent.message_id, "other")
        await api.wait_for_call_async("answerCallbackQuery", timeout=10)
    assert pressed == [("go:1", 77)]
    assert api.pending_update_ids == []
    assert api.callback_answer(query_id) == {
        "callback_query_id": query_id,
        "text": "not for you",
        "show_alert": True,
    }


async def test_edits_replace_the_text_and_remove_the_keyboard(api: TelegramStandIn) -> None:
    bot = Bot(api.token, base_url=api.base_url)
    async with bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
        sent = await bot.send_message(-1001, "question", reply_markup=markup)
        edited = await bot.edit_message_text("answered", chat_id=-1001, message_id=sent.message_id)
        assert isinstance(edited, type(sent))
        assert edited.text == "answered"
        assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard
        assert api.buttons(-1001, sent.message_id) == []
        with pytest.raises(ValueError, match="no button"):
            api.press_button(-1001, sent.message_id, "a")
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("answered", chat_id=-1001, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=-1001, message_id=999)

        again = await bot.send_message(-1001, "question 2", reply_markup=markup)
        await bot.edit_message_reply_markup(chat_id=-1001, message_id=again.message_id)
        message = api.message(-1001, again.message_id)
        assert message is not None
        assert "reply_markup" not in message
        assert message["text"] == "question 2"


async def test_callback_data_longer_than_64_bytes_is_refused(api: TelegramStandIn) -> None:
    bot = Bot(api.token, base_url=api.base_url)
    async with bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="x" * 65)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(-1001, "question", reply_markup=markup)


async def test_a_reply_to_a_missing_message_is_refused_unless_allowed(api: TelegramStandIn) -> None:
    asked = api.inject_message(-100555, "please", user_id=77)
    assert asked
    message_id = api.message_id_of(asked)
    assert message_id == api.last_message_id(-100555)
    async with build(api) as app:
        with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
            await app.bot.send_message(-100555, "x", reply_parameters=ReplyParameters(999))
        plain = await app.bot.send_message(
            -100555, "y", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
        )
        reply = await app.bot.send_message(
            -100555, "z", reply_parameters=ReplyParameters(message_id)
        )
    assert plain.reply_to_message is None
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == message_id
    assert [(m.text, m.reply_to, m.mentions) for m in api.sent] == [
        ("y", None, ()),
        ("z", str(message_id), ("77",)),  # Telegram notifies whom it answers
    ]


async def test_html_parse_mode_makes_entities_and_refuses_broken_markup(
    api: TelegramStandIn,
) -> None:
    async with build(api) as app:
        sent = await app.bot.send_message(
            -100555, '<a href="tg://user?id=5">👤</a> a &lt; b &amp; <b>c</b>', parse_mode="HTML"
        )
        for broken in ("a < b", "<b>open", "<blink>x</blink>", "a & b"):
            with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
                await app.bot.send_message(-100555, broken, parse_mode="HTML")
    assert sent.text == "👤 a < b & c"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("text_mention", 0, 2),  # UTF-16 units: the emoji is two
        ("bold", 11, 1),
    ]
    assert sent.entities[0].user is not None
    assert sent.entities[0].user.id == 5
    assert api.sent[0].mentions == ("5",)


async def test_a_reply_by_the_parameters_before_bot_api_7_is_a_reply(api: TelegramStandIn) -> None:
    # reply_to_message_id / allow_sending_without_reply: what aiogram < 3.4 sends.
    update_id = api.inject_message(-100321, "question")
    asked = api.message_id_of(update_id)
    base = f"{api.base_url}{api.token}"
    async with aiohttp.ClientSession() as http:
        reply = {"chat_id": "-100321", "text": "answer", "reply_to_message_id": str(asked)}
        async with http.post(f"{base}/sendMessage", data=reply) as resp:
            assert (await resp.json())["result"]["reply_to_message"]["message_id"] == asked
        gone = {**reply, "reply_to_message_id": "999"}
        async with http.post(f"{base}/sendMessage", data=gone) as resp:
            assert resp.status == 400
        lenient = {**gone, "allow_sending_without_reply": "true"}
        async with http.post(f"{base}/sendMessage", data=lenient) as resp:
            assert resp.status == 200
    assert [m.reply_to for m in api.sent] == [str(asked), None]
