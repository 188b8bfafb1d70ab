"""The adapter contract: what the core asks of the module that knows one framework.

An adapter module (``adapters/<framework>.py`` or a package of that name)
exposes one object, ``ADAPTER``, an instance of a subclass of
:class:`Adapter`; :func:`restart_guard.protect` finds the module through its
row in :mod:`restart_guard._registry` and calls only what is declared here::

    class TelegramAdapter(Adapter[Application]):
        spec = TELEGRAM                          # its registry row

        def is_installed(self, bot): ...         # is the guard on this object?
        def _install(self, bot, settings): ...   # hook the framework (once)
        def _uninstall(self, bot): ...           # undo exactly that
        def conversation_of(self, event): ...    # where a reply to this update goes
        def link_for(self, bot): ...             # posts notices, replays updates

    ADAPTER = TelegramAdapter()

``install`` / ``uninstall`` are idempotent template methods around
``_install`` / ``_uninstall`` (the OpenTelemetry ``BaseInstrumentor`` shape);
``install_class`` is for frameworks whose users subclass the bot (discord.py).

What ``_install`` hooks is the framework's own business; what it calls at
those hooks is always the same handful of :class:`restart_guard._lifecycle.Lifecycle`
methods, one ``Lifecycle`` per guarded object:

- ``start(identity, link)`` once the bot can talk to its platform and before
  it takes updates (claims markers, posts notices, tells systemd READY);
- ``begin(conversation, payload)`` / ``end(run, cut_off=...)`` around every
  handler run that belongs to a conversation;
- ``stop(drain)`` when the framework stops, with the framework's own drain
  (marks everything in flight durably *before* the drain, bounds it by
  ``drain_timeout``, returns whether it completed);
- ``handle_signals(stop)`` where the framework leaves SIGTERM/SIGINT alone.

Intake stops by itself: between the stop request and the next start
``Lifecycle.accepting`` is False, and an adapter turns new events away while
it is (or lets the framework do it, as python-telegram-bot does).
"""

from __future__ import annotations

import abc
import logging
from typing import ClassVar, Generic, TypeVar

from ._conversation import Conversation
from ._platform_link import PlatformLink
from ._registry import AdapterSpec
from ._settings import Settings

__all__ = ["Adapter"]

log = logging.getLogger("restart_guard")

BotT = TypeVar("BotT")


class Adapter(abc.ABC, Generic[BotT]):
    """One framework's adapter: how restart-guard hooks into its bot objects."""

    #: This adapter's row of the registry (platform, framework, pip extra, classes).
    spec: ClassVar[AdapterSpec]

    @property
    def platform(self) -> str:
        """``Conversation.platform`` of every conversation this adapter keys."""
        return self.spec.conversation_platform

    # ------------------------------------------------------------ templates
    def install(self, bot: BotT, settings: Settings) -> BotT:
        """Guard ``bot`` (called by :func:`restart_guard.protect`). Idempotent."""
        if self.is_installed(bot):
            log.debug("restart-guard: %r is already protected", bot)
            return bot
        return self._install(bot, settings)

    def uninstall(self, bot: BotT) -> BotT:
        """Remove the guard (called by :func:`restart_guard.unprotect`). Idempotent."""
        if not self.is_installed(bot):
            return bot
        return self._uninstall(bot)

    def install_class(self, cls: type[BotT], settings: Settings) -> type[BotT]:
        """Guard every instance of ``cls`` (``@protect`` on a class), where the framework allows.

        The default refuses: most frameworks build their bot objects
        themselves, so the factory function or the object is decorated instead.
        """
        raise TypeError(
            f"restart_guard.protect guards {self.spec.framework} bot objects, not classes: "
            "decorate the factory function or pass the object"
        )

    # ------------------------------------------------------------ per framework
    @abc.abstractmethod
    def is_installed(self, bot: object) -> bool:
        """Whether the guard is on ``bot``."""

    @abc.abstractmethod
    def _install(self, bot: BotT, settings: Settings) -> BotT:
        """Hook the framework on ``bot`` (not guarded yet) and give it a ``Lifecycle``."""

    @abc.abstractmethod
    def _uninstall(self, bot: BotT) -> BotT:
        """Undo :meth:`_install` on a guarded ``bot``; refuse while it runs."""

    @abc.abstractmethod
    def conversation_of(self, event: object) -> Conversation | None:
        """Where a reply to ``event`` belongs, or None for events outside a conversation."""

    @abc.abstractmethod
    def link_for(self, bot: BotT) -> PlatformLink:
        """What posts notices and replays updates through ``bot``'s own client."""
