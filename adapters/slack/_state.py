"""Per-app state of the Slack adapter, and the app's public identity."""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from restart_guard import Guard, Resumer, Settings

if TYPE_CHECKING:
    from ._link import LoopThread

PLATFORM = "slack"
log = logging.getLogger("restart_guard")

#: Slack allows chat.postMessage about once per second per channel, with short
#: bursts; notices mostly go to different channels. A 429 is honoured anyway.
NOTICES_PER_SECOND = 2.0
#: Start-up waits this long for notices before events are taken; the rest go
#: out in the background at the platform's rate.
STARTUP_NOTICE_WAIT = 5.0
#: Context key that marks a request re-dispatched by replay.
REPLAY_KEY = "restart_guard_replay"


class Phase(enum.Enum):
    """Where an app is in its guarded life."""

    NEW = "new"  # protected, not started: the first start-up call claims markers
    RUNNING = "running"
    STOPPING = "stopping"  # pre-marked, draining: new requests are refused
    STOPPED = "stopped"  # drained (or timed out) and closed


@dataclass(eq=False)
class AppState:
    """What the adapter keeps for one protected ``App``/``AsyncApp``.

    It lives on the app's own guarded subclass, so ``uninstall`` (which puts
    the original class back) leaves nothing behind on the app.
    """

    settings: Settings
    original_class: type
    is_async: bool
    phase: Phase = Phase.NEW
    guard: Guard | None = None
    resumer: Resumer | None = None
    #: Sync apps: the event loop thread the resume step runs on.
    loop_thread: LoopThread | None = None
    #: Socket Mode handlers connected for this app: closed on stop.
    handlers: list[Any] = field(default_factory=list)
    #: event_ids re-run by replay: a redelivery of one of them is acked, not run twice.
    replayed: set[str] = field(default_factory=set)
    #: Serialises start-up and shutdown of a sync app.
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set once start-up is over (notices posted or handed to the background).
    ready: threading.Event = field(default_factory=threading.Event)
    #: Async apps: the one start-up task every caller awaits.
    startup_task: asyncio.Future[None] | None = None
    #: ``AsyncApp.start()`` is running: aiohttp's signal handlers are ours to extend.
    standalone: bool = False
    #: Result of the last drain (None while none ran).
    drained: bool | None = None
    #: Running and started: the one flag a request checks on its way in.
    serving: bool = False

    @property
    def accepting(self) -> bool:
        """Whether new requests may run (not stopping or stopped)."""
        return self.phase is Phase.NEW or self.phase is Phase.RUNNING


def identity_needed(settings: Settings) -> bool:
    """Whether the store's location depends on the bot's identity (no explicit dir or store)."""
    return settings.marker_dir is None and (
        settings.store is None or isinstance(settings.store, str)
    )


def identity_from_auth_test(result: Any) -> str | None:
    """``enterprise/team/bot`` from an ``auth.test`` answer: public, stable, never the token."""
    try:
        team = result.get("team_id") or ""
        enterprise = result.get("enterprise_id") or ""
        bot = result.get("bot_id") or result.get("user_id") or ""
    except Exception:  # an unexpected answer shape: fall back to the app's other names
        return None
    if not (team or enterprise) or not bot:
        return None
    return f"{enterprise}/{team}/{bot}"


def fallback_identity(app: Any) -> str:
    """The app's OAuth client id (public) when it has no single token, else its name."""
    oauth_flow = getattr(app, "oauth_flow", None)
    client_id = getattr(getattr(oauth_flow, "settings", None), "client_id", None)
    if client_id:
        return f"oauth/{client_id}"
    return f"name/{getattr(app, 'name', 'slack-app')}"
