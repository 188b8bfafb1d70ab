"""python-telegram-bot (21, 22) adapter.

Usage — the only change to a bot is the import and the decorator::

    import restart_guard
    from telegram.ext import Application, ApplicationBuilder

    @restart_guard.protect(marker_dir="/var/lib/mybot/restart-guard", drain_timeout=20)
    def build_app() -> Application:
        app = ApplicationBuilder().token(TOKEN).build()
        app.add_handler(...)
        return app

    build_app().run_polling()

How it hooks in (``Application`` uses ``__slots__``, so instance methods
cannot be patched): the application's class is swapped for a subclass made
for it that overrides public methods only —

- ``initialize()``: open the store, claim markers of a dead process, post the
  notices (before any update is fetched), queue replays;
- ``update_queue`` (same object, tracking subclass): an update is *in flight*
  from the moment the updater fetches it, because python-telegram-bot
  confirms fetched updates to Telegram when it stops;
- ``process_update()`` and ``create_task()``: a conversation stays marked
  until its update and every ``block=False`` task it started have finished —
  including tasks started during the drain, which python-telegram-bot itself
  no longer awaits;
- ``stop()``: every conversation in flight is durably marked in one batch,
  *then* the framework's drain runs, bounded by ``drain_timeout``.

``run_polling``/``run_webhook`` turn SIGTERM, SIGINT and ``stop_running()``
into ``stop()``, so all three are covered. The user's ``post_init``,
``post_stop`` and ``post_shutdown`` are untouched.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from dataclasses import dataclass, field
from typing import Any

from restart_guard import Conversation, Guard, Marker, Resumer, Run, Settings, make_store
from restart_guard._systemd import notify_ready
from restart_guard.errors import (
    AdapterNotAvailable,
    ConversationGone,
    ConversationMoved,
    RateLimited,
    ThreadGone,
)

try:
    from telegram import Update
    from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter
    from telegram.ext import Application
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(
        "restart-guard's telegram adapter needs python-telegram-bot: "
        'pip install "restart-guard[telegram]"'
    ) from exc

__all__ = ["PLATFORM", "conversation_of", "install", "uninstall"]

PLATFORM = "telegram"
log = logging.getLogger("restart_guard")

#: Telegram allows about 30 messages per second per bot; stay under it.
NOTICES_PER_SECOND = 20.0
#: ``initialize()`` waits this long for notices before polling starts; the
#: rest go out in the background at the platform's rate.
STARTUP_NOTICE_WAIT = 5.0
_THREAD_GONE = ("thread not found", "topic_deleted", "topic_closed", "topic not found")
_CUT_OFF = (asyncio.CancelledError, GeneratorExit)


def conversation_of(update: object) -> Conversation | None:
    """Where a reply to ``update`` belongs: chat, forum topic, business connection.

    ``message_thread_id`` counts only when ``is_topic_message`` is true:
    otherwise it is a reply chain's root, not a topic. Updates without a
    chat (inline queries, poll answers) are not tracked.
    """
    if not isinstance(update, Update):
        return None
    chat = update.effective_chat
    if chat is None:
        return None
    message = update.effective_message
    thread = None
    business = None
    if message is not None:
        if getattr(message, "is_topic_message", False) and message.message_thread_id:
            thread = str(message.message_thread_id)
        business = getattr(message, "business_connection_id", None)
    return Conversation(PLATFORM, str(chat.id), thread, business)


@dataclass
class _State:
    """Per-application state; lives on the application's own subclass (slots forbid attrs)."""

    settings: Settings
    original_class: type
    original_queue_class: type
    guard: Guard | None = None
    resumer: Resumer | None = None
    queued: dict[int, tuple[Update, Run]] = field(default_factory=dict)
    # update_ids re-run by replay: Telegram redelivers an update the killed
    # process never confirmed, and the turn must not run twice.
    replayed: set[int] = field(default_factory=set)
    replaying: bool = False


def _state(obj: Any) -> _State:
    state: _State = type(obj)._restart_guard
    return state


class _TrackingQueue(asyncio.Queue):  # type: ignore[type-arg]
    """``update_queue`` that marks an update in flight the moment it is fetched."""

    _restart_guard: _State

    def put_nowait(self, item: Any) -> None:
        state = _state(self)
        guard = state.guard
        if isinstance(item, Update) and not state.replaying and item.update_id in state.replayed:
            log.info(
                "restart-guard: update %d was redelivered by Telegram and already replayed; "
                "skipped",
                item.update_id,
            )
            return
        if guard is not None and isinstance(item, Update):
            conversation = conversation_of(item)
            if conversation is not None:
                payload = item.to_dict() if state.settings.replay else None
                state.queued[id(item)] = (item, guard.begin(conversation, payload))
        super().put_nowait(item)


