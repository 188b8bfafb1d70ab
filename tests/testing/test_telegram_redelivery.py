"""The Telegram stand-in redelivers like Telegram: every unconfirmed update, by poll or webhook.

A real python-telegram-bot ``Bot`` (getUpdates, setWebhook) and a real
aiohttp server as the webhook; every wait is for an observable condition.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import Conflict

from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually_async


def bot(api: TelegramStandIn) -> Bot:
    return Bot(api.token, base_url=api.base_url)


async def test_get_updates_without_an_offset_confirms_nothing() -> None:
    async with TelegramStandIn() as api, bot(api) as b:
        first = api.inject_message(42, "one")
        second = api.inject_message(42, "two")
        for _ in range(2):  # every look hands out the same unconfirmed updates
            assert [u.update_id for u in await b.get_updates(timeout=0)] == [first, second]
        assert api.pending_update_ids == [first, second]
        await b.get_updates(offset=second, timeout=0)  # confirms the first only
        assert [u.update_id for u in await b.get_updates(timeout=0)] == [second]


async def test_held_confirmation_never_arrives_when_the_client_goes_away() -> None:
    async with TelegramStandIn() as api, bot(api) as b:
        update_id = api.inject_message(42, "taken, never confirmed")
        assert [u.update_id for u in await b.get_updates(timeout=0)] == [update_id]
        api.hold_confirmations()
        confirming = asyncio.ensure_future(b.get_updates(offset=update_id + 1, timeout=0))
        await api.wait_for_call_async("getUpdates", count=2)
        confirming.cancel()  # the bot dies with its confirmation in flight
        with pytest.raises(asyncio.CancelledError):
            await confirming
        api.release_confirmations()
        # The next process gets it again.
        assert [u.update_id for u in await b.get_updates(timeout=0)] == [update_id]


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[tuple[int, str]], list[int]]]:
    """A webhook endpoint: answers the statuses queued in ``answers`` (then 200)."""
    got: list[tuple[int, str]] = []
    answers: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        got.append((body["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")))
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", got, answers
    finally:
        await runner.cleanup()


async def test_webhook_is_retried_until_it_answers_2xx(
    webhook: tuple[str, list[tuple[int, str]], list[int]],
) -> None:
    url, got, answers = webhook
    answers.extend([500, 502])
    async with TelegramStandIn(webhook_retry_delay=0.05) as api, bot(api) as b:
        await b.set_webhook(url, secret_token="s3cret")
        with pytest.raises(Conflict):
            await b.get_updates(timeout=0)  # as on Telegram while a webhook is set
        update_id = api.inject_message(42, "hello")
        await api.wait_until_confirmed_async(update_id)
        assert got == [(update_id, "s3cret")] * 3
        assert api.webhook_attempts == [(update_id, 500), (update_id, 502), (update_id, 200)]
        assert (await b.get_webhook_info()).url == url


async def test_webhook_answer_not_heard_while_held_is_posted_again_after_release(
    webhook: tuple[str, list[tuple[int, str]], list[int]],
) -> None:
    url, got, _ = webhook
    async with TelegramStandIn(webhook_retry_delay=0.05) as api, bot(api) as b:
        await b.set_webhook(url)
        api.hold_confirmations()
        update_id = api.inject_message(42, "hello")
        await api.wait_for_call_async("setWebhook")
        await eventually_async(lambda: api.webhook_attempts, what="the first POST")
        assert api.pending_update_ids == [update_id]
        api.release_confirmations()
        await api.wait_until_confirmed_async(update_id)
        assert [u for u, _ in got] == [update_id, update_id]
        await b.delete_webhook()
        assert api.webhook_url is None
