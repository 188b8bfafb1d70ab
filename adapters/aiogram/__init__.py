"""aiogram 3 adapter.

Usage — the only change to a bot is the import and the decorator::

    import restart_guard
    from aiogram import Bot, Dispatcher

    @restart_guard.protect(marker_dir="/var/lib/mybot/restart-guard", drain_timeout=20)
    def build_dispatcher() -> Dispatcher:
        dp = Dispatcher()
        dp.include_router(router)
        return dp

    asyncio.run(build_dispatcher().start_polling(bot))

``protect`` takes a ``Dispatcher`` (the object, or a function returning one)
before it starts. ``run_polling``/``start_polling`` with one or several bots,
``handle_as_tasks`` either way, ``tasks_concurrency_limit``, and webhooks
through ``aiogram.webhook.aiohttp_server`` (``SimpleRequestHandler`` or
``TokenBasedRequestHandler`` with ``setup_application``) are covered; routers,
filters, middlewares, FSM and your own ``dp.startup``/``dp.shutdown``
handlers keep working.

What happens, in order (the dispatcher's class is swapped for a subclass made
for it, which overrides these methods and nothing else; each bot gets the
core's ``Lifecycle``, which owns the sequence — this package only says where
aiogram's start-up, updates and stop are):

1. **Start-up**, in ``emit_startup`` — after your startup handlers, before
   polling starts: for each bot, the marker store is opened (a folder named
   after the bot's user id, the same as the python-telegram-bot adapter's),
   markers of a dead process are claimed and a notice is posted in each
   interrupted chat, forum topic or business chat; start-up waits for the
   notices for at most 5 s, the rest follow at 20 per second. With
   ``replay=True`` the stored update is fed to the dispatcher again.
2. **Every update** is in flight from the moment polling takes it from a
   ``getUpdates`` answer (``_listen_updates``) until its ``feed_update`` has
   returned — handler, middlewares, error handlers and all. The next
   ``getUpdates``, which confirms the taken updates to Telegram, waits until
   their markers are durable (one fsync per batch, in a worker thread), so a
   kill can never fall between "confirmed" and "marked". Webhook updates are
   tracked from ``feed_update``; with ``setup_application`` the early 200 of
   ``SimpleRequestHandler`` waits for their markers the same way. A
   ``replay="ask"`` button press is answered before any router sees it.
3. **Stop** — SIGTERM/SIGINT (aiogram's own handlers, which the subclass
   extends) or ``await dp.stop_polling()``:

   - every conversation in flight is durably marked in one batch;
   - polling hands aiogram no new update (fetched ones stay unconfirmed, so
     Telegram delivers them again after the restart);
   - running handlers get up to ``drain_timeout`` — tasks of
     ``handle_as_tasks=True``, which aiogram itself never awaits, and the
     handler of ``handle_as_tasks=False``, which aiogram would cancel — then
     the markers are committed (the core ``Lifecycle.stop``, per bot);
   - then aiogram's own stop runs: polling is cancelled, the taken updates are
     confirmed to Telegram with one ``getUpdates(timeout=0)`` (or a finished
     turn would be delivered again), your shutdown handlers called, the
     sessions closed. After a complete drain nothing is left marked; after a
     timed-out one the cut-off conversations are.

   In webhook mode the same drain runs in ``emit_shutdown`` (aiohttp's
   ``on_shutdown``), before your shutdown handlers; ``SimpleRequestHandler``'s
   close of the bot session, which comes first, is made after the drain.

Conversation keys are python-telegram-bot's (chat id, ``message_thread_id``
only when ``is_topic_message``, ``business_connection_id``): a bot moved
between the two frameworks resumes the other's markers.
"""

from __future__ import annotations

from restart_guard import Conversation, Settings
from restart_guard._adapter import Adapter
from restart_guard._registry import AIOGRAM
from restart_guard.errors import AdapterNotAvailable

try:
    from aiogram import Dispatcher
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(AIOGRAM.missing(exc)) from exc

from ._dispatcher import GuardedDispatcher
from ._keys import PLATFORM, conversation_of
from ._link import Link
from ._state import DispatcherState, state_of

__all__ = ["ADAPTER", "PLATFORM", "AiogramAdapter", "conversation_of"]


class AiogramAdapter(Adapter[Dispatcher]):
    """aiogram's ``Dispatcher``: a subclass swapped in, one core ``Lifecycle`` per bot."""

    spec = AIOGRAM

    def is_installed(self, bot: object) -> bool:
        return isinstance(bot, GuardedDispatcher)

    def _install(self, bot: Dispatcher, settings: Settings) -> Dispatcher:
        if bot._running_lock.locked():
            raise RuntimeError("restart_guard.protect must be applied before the dispatcher starts")
        original = type(bot)
        state = DispatcherState(settings, original)
        namespace = {"_restart_guard": state, "__module__": original.__module__}
        bot.__class__ = type(original.__name__, (GuardedDispatcher, original), namespace)
        return bot

    def _uninstall(self, bot: Dispatcher) -> Dispatcher:
        if bot._running_lock.locked():
            raise RuntimeError("restart_guard.unprotect needs a stopped dispatcher")
        bot.__class__ = state_of(bot).original_class
        return bot

    def conversation_of(self, event: object) -> Conversation | None:
        return conversation_of(event)

    def link_for(self, bot: Dispatcher) -> Link:
        """The link of the one bot ``bot`` (a dispatcher) serves; each bot has its own."""
        state = state_of(bot)
        if len(state.bots) != 1:
            raise ValueError(f"the dispatcher serves {len(state.bots)} bots; each has its own link")
        [bot_state] = state.bots.values()
        return Link(bot, bot_state.bot, state)


#: The adapter :func:`restart_guard.protect` uses for aiogram.
ADAPTER = AiogramAdapter()