class _GuardedApplication(Application):  # type: ignore[type-arg]
    """Overrides mixed into the application's class (see the module docstring)."""

    __slots__ = ()
    _restart_guard: _State

    async def initialize(self) -> None:
        await super().initialize()
        state = _state(self)
        if state.guard is not None:  # initialize() twice without shutdown()
            return
        bot_id = self.bot.token.split(":", 1)[0]
        state.guard = Guard(PLATFORM, make_store(state.settings, PLATFORM, bot_id), state.settings)
        claimed = state.guard.start()
        state.resumer = Resumer(state.guard, _Link(self))
        if state.resumer.start(claimed) is not None and not await state.resumer.wait(
            STARTUP_NOTICE_WAIT
        ):
            log.info("restart-guard: notices continue in the background while the bot runs")
        notify_ready()  # systemd (Type=notify): start-up recovery is done

    async def process_update(self, update: object) -> None:
        state = _state(self)
        guard = state.guard
        queued = state.queued.pop(id(update), None)
        run = queued[1] if queued is not None and queued[0] is update else None
        if run is None and guard is not None:
            conversation = conversation_of(update)
            if conversation is not None:
                replay = state.settings.replay and isinstance(update, Update)
                payload = update.to_dict() if replay else None  # type: ignore[attr-defined]
                run = guard.begin(conversation, payload)
        if run is None or guard is None:
            await super().process_update(update)
            return
        completed = True
        try:
            await super().process_update(update)
        except _CUT_OFF:
            completed = not guard.stopping
            raise
        finally:
            guard.end(run, completed=completed)

    def create_task(
        self, coroutine: Any, update: object | None = None, *, name: str | None = None
    ) -> asyncio.Task[Any]:
        guard = _state(self).guard
        conversation = conversation_of(update) if guard is not None else None
        if guard is None or conversation is None:
            return super().create_task(coroutine, update=update, name=name)
        # Begin now, not when the task first runs: the update's own run may end first.
        # The task carries the update too, so a replay can re-run it after its run ended.
        state = _state(self)
        replayable = state.settings.replay and isinstance(update, Update)
        run = guard.begin(conversation, update.to_dict() if replayable else None)  # type: ignore[union-attr]
        return super().create_task(_tracked(guard, run, coroutine), update=update, name=name)

    async def stop(self) -> None:
        state = _state(self)
        guard = state.guard
        if guard is None:
            await super().stop()
            return
        guard.pre_mark()  # durable before the drain can be cut short by SIGKILL
        if state.resumer is not None:
            await state.resumer.cancel()
        drain = asyncio.ensure_future(self._restart_guard_drain(guard))
        done, _ = await asyncio.wait({drain}, timeout=state.settings.drain_timeout)
        if not done:
            guard.seal()
        self._restart_guard_close()
        if done:
            drain.result()  # the framework's own stop() errors surface as they would unguarded

    async def _restart_guard_drain(self, guard: Guard) -> None:
        await super().stop()
        # Tasks created during the drain are not awaited by python-telegram-bot.
        await guard.wait_idle(None)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            self._restart_guard_close()

    def _restart_guard_close(self) -> None:
        state = _state(self)
        if state.guard is not None:
            state.guard.close()
            state.guard = None
            state.resumer = None
            state.queued.clear()
            state.replayed.clear()


async def _tracked(guard: Guard, run: Run, coroutine: Any) -> Any:
    completed = True
    try:
        return await coroutine
    except _CUT_OFF:
        completed = not guard.stopping
        raise
    finally:
        guard.end(run, completed=completed)


class _Link:
    """Posts notices and replays updates through the application's own bot."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, app: Application) -> None:  # type: ignore[type-arg]
        self.app = app

    async def send_notice(self, conversation: Conversation, text: str, *, nonce: str) -> None:
        # Telegram has no idempotency key for sendMessage: ``nonce`` is not used.
        kwargs: dict[str, Any] = {}
        if conversation.thread is not None:
            kwargs["message_thread_id"] = int(conversation.thread)
        if conversation.scope is not None:
            kwargs["business_connection_id"] = conversation.scope
        try:
            await self.app.bot.send_message(chat_id=int(conversation.chat), text=text, **kwargs)
        except RetryAfter as exc:
            delay = exc.retry_after
            seconds = delay.total_seconds() if isinstance(delay, dtm.timedelta) else float(delay)
            raise RateLimited(seconds, str(exc)) from exc
        except ChatMigrated as exc:  # a group upgraded to a supergroup: a new chat id
            raise ConversationMoved(str(exc.new_chat_id), exc.message) from exc
        except Forbidden as exc:
            raise ConversationGone(f"forbidden: {exc.message}") from exc
        except BadRequest as exc:
            if any(sign in exc.message.lower() for sign in _THREAD_GONE):
                raise ThreadGone(exc.message) from exc
            # Chat not found, user deactivated, text rejected: retrying cannot help.
            raise ConversationGone(f"rejected by Telegram: {exc.message}") from exc

    async def replay(self, marker: Marker) -> None:
        state = _state(self.app)
        for raw in marker.payload or ():
            update = Update.de_json(raw, self.app.bot)
            if update is None:
                continue
            state.replayed.add(update.update_id)
            state.replaying = True
            try:
                self.app.update_queue.put_nowait(update)  # unbounded queue: never full
            finally:
                state.replaying = False


def install(app: Application, settings: Settings) -> Application:  # type: ignore[type-arg]
    """Guard ``app`` (called by :func:`restart_guard.protect`). Idempotent."""
    if isinstance(app, _GuardedApplication):
        log.debug("restart-guard: %r is already protected", app)
        return app
    if app.running:
        raise RuntimeError("restart_guard.protect must be applied before the application starts")
    original = type(app)
    queue = app.update_queue
    state = _State(settings, original, type(queue))
    namespace = {"__slots__": (), "_restart_guard": state, "__module__": original.__module__}
    app.__class__ = type(original.__name__, (_GuardedApplication, original), namespace)
    queue.__class__ = type(
        type(queue).__name__, (_TrackingQueue, type(queue)), {"_restart_guard": state}
    )
    return app


def uninstall(app: Application) -> Application:  # type: ignore[type-arg]
    """Remove the guard (called by :func:`restart_guard.unprotect`). Idempotent."""
    if not isinstance(app, _GuardedApplication):
        return app
    if app.running:
        raise RuntimeError("restart_guard.unprotect needs a stopped application")
    state = _state(app)
    app.__class__ = state.original_class
    app.update_queue.__class__ = state.original_queue_class
    return app
