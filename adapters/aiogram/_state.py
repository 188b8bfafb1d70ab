"""What the adapter keeps for one guarded ``Dispatcher``, and for each bot it serves."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any

from restart_guard import Run, Settings
from restart_guard._lifecycle import Lifecycle

__all__ = ["IN_HANDLER", "BotState", "DispatcherState", "log", "state_of"]

log = logging.getLogger("restart_guard")

#: True inside a guarded handler run: a stop requested from there must not wait for itself.
IN_HANDLER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "restart_guard_aiogram_in_handler", default=False
)


@dataclass
class BotState:
    """One bot (token) of the dispatcher: its own ``Lifecycle`` (marker folder), its offsets."""

    bot: Any
    lifecycle: Lifecycle
    #: Highest update_id handed to aiogram by polling, and the offset Telegram was
    #: last asked with: updates in between are taken but not yet confirmed.
    last_taken: int = -1
    asked_offset: int = 0


@dataclass
class DispatcherState:
    """Per-dispatcher state; lives on the dispatcher's own subclass, like the framework's."""

    settings: Settings
    original_class: type
    bots: dict[int, BotState] = field(default_factory=dict)
    #: Runs begun before ``feed_update`` (polling took the update, or a replay feeds
    #: it), by (bot id, update_id), with the very update object ``feed_update`` gets.
    taken: dict[tuple[int, int], tuple[Any, Run]] = field(default_factory=dict)
    #: Replayed updates being handled (kept referenced until done).
    replays: set[asyncio.Task[Any]] = field(default_factory=set)
    #: Session middlewares installed for the offset hold, to remove at shutdown.
    sessions: list[Any] = field(default_factory=list)
    #: Bot sessions whose ``close`` waits for the drain (see ``_dispatcher``), to restore.
    closing_sessions: list[Any] = field(default_factory=list)
    #: A stop was requested (every bot pre-marked); cleared by the next start-up.
    stopping: bool = False
    stop_task: asyncio.Task[None] | None = None


def state_of(obj: Any) -> DispatcherState:
    """The state of a guarded dispatcher (or of its class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    state: DispatcherState = cls._restart_guard  # type: ignore[attr-defined]
    return state
