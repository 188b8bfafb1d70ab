"""Every platform error a notice can meet has a decided outcome: drop, follow or retry.

Each row injects the error into the platform's stand-in exactly as the
platform answers it, posts a notice through the adapter's real link and the
framework's real client, and checks what the resume step is told:

- drop: :class:`ConversationGone` — nobody can be told; the marker goes;
- follow: :class:`ThreadGone` (to the main chat) or :class:`ConversationMoved`
  (to the new chat id);
- retry: :class:`RateLimited` (after ``retry_after``) or any other error
  (backoff) — that conversation alone waits; the others go ahead.

docs/how-it-works/guarantees-notices.md has this table in words.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
from restart_guard.adapters.discord._link import Link as DiscordLink
from restart_guard.adapters.slack._link import delivery_error as slack_delivery_error
from restart_guard.adapters.telegram import _Link as TelegramLink
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from telegram.ext import ApplicationBuilder

from restart_guard import Conversation, Marker, Notice, Settings
from restart_guard.errors import (
    ConversationGone,
    ConversationMoved,
    DeliveryError,
    RateLimited,
    ThreadGone,
)
from restart_guard.testing.discord import DiscordStandIn, point_discord_at
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.telegram import TelegramStandIn


def _notice(where: Conversation, nonce: str) -> Notice:
    """The notice of a marker of the previous version (no origins): today's plain post."""
    return Notice(where, "resumed", nonce, Marker(where, time.time()))


Outcome = tuple[str, type[Exception] | None]  # (drop/follow/retry, the error the step sees)
DROP: Outcome = ("drop", ConversationGone)
FOLLOW_THREAD: Outcome = ("follow", ThreadGone)
FOLLOW_CHAT: Outcome = ("follow", ConversationMoved)
RETRY_AFTER: Outcome = ("retry", RateLimited)
RETRY: Outcome = ("retry", None)  # not a DeliveryError: transient, backoff

GROUP, TOPIC = -1001000000001, 7


def _outcome_of(error: BaseException | None) -> Outcome:
    if error is None:
        raise AssertionError("the notice went out: no error was injected")
    for outcome in (DROP, FOLLOW_THREAD, FOLLOW_CHAT, RETRY_AFTER):
        if type(error) is outcome[1]:
            return outcome
    assert not isinstance(error, DeliveryError), error
    return RETRY


# ------------------------------------------------------------------ Telegram
TELEGRAM: list[tuple[str, Callable[[TelegramStandIn], Any], int | None, Outcome]] = [
    ("429 Too Many Requests", lambda api: api.rate_limit(GROUP, retry_after=3), None, RETRY_AFTER),
    ("403 bot was kicked", lambda api: api.kick_bot(GROUP), None, DROP),
    ("403 bot was blocked by the user", lambda api: api.kick_bot(GROUP), None, DROP),
    ("400 chat not found", lambda api: api.forget_chat(GROUP), None, DROP),
    (
        "400 message thread not found",
        lambda api: api.delete_topic(GROUP, TOPIC),
        TOPIC,
        FOLLOW_THREAD,
    ),
    (
        "400 group chat was upgraded to a supergroup chat",
        lambda api: api.fail_next(
            "sendMessage",
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            parameters={"migrate_to_chat_id": -1009},
        ),
        None,
        FOLLOW_CHAT,
    ),
    (
        "400 message is too long (text rejected)",
        lambda api: api.fail_next("sendMessage", 400, "Bad Request: message is too long"),
        None,
        DROP,
    ),
    (
        "500 Internal Server Error",
        lambda api: api.fail_next("sendMessage", 500, "Internal Server Error"),
        None,
        RETRY,
    ),
    (
        "502 Bad Gateway",
        lambda api: api.fail_next("sendMessage", 502, "Bad Gateway"),
        None,
        RETRY,
    ),
    (
        "401 Unauthorized",
        lambda api: api.fail_next("sendMessage", 401, "Unauthorized"),
        None,
        RETRY,
    ),
]


@contextlib.asynccontextmanager
async def _python_telegram_bot_link(api: TelegramStandIn) -> AsyncIterator[Any]:
    app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    async with app.bot:
        yield TelegramLink(app)


@contextlib.asynccontextmanager
async def _aiogram_link(api: TelegramStandIn) -> AsyncIterator[Any]:
    # Telegram's answers again, through aiogram's exceptions: the same outcomes.
    pytest.importorskip("aiogram")
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from restart_guard.adapters.aiogram._link import Link as AiogramLink
    from restart_guard.adapters.aiogram._state import DispatcherState

    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    try:
        yield AiogramLink(Dispatcher(), bot, DispatcherState(Settings(), Dispatcher))
    finally:
        await bot.session.close()


@pytest.mark.parametrize(
    "link_to",
    [
        pytest.param(_python_telegram_bot_link, id="python-telegram-bot"),
        pytest.param(_aiogram_link, id="aiogram"),
    ],
)
@pytest.mark.parametrize(
    ("fault", "thread", "outcome"),
    [pytest.param(f, t, o, id=name) for name, f, t, o in TELEGRAM],
)
async def test_telegram(
    link_to: Callable[[TelegramStandIn], contextlib.AbstractAsyncContextManager[Any]],
    fault: Callable[[TelegramStandIn], Any],
    thread: int | None,
    outcome: Outcome,
) -> None:
    async with TelegramStandIn() as api:
        fault(api)
        where = Conversation("telegram", str(GROUP), None if thread is None else str(thread))
        error: BaseException | None = None
        async with link_to(api) as link:
            try:
                await link.send_notice(_notice(where, "n"))
            except Exception as exc:
                error = exc
        assert _outcome_of(error) == outcome
        if isinstance(error, ConversationMoved):
            assert error.new_chat == "-1009"
        if isinstance(error, RateLimited):
            assert error.retry_after == 3.0


