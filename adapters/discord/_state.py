"""Per-client state of a guarded discord.py client, and the bracket around one handler run."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from typing import Any

from restart_guard import Conversation, Origin, Run, Settings
from restart_guard._lifecycle import Lifecycle
from restart_guard._policy import CURRENT_RUN
from restart_guard._registry import DISCORD

__all__ = [
    "IN_HANDLER",
    "NOTICES_PER_SECOND",
    "PLATFORM",
    "STATE_ATTR",
    "SWAPPED_CLASS",
    "BotState",
    "Connecting",
    "Tracked",
    "above",
    "log",
    "state_of",
]

PLATFORM = DISCORD.platform
log = logging.getLogger("restart_guard")

#: Discord allows 5 messages per 5 s in one channel and ~50 requests per second
#: per bot; notices mostly go to different channels, so 10 per second is safe,
#: and discord.py waits out any 429 on its own.
NOTICES_PER_SECOND = 10.0
#: The instance attribute holding a guarded client's :class:`BotState`.
STATE_ATTR = "_restart_guard"
#: Class attribute of every class the adapter makes (the guarded client class,
#: the swapped-in tree and view store): the class itself, for :func:`above`.
SWAPPED_CLASS = "_restart_guard_class"


def above(obj: Any) -> Any:
    """``super()`` for an override that is not defined inside the class made for ``obj``."""
    return super(getattr(type(obj), SWAPPED_CLASS), obj)


@dataclasses.dataclass
class Connecting:
    """A ``Client.connect()`` that runs: its task, and ``over`` set once it returned."""

    task: asyncio.Task[Any]
    over: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: The stop cancelled it in its gateway handshake, to close the client.
    cut: bool = False


class BotState:
    """Everything the adapter keeps for one guarded client (an instance attribute)."""

    def __init__(self, settings: Settings, original_class: type | None) -> None:
        self.lifecycle = Lifecycle(PLATFORM, settings)
        #: The class of an instance passed to ``protect()`` before it was swapped
        #: (for ``uninstall``); None for instances of a decorated class.
        self.original_class = original_class
        #: The stop then close of the client, shared by every ``close()`` call.
        self.stop_task: asyncio.Task[None] | None = None
        #: Handler runs per conversation key: during the drain, events of a
        #: conversation that is still running are delivered (the button click
        #: or answer its handler waits for); events of idle ones are not.
        self.active: dict[str, int] = {}
        #: Tasks of tracked view and modal callbacks (to tell a close() from inside one).
        self.tasks: set[asyncio.Future[Any]] = set()
        #: The raw MESSAGE_CREATE being parsed right now (replay payload).
        self.raw_message: dict[str, Any] | None = None
        #: The conversation of the INTERACTION_CREATE being parsed right now
        #: (view and modal callbacks are scheduled synchronously inside it).
        self.interaction: Conversation | None = None
        #: ... and who sent it.
        self.interaction_origin: Origin | None = None
        #: Events not handled because they arrived during the drain, and how
        #: many of those were marked for a notice.
        self.refused = 0
        self.refused_marked = 0
        self.last_refused: int | None = None
        #: Button presses of replay="ask" questions being answered.
        self.presses: set[asyncio.Future[None]] = set()
        #: Gateway parsers replaced on the client's ConnectionState (for uninstall).
        self.parsers: dict[str, Any] = {}
        #: The client's ``connect()`` while it runs (see ``_client.py``).
        self.connecting: Connecting | None = None

    def admits(self, key: str | None) -> bool:
        """Whether a new event of the conversation ``key`` may run now."""
        lifecycle = self.lifecycle
        if lifecycle.accepting:
            return True
        return key is not None and lifecycle.guard is not None and key in self.active

    def refuse(
        self,
        conversation: Conversation | None,
        addressed: bool,
        ident: int | None,
        origin: Origin | None = None,
    ) -> None:
        """An event arrived during the drain and will not run.

        When it was addressed to the bot (an interaction, a DM, a mention) its
        conversation is marked as cut off, so the user hears from the bot after
        the restart; plain channel chatter is only counted.
        """
        if ident is not None and ident == self.last_refused:
            return  # one event, several listeners
        self.last_refused = ident
        self.refused += 1
        run = None
        if addressed and conversation is not None:
            run = self.lifecycle.begin(conversation, None, origin)
        if run is None:
            log.debug("restart-guard: event in %s not handled: the bot is stopping", conversation)
            return
        self.refused_marked += 1
        Lifecycle.end(run, cut_off=True)  # stopping: cut off, so the marker stays
        log.info(
            "restart-guard: %s addressed the bot during the drain; not handled, "
            "marked for a notice after the restart",
            conversation,
        )


def state_of(client: object) -> BotState | None:
    """The state of a guarded client, or None."""
    state: BotState | None = getattr(client, "__dict__", {}).get(STATE_ATTR)
    return state


#: True inside a tracked handler run (and in tasks it starts): ``close()`` there
#: must not wait for the drain, which would wait for that very handler.
IN_HANDLER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "restart_guard_in_handler", default=False
)


class Tracked:
    """One handler run: begun when its task is created, ended when its coroutine ends.

    Calling it runs the handler (it is what ``Client._run_event`` awaits): the
    run ends in its ``finally``, and a ``CancelledError`` — which discord.py
    swallows in ``_run_event`` — is seen here first. For tasks whose coroutine
    is not ours (view and modal callbacks), :meth:`attach` ends the run from
    the task's done callback instead.
    """

    __slots__ = ("coro", "key", "run", "state")

    def __init__(self, state: BotState, run: Run, coro: Any = None) -> None:
        self.state = state
        self.run = run
        self.coro = coro
        self.key = run.conversation.key
        active = state.active
        active[self.key] = active.get(self.key, 0) + 1

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        IN_HANDLER.set(True)
        CURRENT_RUN.set(self.run)  # a @no_replay command inside on_message flags this run
        cut_off = False
        try:
            return await self.coro(*args, **kwargs)
        except asyncio.CancelledError:
            # Cancelled by shutdown (after the drain): keep the marker. Cancelled
            # by the bot's own code while running: the run is over.
            cut_off = True
            raise
        finally:
            self.end(cut_off)

    def attach(self, task: asyncio.Future[Any]) -> None:
        """End the run when ``task`` is done (for a task running someone else's coroutine)."""
        self.state.tasks.add(task)
        task.add_done_callback(self.done)

    def done(self, task: asyncio.Future[Any]) -> None:
        """Task done callback of :meth:`attach`."""
        self.state.tasks.discard(task)
        self.end(task.cancelled())

    def end(self, cut_off: bool) -> None:
        """The run is over; ``cut_off``: it was cancelled (see ``Lifecycle.end``)."""
        active = self.state.active
        left = active.get(self.key, 0) - 1
        if left > 0:
            active[self.key] = left
        else:
            active.pop(self.key, None)
        Lifecycle.end(self.run, cut_off=cut_off)
