"""Per-client state of a guarded discord.py client, and the bracket around one handler run."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

from restart_guard import Conversation, Guard, Resumer, Run, Settings

__all__ = [
    "IN_HANDLER",
    "NOTICES_PER_SECOND",
    "PLATFORM",
    "STARTUP_NOTICE_WAIT",
    "STATE_ATTR",
    "ClientState",
    "Tracked",
    "log",
    "state_of",
]

PLATFORM = "discord"
log = logging.getLogger("restart_guard")

#: Discord allows 5 messages per 5 s in one channel and ~50 requests per second
#: per bot; notices mostly go to different channels, so 10 per second is safe,
#: and discord.py waits out any 429 on its own.
NOTICES_PER_SECOND = 10.0
#: ``setup_hook`` waits this long for notices before the gateway connects; the
#: rest go out in the background.
STARTUP_NOTICE_WAIT = 5.0
#: The instance attribute holding a guarded client's :class:`ClientState`.
STATE_ATTR = "_restart_guard"


class ClientState:
    """Everything the adapter keeps for one guarded client (an instance attribute)."""

    def __init__(self, settings: Settings, original_class: type | None) -> None:
        self.settings = settings
        #: The class of an instance passed to ``protect()`` before it was swapped
        #: (for ``uninstall``); None for instances of a decorated class.
        self.original_class = original_class
        self.guard: Guard | None = None
        self.resumer: Resumer | None = None
        #: Set from the first stop request until the next start-up.
        self.stopping = False
        self.stop_started = 0.0
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
        #: Events not handled because they arrived during the drain, and how
        #: many of those were marked for a notice.
        self.refused = 0
        self.refused_marked = 0
        self.last_refused: int | None = None
        #: Gateway parsers replaced on the client's ConnectionState (for uninstall).
        self.parsers: dict[str, Any] = {}

    def admits(self, key: str | None) -> bool:
        """Whether a new event of the conversation ``key`` may run now."""
        if not self.stopping:
            return True
        return key is not None and self.guard is not None and key in self.active

    def begin_stop(self) -> None:
        """Pre-mark everything in flight durably, then stop taking new events. Idempotent."""
        if self.stopping:
            return
        if self.guard is not None:
            self.guard.pre_mark()  # first: a SIGKILL may follow at any moment
        self.stopping = True
        self.stop_started = time.monotonic()

    def refuse(self, conversation: Conversation | None, addressed: bool, ident: int | None) -> None:
        """An event arrived during the drain and will not run.

        When it was addressed to the bot (an interaction, a DM, a mention) its
        conversation is marked as cut off, so the user hears from the bot after
        the restart; plain channel chatter is only counted.
        """
        if ident is not None and ident == self.last_refused:
            return  # one event, several listeners
        self.last_refused = ident
        self.refused += 1
        guard = self.guard
        if not addressed or conversation is None or guard is None:
            log.debug("restart-guard: event in %s not handled: the bot is stopping", conversation)
            return
        self.refused_marked += 1
        guard.end(guard.begin(conversation), completed=False)
        log.info(
            "restart-guard: %s addressed the bot during the drain; not handled, "
            "marked for a notice after the restart",
            conversation,
        )


def state_of(client: object) -> ClientState | None:
    """The state of a guarded client, or None."""
    state: ClientState | None = getattr(client, "__dict__", {}).get(STATE_ATTR)
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

    __slots__ = ("coro", "guard", "key", "run", "state")

    def __init__(
        self,
        state: ClientState,
        guard: Guard,
        conversation: Conversation,
        payload: Any = None,
        coro: Any = None,
    ) -> None:
        self.state = state
        self.guard = guard
        self.coro = coro
        self.key = conversation.key
        self.run: Run = guard.begin(conversation, payload)
        active = state.active
        active[self.key] = active.get(self.key, 0) + 1

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        IN_HANDLER.set(True)
        cut = False
        try:
            return await self.coro(*args, **kwargs)
        except asyncio.CancelledError:
            # Cancelled by shutdown (after the drain): keep the marker. Cancelled
            # by the bot's own code while running: the run is over.
            cut = self.guard.stopping
            raise
        finally:
            self.finish(cut)

    def attach(self, task: asyncio.Future[Any]) -> None:
        """End the run when ``task`` is done (for a task running someone else's coroutine)."""
        self.state.tasks.add(task)
        task.add_done_callback(self.done)

    def done(self, task: asyncio.Future[Any]) -> None:
        """Task done callback of :meth:`attach`."""
        self.state.tasks.discard(task)
        self.finish(task.cancelled() and self.guard.stopping)

    def finish(self, cut: bool) -> None:
        """The run is over; ``cut``: by shutdown, so its marker stays."""
        active = self.state.active
        left = active.get(self.key, 0) - 1
        if left > 0:
            active[self.key] = left
        else:
            active.pop(self.key, None)
        self.guard.end(self.run, completed=not cut)
