"""Per-app state of the Slack adapter, and the app's public identity."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from restart_guard import Conversation
from restart_guard._lifecycle import Lifecycle
from restart_guard._registry import SLACK

PLATFORM = SLACK.platform
log = logging.getLogger("restart_guard")

#: Slack allows chat.postMessage about once per second per channel, with short
#: bursts; notices mostly go to different channels. A 429 is honoured anyway.
NOTICES_PER_SECOND = 2.0
#: Context key that marks a request re-dispatched by replay.
REPLAY_KEY = "restart_guard_replay"


@dataclass(eq=False)
class BotState:
    """What the adapter keeps for one protected ``App``/``AsyncApp``.

    It lives on the app's own guarded subclass, so ``uninstall`` (which puts
    the original class back) leaves nothing behind on the app. Where the app
    is in its life (new, starting, running, stopping, stopped) is
    ``lifecycle.stage``.
    """

    lifecycle: Lifecycle
    original_class: type
    is_async: bool
    #: Socket Mode handlers connected for this app: closed on stop.
    handlers: list[Any] = field(default_factory=list)
    #: ``AsyncApp.start()`` is running: aiohttp's signal handlers are ours to extend.
    standalone: bool = False
    #: Button presses of replay="ask" questions being answered (an ``AsyncApp``'s tasks).
    presses: set[asyncio.Future[None]] = field(default_factory=set)

    def forget(self) -> None:
        """After a stop: the connections are closed, replays are the next start's business."""
        self.handlers.clear()


@dataclass(frozen=True)
class Pressed:
    """What answering one button press needs (``Press.handle``): where, and its response_url.

    ``conversation`` is the question message's channel and thread, with the
    team (whose token posts) and the Enterprise Grid org; None when the
    payload did not say (then only the response_url can answer).
    """

    conversation: Conversation | None
    response_url: str | None = None


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
