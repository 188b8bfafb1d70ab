"""The Telegram stand-in against a real aiogram 3 ``Bot`` and ``Dispatcher`` (no mocks).

aiogram sends multipart/form-data to ``{root}/bot{token}/{method}``; the
stand-in must read it as Telegram does, with the same offset semantics as
for python-telegram-bot, and push updates to a webhook like Telegram.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

aiogram = pytest.importorskip("aiogram")

from aiogram import Bot, Dispatcher  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.client.telegram import TelegramAPIServer  # noqa: E402
from aiogram.exceptions import (  # noqa: E402
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import Message  # noqa: E402

from restart_guard.testing.telegram import TelegramStandIn  # noqa: E402

FORUM = -1001000000001


@pytest.fixture
def api(telegram_api: TelegramStandIn) -> TelegramStandIn:
    """The shipped fixture's stand-in (in a thread of its own), under a short name."""
    return telegram_api


@pytest.fixture
async def bot(api: TelegramStandIn) -> AsyncIterator[Bot]:
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    yield bot
    await bot.session.close()


async def test_multipart_calls_are_read_like_form_encoded_ones(
    api: TelegramStandIn, bot: Bot
) -> None:
    me = await bot.get_me()
    assert me.id == int(api.token.split(":")[0])
    sent = await bot.send_message(FORUM, "42", message_thread_id=7)
    assert (sent.chat.id, sent.message_thread_id, sent.text) == (FORUM, 7, "42")
    [message] = api.sent_to(FORUM, 7)
    assert message.text == "42"  # a string parameter stays a string
    if "business_connection_id" in inspect.signature(bot.send_message).parameters:  # 3.5+
        await bot.send_message(5, "hi", business_connection_id="biz-1")
        assert api.sent[-1].params["business_connection_id"] == "biz-1"


async def test_errors_become_aiogram_exceptions(api: TelegramStandIn, bot: Bot) -> None:
    api.rate_limit(FORUM, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(FORUM, "x")
    assert limited.value.retry_after == 3
    api.kick_bot(-1002)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(-1002, "x")
    api.delete_topic(FORUM, 9)
    with pytest.raises(TelegramBadRequest, match="thread not found"):
        await bot.send_message(FORUM, "x", message_thread_id=9)


async def test_dispatcher_polls_and_confirms_with_the_next_offset(
    api: TelegramStandIn, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    first = api.inject_message(FORUM, "one", message_thread_id=7)
    await api.wait_for_sent_async(lambda m: m.text == "echo: one")
    await api.wait_until_confirmed_async(first)  # the next getUpdates confirmed it
    assert api.pending_update_ids == []
    second = api.inject_message(42, "two")
    await api.wait_for_sent_async(lambda m: m.text == "echo: two")
    await api.wait_until_confirmed_async(second)
    await dp.stop_polling()
    await polling
    offsets = [p.get("offset") for m, p in api.calls if m == "getUpdates"]
    assert offsets[:3] == [None, first + 1, second + 1]


async def test_webhook_calls_answer_aiogram_as_telegram_does(
    api: TelegramStandIn, bot: Bot
) -> None:
    # Delivery to the webhook (retried until 2xx) is tests/testing/test_telegram_redelivery.py;
    # here, that aiogram's calls around it read the stand-in's answers as Telegram's.
    await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cret")  # nothing listens
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("http://127.0.0.1:9/hook", 0)
    assert await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []
