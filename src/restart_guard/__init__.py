"""restart-guard: never lose a conversation to a bot restart.

``@restart_guard.protect`` on the function that builds a python-telegram-bot
``Application``, a discord.py ``Client``/``Bot`` or a slack-bolt
``App``/``AsyncApp`` (or on the object itself) durably marks every
conversation whose handler is running, keeps the marks through SIGTERM,
SIGINT, SIGKILL and crashes, and on the next start posts a "resumed after
restart" notice in the original chat, thread or topic — optionally
re-running the interrupted turn.
"""

from __future__ import annotations

from ._conversation import Conversation
from ._guard import Guard, Run
from ._marker import Marker, Origin, Phase
from ._notice import Notice
from ._platform_link import PlatformLink
from ._policy import no_replay
from ._protect import protect, unprotect
from ._resume import Resumer
from ._settings import DEFAULT, Settings, default_marker_dir, make_store
from .errors import (
    AdapterNotAvailable,
    ConversationGone,
    ConversationMoved,
    DeliveryError,
    RateLimited,
    ThreadGone,
    UnsupportedFrameworkVersion,
)
from .stores.base import Store, StoredMarker, StoreError
from .stores.directory import DirectoryStore

__all__ = [
    "DEFAULT",
    "AdapterNotAvailable",
    "Conversation",
    "ConversationGone",
    "ConversationMoved",
    "DeliveryError",
    "DirectoryStore",
    "Guard",
    "Marker",
    "Notice",
    "Origin",
    "Phase",
    "PlatformLink",
    "RateLimited",
    "Resumer",
    "Run",
    "Settings",
    "Store",
    "StoreError",
    "StoredMarker",
    "ThreadGone",
    "UnsupportedFrameworkVersion",
    "default_marker_dir",
    "make_store",
    "no_replay",
    "protect",
    "unprotect",
]
