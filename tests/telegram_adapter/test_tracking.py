"""In-process: which handler runs are tracked, under which key, and for how long.

A real python-telegram-bot Application against the loopback stand-in; the
markers are read back from the real marker directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

import restart_guard
from held_runs import Gate, fdatasync_threads, held_then_released, stored
from restart_guard import Phase
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually_async

CHAT = -1001000000001


@pytest.fixture
async def api() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn() as standin:
        yield standin


Build = Callable[..., Application]  # type: ignore[type-arg]


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "m"


@pytest.fixture
def build(api: TelegramStandIn, markers: Path) -> Build:
    def make(concurrent: bool = False, **options: Any) -> Application:  # type: ignore[type-arg]
        builder = ApplicationBuilder().token(api.token).base_url(api.base_url)
        app = builder.concurrent_updates(concurrent).build()
        return restart_guard.protect(marker_dir=markers, **options)(app)

    return make


@contextlib.asynccontextmanager
async def gated_app(
    build: Build, *, every_update: bool = False, block: bool = True, **options: Any
) -> AsyncIterator[tuple[Application, Gate]]:  # type: ignore[type-arg]
    """A guarded app, running, with a fresh gate as its handler of text messages (or of
    ``every_update``); ``block`` as python-telegram-bot takes it. On the way out the gate
    opens and the app stops, whatever the test did."""
    app = build(**options)
    gate = Gate()
    if every_update:
        app.add_handler(TypeHandler(Update, gate))
    else:
        app.add_handler(MessageHandler(filters.TEXT, gate, block=block))
    await running(app)
    try:
        yield app, gate
    finally:
        gate.release.set()
        await stopped(app)


async def running(app: Application) -> None:  # type: ignore[type-arg]
    await app.initialize()
    await app.updater.start_polling(poll_interval=0)  # type: ignore[union-attr]
    await app.start()


async def stopped(app: Application) -> None:  # type: ignore[type-arg]
    """Stop what still runs and shut down (a test may have stopped part of it already)."""
    if app.updater.running:  # type: ignore[union-attr]
        await app.updater.stop()  # type: ignore[union-attr]
    if app.running:
        await app.stop()
    await app.shutdown()


async def test_handler_added_after_protect_is_tracked_until_it_returns(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    async with gated_app(build) as (_, gate):  # after protect()
        api.inject_message(CHAT, "hi", message_thread_id=7)
        await held_then_released(gate, markers, (str(CHAT), "7", None))


async def test_write_ahead_never_fsyncs_on_the_handler_thread(
    api: TelegramStandIn, build: Build, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncing_threads = fdatasync_threads(monkeypatch)
    async with gated_app(build) as (_, gate):
        api.inject_message(CHAT, "hi")
        await gate.entered.wait()
        # Durable while the handler is still blocked: nobody but the writer thread wrote it.
        await eventually_async(lambda: (str(CHAT), None, None) in stored(markers))
        assert syncing_threads
        assert threading.get_ident() not in syncing_threads


async def test_non_blocking_handler_stays_marked_until_its_task_ends(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    async with gated_app(build, block=False) as (_, gate):
        api.inject_message(CHAT, "hi")
        # process_update() has long returned; the task still runs.
        await held_then_released(gate, markers, (str(CHAT), None, None))


async def test_concurrent_updates_are_each_tracked(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    async with gated_app(build, concurrent=True) as (_, gate):
        api.inject_message(CHAT, "one")
        api.inject_message(CHAT - 1, "two")
        api.inject_message(42, "three")
        await eventually_async(lambda: gate.count == 3)
        await eventually_async(lambda: len(stored(markers)) == 3)
        gate.release.set()
        await eventually_async(lambda: stored(markers) == {})


async def test_conversation_handler_states_are_tracked(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    app = build()
    gate = Gate()
    asking = 1

    async def entry(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        return asking

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        await gate(update, context)
        return ConversationHandler.END

    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("ask", entry)],
            states={asking: [MessageHandler(filters.TEXT, answer, block=False)]},
            fallbacks=[],
        )
    )
    await running(app)
    api.inject_message(CHAT, "/ask")
    api.inject_message(CHAT, "the answer")
    await held_then_released(gate, markers, (str(CHAT), None, None))
    await stopped(app)


@pytest.mark.parametrize(
    ("inject", "expected"),
    [
        ({"message_thread_id": 7}, (str(CHAT), "7", None)),
        # A reply chain in a normal group also carries message_thread_id: not a topic.
        ({"message_thread_id": 7, "is_topic_message": False}, (str(CHAT), None, None)),
        ({"business_connection_id": "bc-1"}, (str(CHAT), None, "bc-1")),
    ],
)
async def test_conversation_key_follows_topic_and_business_connection(
    api: TelegramStandIn,
    build: Build,
    markers: Path,
    inject: dict[str, Any],
    expected: tuple[str, str | None, str | None],
) -> None:
    async with gated_app(build, every_update=True) as (_, gate):
        api.inject_message(CHAT, "hi", **inject)
        await gate.entered.wait()
        await eventually_async(lambda: expected in stored(markers))
        assert len(stored(markers)) == 1


async def test_updates_without_a_chat_are_not_tracked(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    async with gated_app(build, every_update=True) as (app, gate):
        api.inject_update(
            {
                "inline_query": {
                    "id": "1",
                    "from": {"id": 5, "is_bot": False, "first_name": "U"},
                    "query": "q",
                    "offset": "",
                }
            }
        )
        await gate.entered.wait()
        guard = type(app)._restart_guard.lifecycle.guard  # type: ignore[attr-defined]
        assert guard.in_flight == 0  # the handler runs, but there is no chat to resume in
    assert stored(markers) == {}


async def test_stop_pre_marks_everything_before_the_drain(
    api: TelegramStandIn, build: Build, markers: Path
) -> None:
    async with gated_app(build, block=False, drain_timeout=30) as (app, gate):
        for chat in range(1, 6):
            api.inject_message(chat, "hi")
        await eventually_async(lambda: gate.count == 5)
        await app.updater.stop()  # type: ignore[union-attr]
        stopping = asyncio.ensure_future(app.stop())
        # The drain is waiting on the handlers; every conversation is already marked "draining".
        await eventually_async(lambda: set(stored(markers).values()) == {Phase.DRAINING})
        assert len(stored(markers)) == 5
        assert not stopping.done()
        gate.release.set()
        await stopping
    assert stored(markers) == {}


def test_run_polling_keeps_the_users_lifecycle_hooks(tmp_path: Path) -> None:
    calls: list[str] = []

    async def post_init(app: Application) -> None:  # type: ignore[type-arg]
        calls.append("post_init")

    async def post_stop(app: Application) -> None:  # type: ignore[type-arg]
        calls.append("post_stop")

    async def post_shutdown(app: Application) -> None:  # type: ignore[type-arg]
        calls.append("post_shutdown")

    async def quit_after_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("bye")  # type: ignore[union-attr]
        context.application.stop_running()

    with TelegramStandIn.running() as api:

        @restart_guard.protect(marker_dir=tmp_path / "m")
        def build_app() -> Application:  # type: ignore[type-arg]
            app = (
                ApplicationBuilder()
                .token(api.token)
                .base_url(api.base_url)
                .post_init(post_init)
                .post_stop(post_stop)
                .post_shutdown(post_shutdown)
                .build()
            )
            app.add_handler(MessageHandler(filters.TEXT, quit_after_reply))
            return app

        app = build_app()
        api.inject_message(CHAT, "hi")
        # A fresh loop: python-telegram-bot 21 takes the current one, which earlier
        # async tests may have closed.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            app.run_polling(poll_interval=0, stop_signals=None, close_loop=False)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        assert api.sent_to(CHAT)[-1].text == "bye"
    assert calls == ["post_init", "post_stop", "post_shutdown"]
    assert stored(tmp_path / "m") == {}
    assert list((tmp_path / "m").iterdir()) == []
