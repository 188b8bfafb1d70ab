"""In-process: Telegram forgets an update only once its marker is durable.

A real python-telegram-bot Application against the loopback stand-in, whose
``getUpdates`` confirms updates below ``offset`` as Telegram does. The
marker store is a real DirectoryStore behind a gate that holds the writer
inside its batch, so "acknowledged before durable" would show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

import restart_guard
from held_runs import CHAT, HOLD, HeldStore, confirmed_once_durable
from restart_guard import DirectoryStore
from restart_guard.testing.telegram import TelegramStandIn


@pytest.fixture
async def api() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


def guarded(api: TelegramStandIn, store: HeldStore) -> Application:  # type: ignore[type-arg]
    app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    return restart_guard.protect(store=store)(app)


async def test_polling_confirms_an_update_only_after_its_marker_is_durable(
    api: TelegramStandIn, tmp_path: Path
) -> None:
    store = HeldStore(tmp_path / "m", note=lambda: api.confirmed_offset)
    app = guarded(api, store)
    handled = asyncio.Event()
    finish = asyncio.Event()

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        handled.set()
        await finish.wait()  # in flight: a run that ended before its batch needs no marker

    app.add_handler(MessageHandler(filters.TEXT, handler))
    await app.initialize()
    await app.updater.start_polling(poll_interval=0)  # type: ignore[union-attr]
    await app.start()
    try:
        await confirmed_once_durable(api, store, handled)
    finally:
        store.release.set()
        finish.set()
        await app.updater.stop()  # type: ignore[union-attr]
        await app.stop()
        await app.shutdown()


async def test_a_webhook_put_returns_only_once_the_marker_is_durable(
    api: TelegramStandIn, tmp_path: Path
) -> None:
    # What run_webhook's request handler (and a custom webhook) does before it answers 200.
    store = HeldStore(tmp_path / "m", note=lambda: api.confirmed_offset)
    app = guarded(api, store)
    await app.initialize()
    try:
        update = Update.de_json(
            {
                "update_id": 10,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": CHAT, "type": "supergroup"},
                    "text": "hi",
                },
            },
            app.bot,
        )
        answering = asyncio.ensure_future(app.update_queue.put(update))
        assert await asyncio.to_thread(store.entered.wait, 10)
        await asyncio.sleep(HOLD)  # the batch held, as under a slow disk
        assert not answering.done()  # the webhook has not answered Telegram
        store.release.set()
        await asyncio.wait_for(answering, 10)
        [marker] = await asyncio.to_thread(DirectoryStore(tmp_path / "m").load)
        assert marker.marker.conversation.chat == str(CHAT)
    finally:
        store.release.set()
        await app.shutdown()
