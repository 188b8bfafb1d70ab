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
- the bot's ``get_updates()`` (the updater's bot, class swapped the same
  way): the ``offset`` that confirms fetched updates to Telegram is sent
  only once their markers are durable, so a kill at any moment leaves an
  update either marked or still at Telegram, which delivers it again;
- ``await update_queue.put()`` from a webhook (``run_webhook``'s handler, or
  your own web server's): returns once the update's marker is durable, so
  the HTTP answer that makes Telegram forget the update comes after it;
- ``process_update()`` and ``create_task()``: a conversation stays marked
  until its update and every ``block=False`` task it started have finished —
  including tasks started during the drain, which python-telegram-bot itself
  no longer awaits;
- ``stop()``: every conversation in flight is durably marked in one batch,
  *then* the framework's drain runs, bounded by ``drain_timeout``; a drain
  that does not finish cancels the handler runs still going (their
  conversations stay marked) so that the loop closes with nothing pending;
- ``shutdown()`` without a ``stop()`` (a signal during ``initialize()``):
  the notice in flight is let finish and recorded before the bot's HTTP
  client closes.

Redelivery: Telegram hands an update the killed process never confirmed to
the next one. Each marker keeps its turns' ``update_id`` s
(:attr:`restart_guard.Origin.delivery`); an update the queue receives is
checked with ``Lifecycle.redelivered`` — with replay on it is skipped (the
replay re-runs that turn), without replay it runs and stands in for the
notice. Before the notices, ``getUpdates`` without an offset (which
confirms nothing) tells the resume step which updates are still pending
(:meth:`_Link.pending_deliveries`); see :mod:`restart_guard._redelivery`.

``run_polling``/``run_webhook`` turn SIGTERM, SIGINT and ``stop_running()``
into ``stop()``, so all three are covered: their signal handler (which
raises ``SystemExit``) is extended so that the first signal durably marks
what is in flight at once and a second one during the drain means "stop
now" — the drain ends, unfinished turns stay marked, the store is closed.
The user's ``post_init``, ``post_stop`` and ``post_shutdown`` are untouched.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dtm
import html
import logging
from dataclasses import dataclass, field
from typing import Any

from restart_guard import Conversation, Marker, Notice, Origin, Run, Settings
from restart_guard._adapter import Adapter
from restart_guard._ask import Choice, Press, press_data, press_from
from restart_guard._lifecycle import CUT_OFF, Lifecycle, Stage
from restart_guard._policy import running
from restart_guard._registry import TELEGRAM
from restart_guard.errors import (
    AdapterNotAvailable,
    ConversationGone,
    ConversationMoved,
    RateLimited,
    ThreadGone,
)

try:
    from telegram import (
        Bot,
        InlineKeyboardButton,
        InlineKeyboardMarkup,
        Message,
        ReplyParameters,
        Update,
    )
    from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
    from telegram.ext import Application
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(TELEGRAM.missing(exc)) from exc

__all__ = ["ADAPTER", "PLATFORM", "TelegramAdapter", "conversation_of", "origin_of"]

PLATFORM = TELEGRAM.platform
log = logging.getLogger("restart_guard")

#: Telegram allows about 30 messages per second per bot; stay under it.
NOTICES_PER_SECOND = 20.0
_THREAD_GONE = ("thread not found", "topic_deleted", "topic_closed", "topic not found")
#: What a mention of an asker shows in a group (names are never stored: ids only);
#: Telegram links it to the user, who is notified.
MENTION_LABEL = "👤"


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


def origin_of(update: object) -> Origin | None:
    """The ids a notice needs to answer ``update``: its update, message and sender.

    A callback query (a button press) is an interaction: its message is the
    bot's own, so the notice mentions the user instead of replying to it.
    """
    if not isinstance(update, Update):
        return None
    user = update.effective_user
    user_id = None if user is None else str(user.id)
    if update.callback_query is not None:
        return Origin(str(update.update_id), None, user_id, interaction=True)
    message = update.effective_message
    message_id = None if message is None else str(message.message_id)
    return Origin(str(update.update_id), message_id, user_id)


def press_of(update: object) -> Press | None:
    """The restart-guard button press in ``update``, or None (any other update)."""
    if not isinstance(update, Update) or update.callback_query is None:
        return None
    query = update.callback_query
    return press_from(query.data, query.from_user.id, query.id)


@dataclass
class BotState:
    """Per-application state; lives on the application's own subclass (slots forbid attrs)."""

    lifecycle: Lifecycle
    original_class: type
    original_queue_class: type
    # The updater's bot (whose get_updates confirms updates) and its own class.
    fetching_bot: Any = None
    original_bot_class: type | None = None
    queued: dict[int, tuple[Update, Run]] = field(default_factory=dict)
    # Tasks running a guarded handler run: cancelled when the drain does not finish
    # (run_polling closes its loop without cancelling what is left).
    running: dict[asyncio.Future[Any], int] = field(default_factory=dict)
    # An update fed back by our own replay: not a redelivery by Telegram.
    replaying: bool = False

    def enter(self) -> asyncio.Future[Any] | None:
        """The current task runs a handler run (until :meth:`leave`)."""
        task = asyncio.current_task()
        if task is not None:
            self.running[task] = self.running.get(task, 0) + 1
        return task

    def leave(self, task: asyncio.Future[Any] | None) -> None:
        if task is not None:
            left = self.running.pop(task, 1) - 1
            if left:
                self.running[task] = left

    def payload(self, update: object) -> Any:
        """What a marker keeps to replay ``update`` (only with replay on)."""
        if self.lifecycle.settings.replay and isinstance(update, Update):
            return update.to_dict()
        return None


def _state(obj: Any) -> BotState:
    state: BotState = type(obj)._restart_guard
    return state


#: Set in a task once it called getUpdates: the updates it puts into the queue are
#: confirmed by its own next getUpdates, which waits for their markers itself.
_POLLING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "restart_guard_telegram_polling", default=False
)


