"""Exceptions a user or an adapter can meet."""

from __future__ import annotations

__all__ = [
    "AdapterNotAvailable",
    "ConversationGone",
    "ConversationMoved",
    "DeliveryError",
    "RateLimited",
    "ThreadGone",
    "UnsupportedFrameworkVersion",
]


class AdapterNotAvailable(ImportError):
    """The framework an adapter needs is not installed (the message has the pip command)."""


class DeliveryError(Exception):
    """Posting a resume notice failed in a way the platform explained."""


class ConversationGone(DeliveryError):
    """The chat or channel no longer exists, or the bot was removed from it.

    The marker is dropped after one log line; there is nobody to tell.
    """


class ConversationMoved(DeliveryError):
    """The chat now lives under another id (a Telegram group upgraded to a supergroup).

    The marker follows it to ``new_chat`` and the notice is posted there.
    """

    def __init__(self, new_chat: str, message: str = "") -> None:
        super().__init__(message or f"the chat moved to {new_chat}")
        self.new_chat = new_chat


class ThreadGone(DeliveryError):
    """The forum topic or thread was deleted; the notice goes to the main chat instead."""


class RateLimited(DeliveryError):
    """The platform asked to wait ``retry_after`` seconds before the next call."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


class UnsupportedFrameworkVersion(AdapterNotAvailable):
    """The installed framework release (or fork) is not one restart-guard can guard.

    Raised by :func:`restart_guard.protect` before the adapter is installed; the
    message names the framework, the version found, the supported range and
    what to do. ``RESTART_GUARD_ALLOW_UNTESTED=1`` turns a release outside the
    tested range into one warning; a missing hook point or a fork always raises.
    """

    def __init__(self, message: str, *, framework: str, version: str, supported: str) -> None:
        super().__init__(message)
        self.framework = framework
        self.version = version
        self.supported = supported
