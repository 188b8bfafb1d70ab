"""In-process: Telegram forgets an update an aiogram bot took only once its marker is durable.

A real aiogram Dispatcher against the loopback stand-in, whose ``getUpdates``
confirms updates below ``offset`` and whose webhook delivery counts a 2xx
answer as Telegram does. The marker store is a real DirectoryStore behind a
gate that holds the writer inside its batch (a slow disk), so
"acknowledged before durable" would show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

import restart_guard
from held_runs import CHAT, HOLD, HeldStore, confirmed_once_durable
from restart_guard.testing.telegram import TelegramStandIn


@pytest.fixture
async def api() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn(webhook_retry_delay=0.2) as standin:
        yield standin


def guarded(store: HeldStore) -> tuple[Dispatcher, asyncio.Event, asyncio.Event]:
    """A protected dispatcher whose message handler reports it runs and waits to finish."""
    dp = Dispatcher()
    handled, finish = asyncio.Event(), asyncio.Event()

    @dp.message()
    async def handler(message: Message) -> None:
        handled.set()
        await finish.wait()  # in flight: a run that ended before its batch needs no marker

    return restart_guard.protect(store=store)(dp), handled, finish


def answered(api: TelegramStandIn, update_id: int) -> bool:
    return any(u == update_id and 200 <= status < 300 for u, status in api.webhook_attempts)


async def test_polling_confirms_an_update_only_after_its_marker_is_durable(
    api: TelegramStandIn, tmp_path: Path
) -> None:
    store = HeldStore(tmp_path / "m", note=lambda: api.confirmed_offset)
    dp, handled, finish = guarded(store)
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    polling = asyncio.ensure_future(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        await confirmed_once_durable(api, store, handled)
    finally:
        store.release.set()
        finish.set()
        await dp.stop_polling()
        await asyncio.wait_for(polling, 30)


async def test_a_webhook_answers_telegram_only_once_the_marker_is_durable(
    api: TelegramStandIn, tmp_path: Path
) -> None:
    # aiogram's documented webhook: SimpleRequestHandler (answers at once, feeds the
    # update in a task) and setup_application, served by aiohttp.
    store = HeldStore(tmp_path / "m")
    dp, handled, finish = guarded(store)
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot).register(app, path="/hook")
    setup_application(app, dp, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        update_id = api.inject_message(CHAT, "hi")
        assert await asyncio.to_thread(store.entered.wait, 10)  # the marker's batch is held
        await asyncio.wait_for(handled.wait(), 10)
        await asyncio.sleep(HOLD)
        assert not answered(api, update_id)  # Telegram still holds the update
        store.release.set()
        await api.wait_until_confirmed_async(update_id)
        assert answered(api, update_id)
        assert [u for u, _ in api.webhook_attempts] == [update_id]  # one POST: no redelivery
    finally:
        store.release.set()
        finish.set()
        await runner.cleanup()  # aiogram's shutdown: the drain, then the session's close
