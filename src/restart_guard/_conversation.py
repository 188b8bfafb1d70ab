"""Where a conversation lives on its platform, and the stable key derived from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

__all__ = ["Conversation"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """The place a reply belongs: platform, workspace scope, chat and thread.

    - ``platform``: ``"telegram"``, ``"discord"``, ``"slack"`` (an adapter's name).
    - ``chat``: the chat or channel id, as a string.
    - ``thread``: forum topic (Telegram ``message_thread_id``), thread channel
      (Discord) or thread root ``ts`` (Slack); None for the main thread.
    - ``scope``: business connection (Telegram), guild (Discord) or team
      (Slack); None where the platform has none.
    - ``parent``: the channel a Discord thread lives in, or the Slack
      enterprise; informational, not part of the identity.

    ``key`` is a hash of the identity fields. Store backends name records by
    it, never by the raw ids, so no file or key name is ever built from a
    string a user controls.
    """

    platform: str
    chat: str
    thread: str | None = None
    scope: str | None = None
    parent: str | None = None
    key: str = field(init=False, repr=False, compare=False)
    _json: str | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        identity = "\x1f".join((self.platform, self.scope or "", self.chat, self.thread or ""))
        digest = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
        object.__setattr__(self, "key", digest)

    def __str__(self) -> str:
        where = f"{self.platform} chat {self.chat}"
        if self.thread is not None:
            where += f" thread {self.thread}"
        if self.scope is not None:
            where += f" (scope {self.scope})"
        return where

    def to_json(self) -> dict[str, Any]:
        """The conversation as a JSON object (None fields left out)."""
        data: dict[str, Any] = {"platform": self.platform, "chat": self.chat}
        for name in ("thread", "scope", "parent"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def json_fragment(self) -> str:
        """:meth:`to_json` as compact JSON text, computed once (stores encode it often)."""
        if self._json is None:
            # String by string with the C escaper: a pre-drain burst encodes thousands.
            parts = [f'"platform":{_quote(self.platform)}', f'"chat":{_quote(self.chat)}']
            for name in ("thread", "scope", "parent"):
                value = getattr(self, name)
                if value is not None:
                    parts.append(f'"{name}":{_quote(value)}')
            text = "{" + ",".join(parts) + "}"
            object.__setattr__(self, "_json", text)
            return text
        return self._json

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conversation:
        """Rebuild a conversation from :meth:`to_json` output; ValueError if malformed."""
        # Start-up parses thousands of these: plain lookups, no per-field loops.
        try:
            platform = data["platform"]
            chat = data["chat"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"conversation record lacks {exc}") from None
        get = data.get
        thread, scope, parent = get("thread"), get("scope"), get("parent")
        if not (
            type(platform) is str
            and type(chat) is str
            and platform
            and chat
            and (thread is None or type(thread) is str)
            and (scope is None or type(scope) is str)
            and (parent is None or type(parent) is str)
        ):
            raise ValueError("conversation fields must be non-empty strings")
        return cls(platform, chat, thread, scope, parent)

    def without_thread(self) -> Conversation:
        """The same chat's main thread (used when a topic or thread was deleted)."""
        return Conversation(self.platform, self.chat, None, self.scope, self.parent)
