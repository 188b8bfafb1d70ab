"""Slack event payloads: ``message``, ``app_mention`` and the ``event_callback`` body."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from ._messages import _Messages
from ._model import VERIFICATION_TOKEN

if TYPE_CHECKING:
    from typing_extensions import Unpack


class _MentionFields(TypedDict, total=False):
    """The optional fields of the events of a user's message (see ``message_event``)."""

    user: str | None
    thread_ts: str | None
    ts: str | None
    team: str | None


class _MessageFields(_MentionFields, total=False):
    """The optional fields of ``message_event``, passed on by ``inject_message``."""

    channel_type: str


class _Origin(TypedDict, total=False):
    """Whose Events API body carries an event: the team (and Enterprise Grid org)."""

    team: str | None
    enterprise: str | None


class _EventBuilders(_Messages):
    """Builds events and the Events API body around them (nothing is delivered here)."""

    def message_event(
        self,
        channel: str,
        text: str,
        *,
        channel_type: str = "channel",
        **fields: Unpack[_MentionFields],
    ) -> dict[str, Any]:
        """A ``message`` event as Slack sends it for a user's message (not delivered).

        ``channel_type`` is ``channel``, ``group``, ``im`` or ``mpim``; ``user``
        defaults to the stand-in's user, ``team`` to its team; ``thread_ts``
        makes it a reply in that thread; ``ts`` defaults to :meth:`next_ts`.
        Use with :meth:`inject_event` or :meth:`post_event`.
        """
        event = self._user_event("message", channel, text, fields)
        event["channel_type"] = channel_type
        return event

    def app_mention_event(
        self, channel: str, text: str, **fields: Unpack[_MentionFields]
    ) -> dict[str, Any]:
        """An ``app_mention`` event (not delivered); ``<@bot_user_id>`` is prefixed if missing.

        ``user``, ``thread_ts``, ``ts`` and ``team`` as for :meth:`message_event`.
        """
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}"
        return self._user_event("app_mention", channel, text, fields)

    def _user_event(
        self, event_type: str, channel: str, text: str, fields: _MentionFields
    ) -> dict[str, Any]:
        """The fields every event of a user's message carries (``message``, ``app_mention``)."""
        ts = fields.get("ts") or self.next_ts()
        user, team, thread_ts = fields.get("user"), fields.get("team"), fields.get("thread_ts")
        event: dict[str, Any] = {
            "type": event_type,
            "channel": channel,
            "user": user or self.user_id,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": team or self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": _rich_text_blocks(text),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    def event_callback(
        self, event: Mapping[str, Any], *, event_id: str | None = None, **origin: Unpack[_Origin]
    ) -> dict[str, Any]:
        """The Events API body (``type: event_callback``) that carries ``event``.

        ``team`` defaults to the event's ``team`` or the stand-in's team id,
        ``enterprise`` to the stand-in's enterprise id. ``authorizations``
        names the bot, as Slack's does; Bolt reads team and enterprise from it.
        """
        team_id = origin.get("team") or event.get("team") or self.team_id
        enterprise = origin.get("enterprise")
        enterprise_id = enterprise if enterprise is not None else self.enterprise_id
        body: dict[str, Any] = {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": enterprise_id,
            "api_app_id": self.app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": enterprise_id,
                    "team_id": team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + uuid.uuid4().hex,
        }
        if enterprise_id is not None:
            body["enterprise_id"] = enterprise_id
        return body


def _rich_text_blocks(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": uuid.uuid4().hex[:5],
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]
