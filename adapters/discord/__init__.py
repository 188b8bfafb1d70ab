"""discord.py (2.6 and newer 2.x; see docs/supported-versions.md) adapter.

Usage — the only change to a bot is the import and the decorator::

    import restart_guard
    from discord.ext import commands

    @restart_guard.protect(marker_dir="/var/lib/mybot/restart-guard", drain_timeout=20)
    class MyBot(commands.Bot):
        async def setup_hook(self) -> None:      # yours keeps working
            await self.load_extension("cogs.chat")

    MyBot(command_prefix="!", intents=intents).run(os.environ["DISCORD_TOKEN"])

``protect`` also takes a factory returning a ``Client``/``Bot`` and an
instance (before it logs in): ``bot = restart_guard.protect()(bot)``. Options
are those of :func:`restart_guard.protect`.

What happens, in order:

1. **Start-up**, in ``setup_hook`` — after login, before the gateway
   connects, and before your own ``setup_hook``: the marker store is opened
   (by default a folder named after the bot's user id, never the token), the
   markers of a dead process are claimed and a notice is posted in each
   interrupted thread or channel over HTTP, with
   ``get_partial_messageable(...).send()``. ``setup_hook`` waits for the
   notices for at most 5 s (or until a replay needs the gateway); the rest
   follow in the background, 10 per second. With ``replay=True`` the stored
   message is then parsed again once the gateway is ready, so ``on_message``,
   listeners and prefix commands run it as before.
2. **Every handler run** is marked write-ahead (in the background, no disk
   I/O on the handler's path) from the moment its task is created until it
   is done, ``on_error`` included:

   - every ``on_*`` event and ``add_listener`` listener (they all go through
     ``dispatch`` → ``_schedule_event``), hence prefix commands, which run
     inside the ``on_message`` task;
   - app (slash) and context-menu commands, which the ``CommandTree`` runs in
     a task of its own — the tree gets a tracking subclass mixed in, whether it
     came from ``tree_cls``, ``Bot``'s default or ``CommandTree(client)``,
     before or after ``protect()``;
   - component (button, select) and modal callbacks of views, persistent and
     dynamic items included — the view store gets a tracking subclass mixed in.

   Only runs that belong to a conversation are tracked: their arguments hold
   a ``Message``, ``Interaction``, ``Context``, ``Reaction`` or a raw
   message-update, reaction or poll-vote payload (see ``_keys.py`` for the
   key: guild, channel, thread — a thread is keyed under its parent channel
   so that a notice for a deleted thread goes to the parent; DMs by their DM
   channel). Autocomplete is not tracked; tasks a handler starts itself
   with ``asyncio.create_task`` are not either (await them, or they are not
   part of the run).
3. **Stop**: discord.py has no SIGTERM handler (SIGTERM kills a plain bot at
   once) and ``run()`` turns SIGINT into cancelling every task. The adapter
   handles both on the client's loop, and ``close()`` — whoever calls it —
   drains first:

   - every conversation in flight is durably marked in one batch (one fsync);
   - new events stop: they are not dispatched to handlers, except events of
     a conversation whose handler is still running (the button click or
     answer it waits for). A refused interaction, DM or mention of the bot is
     marked for a notice after the restart; channel chatter is only counted;
   - running handlers get up to ``drain_timeout`` — never cancelled before;
   - then the markers are committed and the client closes: after a complete
     drain this process's markers are gone and ``run()`` returns (exit 0);
     after a timed-out one they stay for the next start, and ``run()``
     returns as well (asyncio then cancels what still runs).

   ``await bot.close()`` from inside a handler (a ``!shutdown`` command)
   starts the same stop and returns at once; the client closes once the
   handlers are done.

Notices: 404 on a thread, or an archived or locked thread, sends the notice
to the parent channel instead; 403 (Missing Access, Missing Permissions,
cannot DM the user) and 404 Unknown Channel drop the marker with one log
line, after one try; a 429 is waited out by discord.py itself (a 429 it gives
up on is retried after ``Retry-After``); 5xx and network errors are retried
with backoff, the marker kept. A slash command cut off mid-run gets its
notice as a normal message in its channel: its interaction token may have
expired.

If the bot runs outside the main thread (no signal handlers there), stop it
with ``await bot.close()``, which drains.

Logs go to the ``restart_guard`` logger. ``bot.run(token)`` sets up logging
for the ``discord`` logger only: pass ``root_logger=True`` (or configure
``logging`` yourself) to see restart-guard's lines too.
"""

from __future__ import annotations

from typing import Any

from restart_guard import Conversation, Settings
from restart_guard._adapter import Adapter
from restart_guard._registry import DISCORD
from restart_guard.errors import AdapterNotAvailable

try:
    import discord
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise AdapterNotAvailable(DISCORD.missing(exc)) from exc

from ._client import SETTINGS, attach, guarded_class, is_guarded_class, swap_in
from ._keys import conversation_of
from ._link import Link
from ._state import PLATFORM, STATE_ATTR, state_of
from ._tracking import remove_hooks

__all__ = ["ADAPTER", "PLATFORM", "DiscordAdapter", "conversation_of", "is_guarded_class"]


class DiscordAdapter(Adapter[discord.Client]):
    """discord.py's ``Client`` / ``Bot``: instances, factories and decorated classes."""

    spec = DISCORD

    def is_installed(self, bot: object) -> bool:
        return state_of(bot) is not None

    def _install(self, bot: discord.Client, settings: Settings) -> discord.Client:
        if bot.user is not None or bot.is_ready():
            raise RuntimeError(
                "restart_guard.protect must be applied before the client logs in "
                "(before run(), start() or login())"
            )
        original = type(bot)
        swap_in(bot)
        attach(bot, settings, original)
        return bot

    def install_class(self, cls: type[Any], settings: Settings) -> type[Any]:
        """Guard every instance of a ``Client``/``Bot`` subclass (``@protect`` on a class).

        Returns a subclass with the same name, module and docstring. Decorating
        an already decorated class returns it unchanged; a subclass of a
        decorated class gets its own options, not a second guard.
        """
        if cls.__dict__.get(SETTINGS) is not None:
            return cls
        return guarded_class(cls, settings)

    def _uninstall(self, bot: discord.Client) -> discord.Client:
        state = state_of(bot)
        assert state is not None
        if state.lifecycle.guard is not None:
            raise RuntimeError(
                "restart_guard.unprotect needs a closed client (await client.close())"
            )
        remove_hooks(bot, state)
        del bot.__dict__[STATE_ATTR]
        if state.original_class is not None:
            bot.__class__ = state.original_class
        # An instance of a decorated class keeps its class; without its state the
        # overrides only pass through to discord.py.
        return bot

    def conversation_of(self, event: object) -> Conversation | None:
        return conversation_of(event)

    def link_for(self, bot: discord.Client) -> Link:
        return Link(bot)


#: The adapter :func:`restart_guard.protect` uses for discord.py.
ADAPTER = DiscordAdapter()
