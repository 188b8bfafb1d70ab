"""In-process: keys, several bots, the user's own startup/shutdown handlers, install/uninstall.

A real aiogram Dispatcher against the loopback stand-in; markers are read
back from the real marker directories.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message, Update
from restart_guard.adapters import aiogram as adapter

import restart_guard
from restart_guard.testing.markers import markers_in, wait_for_markers
from restart_guard.testing.telegram import TelegramStandIn

CHAT = -1001000000001
USER = {"id": 1, "is_bot": False, "first_name": "U"}
FORUM_CHAT = {"id": CHAT, "type": "supergroup", "title": "F", "is_forum": True}


def _message(**extra: Any) -> dict[str, Any]:
    return {"message_id": 5, "date": 0, "chat": FORUM_CHAT, "from": USER, "text": "x", **extra}


RAW_UPDATES = {
    "topic": {"message": _message(message_thread_id=7, is_topic_message=True)},
    "reply chain, not a topic": {"message": _message(message_thread_id=7)},
    "business": {"business_message": _message(business_connection_id="biz")},
    "callback": {
        "callback_query": {
            "id": "1",
            "from": USER,
            "chat_instance": "c",
            "message": _message(message_thread_id=3, is_topic_message=True),
        }
    },
    "member": {
        "my_chat_member": {
            "chat": FORUM_CHAT,
            "from": USER,
            "date": 0,
            "old_chat_member": {"status": "left", "user": USER},
            "new_chat_member": {"status": "member", "user": USER},
        }
    },
    "inline query": {"inline_query": {"id": "1", "from": USER, "query": "q", "offset": ""}},
}


@pytest.mark.parametrize("kind", sorted(RAW_UPDATES))
def test_keys_are_the_python_telegram_bot_adapters(kind: str) -> None:
    telegram = pytest.importorskip("telegram")
    from restart_guard.adapters import telegram as ptb_adapter

    [field] = RAW_UPDATES[kind]
    if field not in Update.model_fields:
        pytest.skip(f"this aiogram release has no {field} updates")
    raw = {"update_id": 1, **RAW_UPDATES[kind]}
    ours = adapter.conversation_of(Update.model_validate(raw))
    theirs = ptb_adapter.conversation_of(telegram.Update.de_json(raw, None))
    assert ours == theirs
    assert (ours is None) == (kind == "inline query")


@pytest.fixture
async def api() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


def make_bot(api: TelegramStandIn, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    return Bot(token or api.token, session=session)


async def test_several_bots_keep_their_markers_apart_and_user_hooks_run(
    tmp_path: Path,
) -> None:
    async with TelegramStandIn("111:A") as one, TelegramStandIn("222:B") as two:
        seen: list[str] = []
        release = asyncio.Event()
        dp = Dispatcher()

        @dp.startup()
        async def started() -> None:
            seen.append("startup")

        @dp.shutdown()
        async def stopped() -> None:
            seen.append("shutdown")

        @dp.message()
        async def hold(message: Message) -> None:
            await message.answer("working")
            await release.wait()

        restart_guard.protect(marker_dir=tmp_path)(dp)
        bots = [make_bot(one), make_bot(two)]
        polling = asyncio.create_task(dp.start_polling(*bots, handle_signals=False))
        one.inject_message(CHAT, "a", message_thread_id=7)
        two.inject_message(42, "b")
        await one.wait_for_sent_async(lambda m: m.text == "working")
        await two.wait_for_sent_async(lambda m: m.text == "working")
        await asyncio.to_thread(wait_for_markers, tmp_path, lambda m: m.conversation.chat == "42")
        folders = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
        assert len(folders) == 2  # one marker folder per bot
        marked = {(m.conversation.chat, m.conversation.thread) for m in markers_in(tmp_path)}
        assert marked == {(str(CHAT), "7"), ("42", None)}
        release.set()
        await dp.stop_polling()
        await polling
        assert seen == ["startup", "shutdown"]
        assert markers_in(tmp_path) == []


def test_install_uninstall_install_is_idempotent(tmp_path: Path) -> None:
    dp = Dispatcher()
    guarded = restart_guard.protect(marker_dir=tmp_path)(dp)
    assert guarded is dp
    assert restart_guard.protect(marker_dir=tmp_path)(dp) is dp
    assert type(dp) is not Dispatcher
    assert isinstance(dp, Dispatcher)
    restart_guard.unprotect(dp)
    restart_guard.unprotect(dp)
    assert type(dp) is Dispatcher

    @restart_guard.protect(marker_dir=tmp_path)
    def build() -> Dispatcher:
        return Dispatcher()

    assert type(build()) is not Dispatcher