class _TrackingQueue(asyncio.Queue):  # type: ignore[type-arg]
    """``update_queue`` that marks an update in flight the moment it is fetched."""

    _restart_guard: BotState

    async def put(self, item: Any) -> None:
        await super().put(item)  # unbounded: put_nowait() below, which begins the run
        if not _POLLING.get():
            # A webhook answers Telegram when this returns: only once the marker is durable.
            await _state(self).lifecycle.durable()

    def put_nowait(self, item: Any) -> None:
        state = _state(self)
        if isinstance(item, Update):
            lifecycle = state.lifecycle
            # Polling and webhook both pass here. Replay on: a claimed turn Telegram
            # delivers again is skipped (the replay re-runs it); off, it runs.
            if not state.replaying and lifecycle.redelivered(str(item.update_id)):
                return
            conversation = None if press_of(item) else conversation_of(item)
            if conversation is not None:
                run = lifecycle.begin(conversation, state.payload(item), origin_of(item))
                if run is not None:
                    state.queued[id(item)] = (item, run)
        super().put_nowait(item)


class _GuardedApplication(Application):  # type: ignore[type-arg]
    """Overrides mixed into the application's class (see the module docstring)."""

    __slots__ = ()
    _restart_guard: BotState

    async def initialize(self) -> None:
        await super().initialize()
        # Notices go out before any update is fetched; initialize() twice is a no-op.
        bot_id = self.bot.token.split(":", 1)[0]
        await _state(self).lifecycle.start(bot_id, ADAPTER.link_for(self))

    async def process_update(self, update: object) -> None:
        state = _state(self)
        press = press_of(update)
        if press is not None:  # a button of a replay="ask" question: never the bot's handlers
            await state.lifecycle.press(press)
            return
        queued = state.queued.pop(id(update), None)
        run = queued[1] if queued is not None and queued[0] is update else None
        if run is None:
            conversation = conversation_of(update)
            if conversation is not None:
                run = state.lifecycle.begin(conversation, state.payload(update), origin_of(update))
        if run is None:
            await super().process_update(update)
            return
        await _tracked(state, run, super().process_update(update))

    def create_task(
        self, coroutine: Any, update: object | None = None, *, name: str | None = None
    ) -> asyncio.Task[Any]:
        state = _state(self)
        conversation = conversation_of(update)
        # Begin now, not when the task first runs: the update's own run may end first.
        # The task carries the update too, so a replay can re-run it after its run ended.
        run = None
        if conversation is not None:
            run = state.lifecycle.begin(conversation, state.payload(update), origin_of(update))
        if run is None:
            return super().create_task(coroutine, update=update, name=name)
        return super().create_task(_tracked(state, run, coroutine), update=update, name=name)

    async def stop(self) -> None:
        # Durable before the drain, which SIGKILL may cut short; drain bounded by drain_timeout.
        state = _state(self)
        try:
            await state.lifecycle.stop(super().stop, handler_tasks=lambda: list(state.running))
        finally:
            self._restart_guard_forget()

    async def shutdown(self) -> None:
        if not self.running:
            # initialize() then shutdown() without a stop — run_polling after a signal
            # during initialize(): the notice in flight finishes and is recorded
            # before super().shutdown() closes the bot's HTTP client under it.
            await _state(self).lifecycle.stop()
        try:
            await super().shutdown()
        finally:
            self._restart_guard_forget()

    def _raise_system_exit(self) -> None:  # type: ignore[override]
        # run_polling/run_webhook's handler of SIGTERM, SIGINT and SIGABRT (a loop
        # callback). First signal: durable at once, then PTB's own way out
        # (SystemExit → stop()). During the drain: stop now.
        lifecycle = _state(self).lifecycle
        if lifecycle.stage is Stage.STOPPING:
            if not lifecycle.stop_now("a second stop signal"):
                log.info("restart-guard: stop signal ignored: already stopping")
            return
        lifecycle.pre_mark()
        raise SystemExit

    def _restart_guard_forget(self) -> None:
        state = _state(self)
        state.queued.clear()
        state.running.clear()