# ------------------------------------------------------------------ Discord
def _discord_faults(api: DiscordStandIn) -> list[tuple[str, Callable[[], Any], bool, Outcome]]:
    channel, thread, fail = api.channel_id, api.thread_id, api.fail_channel
    return [
        # discord.py waits out a 429 itself unless it is longer than max_ratelimit_timeout.
        (
            "429 longer than max_ratelimit_timeout",
            lambda: api.rate_limit(channel, 60.0),
            False,
            RETRY_AFTER,
        ),
        ("403 Missing Access", lambda: fail(channel, 403, 50001, "Missing Access"), False, DROP),
        (
            "403 Missing Access in a thread",
            lambda: fail(thread, 403, 50001, "Missing Access"),
            True,
            DROP,
        ),
        (
            "403 Cannot send messages to this user",
            lambda: fail(channel, 403, 50007, "Cannot DM"),
            False,
            DROP,
        ),
        ("404 Unknown Channel", lambda: fail(channel, 404, 10003, "Unknown Channel"), False, DROP),
        (
            "404 Unknown Channel: a deleted thread",
            lambda: fail(thread, 404, 10003, "Unknown"),
            True,
            FOLLOW_THREAD,
        ),
        (
            "400 thread is archived",
            lambda: fail(thread, 400, 50083, "Thread is archived"),
            True,
            FOLLOW_THREAD,
        ),
        (
            "403 thread is locked",
            lambda: fail(thread, 403, 160005, "Thread is locked"),
            True,
            FOLLOW_THREAD,
        ),
        ("503 Service Unavailable", lambda: api.fail_next(503, channel_id=channel), False, RETRY),
        (
            "401 Unauthorized",
            lambda: api.fail_next(401, 0, "401: Unauthorized", channel_id=channel),
            False,
            RETRY,
        ),
    ]


DISCORD_CASES = [
    "429 longer than max_ratelimit_timeout",
    "403 Missing Access",
    "403 Missing Access in a thread",
    "403 Cannot send messages to this user",
    "404 Unknown Channel",
    "404 Unknown Channel: a deleted thread",
    "400 thread is archived",
    "403 thread is locked",
    "503 Service Unavailable",
    "401 Unauthorized",
]


@pytest.mark.parametrize("case", DISCORD_CASES)
async def test_discord(case: str) -> None:
    async with DiscordStandIn() as api:
        [(_, fault, in_thread, outcome)] = [c for c in _discord_faults(api) if c[0] == case]
        fault()
        with point_discord_at(api):
            client = discord.Client(intents=discord.Intents.default(), max_ratelimit_timeout=30.0)
            await client.login("any-token")
            try:
                link = DiscordLink(client)
                guild = str(api.guild_id)
                where = (
                    Conversation("discord", str(api.channel_id), str(api.thread_id), guild)
                    if in_thread
                    else Conversation("discord", str(api.channel_id), None, guild)
                )
                error: BaseException | None = None
                try:
                    await link.send_notice(_notice(where, "n"))
                except Exception as exc:
                    error = exc
            finally:
                await client.close()
        assert _outcome_of(error) == outcome


async def test_discord_notice_carries_the_nonce_and_a_repeat_makes_no_second_message() -> None:
    async with DiscordStandIn() as api:
        with point_discord_at(api):
            client = discord.Client(intents=discord.Intents.default())
            await client.login("any-token")
            try:
                link = DiscordLink(client)
                where = Conversation("discord", str(api.channel_id), None, str(api.guild_id))
                await link.send_notice(_notice(where, "abc123"))
                await link.send_notice(_notice(where, "abc123"))  # re-sent after a kill
                await link.send_notice(_notice(where, "other"))  # another notice
            finally:
                await client.close()
        assert [m.params.get("nonce") for m in api.sent] == ["abc123", "other"]
        assert api.sent[0].params.get("enforce_nonce") is True


# ------------------------------------------------------------------ Slack
SLACK: list[tuple[str, Callable[[SlackStandIn], Any], Outcome]] = [
    ("429 ratelimited", lambda api: api.rate_limit("C0X", retry_after=4), RETRY_AFTER),
    *[
        (e, lambda api, e=e: api.fail_channel("C0X", e), DROP)
        for e in (
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "account_inactive",
            "token_revoked",
        )
    ],
    *[
        (e, lambda api, e=e: api.fail_next(e, channel="C0X"), FOLLOW_THREAD)
        for e in ("thread_not_found", "invalid_thread_ts")
    ],
    *[
        (e, lambda api, e=e: api.fail_next(e, channel="C0X"), RETRY)
        for e in ("internal_error", "fatal_error", "service_unavailable", "invalid_auth")
    ],
]


@pytest.mark.parametrize(("fault", "outcome"), [pytest.param(f, o, id=n) for n, f, o in SLACK])
def test_slack(fault: Callable[[SlackStandIn], Any], outcome: Outcome) -> None:
    with SlackStandIn.running() as api:
        fault(api)
        client = WebClient(token=api.bot_token, base_url=api.api_url)
        with pytest.raises(SlackApiError) as info:
            client.chat_postMessage(channel="C0X", thread_ts="17.1", text="resumed")
        mapped = slack_delivery_error(info.value)
        assert _outcome_of(mapped) == outcome