class _ConfirmingBot(Bot):
    """The updater's bot: ``getUpdates`` confirms the last batch only once it is marked."""

    __slots__ = ()
    _restart_guard: BotState

    async def get_updates(self, *args: Any, **kwargs: Any) -> Any:
        # The offset of this call confirms every update fetched before: their markers
        # (begun as they were queued) must be durable first. One fsync per batch of
        # up to 100 updates, on the writer thread; nothing when nothing was fetched.
        _POLLING.set(True)
        await _state(self).lifecycle.durable()
        return await super().get_updates(*args, **kwargs)


async def _tracked(state: BotState, run: Run, coroutine: Any) -> Any:
    """Await ``coroutine`` as ``run``'s handler work: counted for the drain, ended after."""
    cut_off = False
    task = state.enter()
    try:
        with running(run):  # a @no_replay callback flags this run's turn
            return await coroutine
    except CUT_OFF:
        cut_off = True
        raise
    finally:
        state.leave(task)
        Lifecycle.end(run, cut_off=cut_off)


class _Link:
    """Posts notices and replays updates through the application's own bot."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, app: Application) -> None:  # type: ignore[type-arg]
        self.app = app

    async def send_notice(self, notice: Notice) -> None:
        """Reply to the interrupted message; in a group, mention the askers (HTML)."""
        # Telegram has no idempotency key for sendMessage: ``nonce`` is not used.
        await self._send(notice)

    async def send_question(self, notice: Notice, token: str) -> str:
        buttons = [
            InlineKeyboardButton(choice.label, callback_data=press_data(choice, token))
            for choice in Choice
        ]
        message = await self._send(notice, InlineKeyboardMarkup([buttons]))
        return str(message.message_id)

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        if press is not None:  # first: the presser's client stops its spinner
            await self._answer(press)
        try:
            # Without reply_markup, Telegram removes the inline keyboard.
            await self.app.bot.edit_message_text(
                text, chat_id=int(conversation.chat), message_id=int(question)
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise

    async def refuse_press(self, press: Press, text: str) -> None:
        await self._answer(press, text)

    async def _answer(self, press: Press, text: str | None = None) -> None:
        try:
            await self.app.bot.answer_callback_query(
                str(press.handle), text=text, show_alert=text is not None
            )
        except BadRequest as exc:  # answered already, or older than Telegram keeps them
            log.info("restart-guard: could not answer a button press: %s", exc.message)

    async def _send(self, notice: Notice, markup: InlineKeyboardMarkup | None = None) -> Message:
        conversation, text = notice.conversation, notice.text
        kwargs: dict[str, Any] = {}
        if notice.reply_to is not None and notice.reply_to.isdigit():
            # A deleted message must not keep the notice from going out.
            kwargs["reply_parameters"] = ReplyParameters(
                int(notice.reply_to), allow_sending_without_reply=True
            )
        if not _is_private(conversation) and notice.askers:
            text = notice.addressed(_mention, html.escape(text, quote=False))
            kwargs["parse_mode"] = "HTML"
        if conversation.thread is not None:
            kwargs["message_thread_id"] = int(conversation.thread)
        if conversation.scope is not None:
            kwargs["business_connection_id"] = conversation.scope
        if markup is not None:
            kwargs["reply_markup"] = markup
        try:
            message: Message = await self.app.bot.send_message(
                chat_id=int(conversation.chat), text=text, **kwargs
            )
            return message
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

    async def pending_deliveries(self) -> set[str] | None:
        """``update_id`` s Telegram still holds for this bot (None: cannot tell).

        ``getUpdates`` without an offset confirms nothing: these updates go
        to the first poll after start-up all the same. With a webhook set
        Telegram refuses the call (409): None, every notice goes out.
        """
        polling = _POLLING.get()
        try:
            updates = await self.app.bot.get_updates(timeout=0, limit=100)
        except TelegramError as exc:
            log.info("restart-guard: cannot look at the pending updates: %s", exc)
            return None
        finally:
            # A look, not a poll: _ConfirmingBot.get_updates must not leave this task
            # (and the replays it starts) counted as the polling one.
            _POLLING.set(polling)
        return {str(update.update_id) for update in updates}

    async def replay(self, marker: Marker) -> None:
        state = _state(self.app)
        for raw in marker.payload or ():
            update = Update.de_json(raw, self.app.bot)
            if update is None:
                continue
            state.replaying = True
            try:
                self.app.update_queue.put_nowait(update)  # unbounded queue: never full
            finally:
                state.replaying = False


def _is_private(conversation: Conversation) -> bool:
    # Users (private chats) have positive ids; groups, supergroups and channels negative.
    return not conversation.chat.startswith("-")


def _mention(user: str) -> str:
    return f'<a href="tg://user?id={html.escape(user)}">{MENTION_LABEL}</a>'


class TelegramAdapter(Adapter[Application]):  # type: ignore[type-arg]
    """python-telegram-bot's ``Application``: a subclass swapped in, public methods only."""

    spec = TELEGRAM

    def is_installed(self, bot: object) -> bool:
        return isinstance(bot, _GuardedApplication)

    def _install(self, bot: Application, settings: Settings) -> Application:  # type: ignore[type-arg]
        if bot.running:
            raise RuntimeError(
                "restart_guard.protect must be applied before the application starts"
            )
        original = type(bot)
        queue = bot.update_queue
        state = BotState(Lifecycle(PLATFORM, settings), original, type(queue))
        namespace = {"__slots__": (), "_restart_guard": state, "__module__": original.__module__}
        bot.__class__ = type(original.__name__, (_GuardedApplication, original), namespace)
        queue.__class__ = type(
            type(queue).__name__, (_TrackingQueue, type(queue)), {"_restart_guard": state}
        )
        fetching = bot.updater.bot if bot.updater is not None else None
        if isinstance(fetching, Bot) and not isinstance(fetching, _ConfirmingBot):
            state.fetching_bot, state.original_bot_class = fetching, type(fetching)
            fetching.__class__ = type(
                type(fetching).__name__,
                (_ConfirmingBot, type(fetching)),
                {"__slots__": (), "_restart_guard": state, "__module__": type(fetching).__module__},
            )
        elif fetching is not None and not isinstance(fetching, _ConfirmingBot):
            log.warning(
                "restart-guard: the updater's bot is a %s, not a telegram.Bot: updates are "
                "confirmed to Telegram without waiting for their markers (a kill in the "
                "first milliseconds of a handler may lose its conversation)",
                type(fetching).__qualname__,
            )
        return bot

    def _uninstall(self, bot: Application) -> Application:  # type: ignore[type-arg]
        if bot.running:
            raise RuntimeError("restart_guard.unprotect needs a stopped application")
        state = _state(bot)
        bot.__class__ = state.original_class
        bot.update_queue.__class__ = state.original_queue_class
        if state.fetching_bot is not None and state.original_bot_class is not None:
            state.fetching_bot.__class__ = state.original_bot_class
        return bot

    def conversation_of(self, event: object) -> Conversation | None:
        return conversation_of(event)

    def link_for(self, bot: Application) -> _Link:  # type: ignore[type-arg]
        return _Link(bot)


#: The adapter :func:`restart_guard.protect` uses for python-telegram-bot.
ADAPTER = TelegramAdapter()
