"""The Discord stand-in's model of the platform and the payloads built from it."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from .._standin import StandIn
from ._model import (
    _ADMINISTRATOR,
    _ALL_PERMISSIONS,
    _DISCORD_EPOCH_MS,
    _DM,
    _EVERYONE_PERMISSIONS,
    _MAX_STORED_MESSAGES,
    _MENTION,
    API_VERSION,
    DEFAULT_BOT_USER_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_THREAD_ID,
    DEFAULT_USER_ID,
    ENV_API,
    ENV_GATEWAY,
    _Channel,
    _Connection,
    _Guild,
    _Interaction,
    _now_iso,
    _Session,
)


class _World(StandIn):
    """The platform's state: users, guilds, channels, messages, interactions, commands.

    Builds the JSON objects (users, members, channels, guilds, messages,
    interactions) the way Discord sends them. Everything here is guarded by
    ``self._state``; the gateway state is touched on the stand-in's loop only.
    The keyword arguments are :class:`DiscordStandIn`'s (documented there).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_name: str = "restart-guard-bot",
        user_id: int = DEFAULT_USER_ID,
        token: str | None = None,
        default_guild: bool = True,
        enforce_intents: bool = True,
        echo_own_messages: bool = True,
        heartbeat_interval: float = 41.25,
    ) -> None:
        super().__init__(host, port)
        #: The bot's user id (also its application id).
        self.bot_user_id = bot_user_id
        #: The application id discord.py reads from ``/oauth2/applications/@me`` and READY.
        self.application_id = bot_user_id
        #: The bot's username.
        self.bot_name = bot_name
        #: The default human user id.
        self.user_id = user_id
        #: The required bot token, or None for any.
        self.token = token
        #: The default guild's id.
        self.guild_id = DEFAULT_GUILD_ID
        #: The default guild's text channel.
        self.channel_id = DEFAULT_CHANNEL_ID
        #: The public thread inside ``channel_id``.
        self.thread_id = DEFAULT_THREAD_ID
        #: Filter events and blank content by the identified intents, as Discord does.
        self.enforce_intents = enforce_intents
        #: Send the bot's own messages back to it as MESSAGE_CREATE, as Discord does.
        self.echo_own_messages = echo_own_messages
        #: Seconds announced in HELLO.
        self.heartbeat_interval = heartbeat_interval

        self._state = threading.RLock()
        self._last_id = 0
        self._users: dict[int, dict[str, Any]] = {}
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, _Channel] = {}
        self._dm_channels: dict[int, int] = {}
        self._deleted: set[int] = set()
        self._channel_failures: dict[int, tuple[int, dict[str, Any]]] = {}
        self._messages: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._interactions: dict[int, _Interaction] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[str, int] = {}

        # Loop-thread only.
        self._conns: set[_Connection] = set()
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stopping = False
        # Guarded by the base class's lock (self._changed).
        self._identifies: list[dict[str, Any]] = []
        self._live = 0

        self.add_user(bot_user_id, bot_name, bot=True)
        self.add_user(user_id, "tester")
        if default_guild:
            self._add_default_guild()

    def _add_default_guild(self) -> None:
        """Add the guild, channel and thread of ``guild_id``, ``channel_id``, ``thread_id``."""
        raise NotImplementedError  # the test controls, which add guilds, override this

    # ------------------------------------------------------------------ addresses
    @property
    def api_base(self) -> str:
        """REST base for ``discord.http.Route.BASE``: ``http://host:port/api/v10``."""
        return f"{self.url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """Gateway URL for ``DiscordWebSocket.DEFAULT_GATEWAY``: ``ws://host:port/gateway``."""
        return f"ws://{self.host}:{self.port}/gateway"

    def env_vars(self) -> dict[str, str]:
        """The environment a bot subprocess needs for :func:`point_discord_at_env`."""
        return {ENV_API: self.api_base, ENV_GATEWAY: self.gateway_url}

    # ------------------------------------------------------------------ the model
    def new_id(self) -> int:
        """A fresh snowflake (time-based, strictly increasing; thread-safe)."""
        with self._state:
            ms = int(time.time() * 1000) - _DISCORD_EPOCH_MS
            self._last_id = max(self._last_id + 1, ms << 22)
            return self._last_id

    def add_user(
        self, user_id: int | None = None, name: str | None = None, *, bot: bool = False
    ) -> int:
        """Make a user known (authors are added automatically); return its id."""
        uid = self.new_id() if user_id is None else user_id
        with self._state:
            self._users[uid] = {
                "id": str(uid),
                "username": name or f"user{uid % 10_000}",
                "discriminator": "0",
                "global_name": name or f"user{uid % 10_000}",
                "avatar": None,
                "bot": bot,
                "system": False,
                "public_flags": 0,
                "flags": 0,
            }
        return uid

    def message(self, message_id: int) -> dict[str, Any] | None:
        """The stored message object (as clients saw it) with that id, or None."""
        with self._state:
            stored = self._messages.get(message_id)
            return None if stored is None else dict(stored)

    # ---------------------------------------------------------------- payloads
    def _user(self, user_id: int) -> dict[str, Any]:
        with self._state:
            if user_id not in self._users:
                self.add_user(user_id)
            return dict(self._users[user_id])

    def _member(self, guild: _Guild, user_id: int, *, permissions: bool = False) -> dict[str, Any]:
        roles = [str(guild.bot_role_id)] if user_id == self.bot_user_id else []
        member: dict[str, Any] = {
            "user": self._user(user_id),
            "roles": roles,
            "joined_at": guild.members.get(user_id, guild.joined),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if permissions:
            admin = user_id in (self.bot_user_id, guild.owner_id)
            member["permissions"] = str(_ALL_PERMISSIONS if admin else _EVERYONE_PERMISSIONS)
        return member

    def _channel_payload(self, channel: _Channel) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "last_message_id": None
            if channel.last_message_id is None
            else str(channel.last_message_id),
            "flags": 0,
        }
        if channel.type == _DM:
            assert channel.recipient_id is not None
            payload["recipients"] = [self._user(channel.recipient_id)]
            return payload
        payload.update(
            guild_id=str(channel.guild_id),
            name=channel.name,
            rate_limit_per_user=0,
        )
        if channel.is_thread:
            payload.update(
                parent_id=str(channel.parent_id),
                owner_id=str(channel.owner_id),
                message_count=0,
                member_count=1,
                total_message_sent=0,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": channel.created,
                    "locked": False,
                    "invitable": True,
                    "create_timestamp": channel.created,
                },
            )
        else:
            payload.update(
                position=channel.position,
                permission_overwrites=[],
                nsfw=False,
                topic=None,
                parent_id=None,
            )
        return payload

    def _guild_payload(self, guild: _Guild) -> dict[str, Any]:
        channels = [self._channels[c] for c in guild.channel_ids if c in self._channels]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": str(guild.id),
                    "name": "@everyone",
                    "permissions": str(_EVERYONE_PERMISSIONS),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(guild.bot_role_id),
                    "name": self.bot_name,
                    "permissions": str(_ADMINISTRATOR | _EVERYONE_PERMISSIONS),
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": True,
                    "mentionable": False,
                    "flags": 0,
                    "tags": {"bot_id": str(self.bot_user_id)},
                },
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            # Gateway-only fields of GUILD_CREATE:
            "joined_at": guild.joined,
            "large": False,
            "unavailable": False,
            "member_count": len(guild.members),
            "members": [self._member(guild, uid) for uid in guild.members],
            "channels": [self._channel_payload(c) for c in channels if not c.is_thread],
            "threads": [self._channel_payload(c) for c in channels if c.is_thread],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_payload(
        self,
        channel_id: int,
        guild_id: int | None,
        author_id: int,
        content: str,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build and store a message; callers hold ``self._state``."""
        mid = self.new_id()
        mentions: list[dict[str, Any]] = []
        guild = self._guilds.get(guild_id) if guild_id is not None else None
        for raw in dict.fromkeys(_MENTION.findall(content)):
            uid = int(raw)
            if uid in self._users:
                user = self._user(uid)
                if guild is not None and uid in guild.members:
                    user["member"] = {
                        k: v for k, v in self._member(guild, uid).items() if k != "user"
                    }
                mentions.append(user)
        payload: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self._user(author_id),
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            if guild is not None and "webhook_id" not in (extra or {}):
                member = self._member(guild, author_id)
                del member["user"]
                payload["member"] = member
        payload.update(extra or {})
        self._messages[mid] = payload
        if len(self._messages) > _MAX_STORED_MESSAGES:
            self._messages.popitem(last=False)
        channel = self._channels.get(channel_id)
        if channel is not None:
            channel.last_message_id = mid
        return payload

    def _interaction_payload(
        self,
        itype: int,
        channel_id: int,
        user_id: int | None,
        data: dict[str, Any],
        *,
        message: dict[str, Any] | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        uid = self.user_id if user_id is None else user_id
        channel = self._channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        gid = channel.guild_id
        iid = self.new_id()
        token = secrets.token_urlsafe(48)
        self._interactions[iid] = _Interaction(
            id=iid,
            token=token,
            type=itype,
            channel_id=channel_id,
            guild_id=gid,
            user_id=uid,
            message_id=None if message is None else int(message["id"]),
        )
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self._channel_payload(channel),
            "locale": locale,
            "app_permissions": str(_ALL_PERMISSIONS),
            "entitlements": [],
            "attachment_size_limit": 26_214_400,
        }
        if gid is not None:
            guild = self._guilds[gid]
            guild.members.setdefault(uid, _now_iso())
            payload.update(
                guild_id=str(gid),
                guild={"id": str(gid), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=self._member(guild, uid, permissions=True),
                authorizing_integration_owners={"0": str(gid)},
                context=0,
            )
        else:
            payload.update(
                user=self._user(uid),
                authorizing_integration_owners={"1": str(uid)},
                context=1,
            )
        if message is not None:
            payload["message"] = message
        return payload

    # ------------------------------------------------------------ app commands
    def _command_id(self, name: str) -> int:
        with self._state:
            if name not in self._command_ids:
                self._command_ids[name] = self.new_id()
            return self._command_ids[name]

    def _find_command(
        self, name: str, channel_guild: int | None, explicit_guild: int | None
    ) -> tuple[dict[str, Any] | None, int | None]:
        if explicit_guild is not None:
            found = next(
                (c for c in self._commands.get(explicit_guild, []) if c["name"] == name), None
            )
            return found, explicit_guild
        if channel_guild is not None:
            found = next(
                (c for c in self._commands.get(channel_guild, []) if c["name"] == name), None
            )
            if found is not None:
                return found, channel_guild
        return next((c for c in self._commands.get(None, []) if c["name"] == name), None), None

    def _stored_command(self, scope: int | None, body: Mapping[str, Any]) -> dict[str, Any]:
        command = dict(body)
        command.update(
            id=str(self._command_id(str(body.get("name", "")))),
            application_id=str(self.application_id),
            version=str(self.new_id()),
            type=body.get("type", 1),
            description=body.get("description", ""),
            default_member_permissions=body.get("default_member_permissions"),
        )
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    def _find_component_message(
        self, custom_id: str, channel_id: int | None, message_id: int | None
    ) -> dict[str, Any]:
        if message_id is not None:
            message = self._messages.get(message_id)
            if message is None:
                cid = self.channel_id if channel_id is None else channel_id
                message = self._message_payload(cid, self._guild_of(cid), self.bot_user_id, "")
            elif not _has_custom_id(message.get("components", []), custom_id):
                # As in a Discord client: only a component the message shows now.
                raise ValueError(
                    f"message {message_id} has no component with custom_id={custom_id!r} "
                    "(never had, or an edit removed it)"
                )
            return message
        for message in reversed(self._messages.values()):
            if channel_id is not None and message["channel_id"] != str(channel_id):
                continue
            if message["author"]["id"] == str(self.bot_user_id) and _has_custom_id(
                message.get("components", []), custom_id
            ):
                return message
        raise ValueError(f"no message from the bot has a component with custom_id={custom_id!r}")

    def _guild_of(self, channel_id: int) -> int | None:
        channel = self._channels.get(channel_id)
        return None if channel is None else channel.guild_id


def _has_custom_id(components: Iterable[Any], custom_id: str) -> bool:
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == custom_id:
            return True
        if _has_custom_id(component.get("components", []), custom_id):
            return True
        accessory = component.get("accessory")
        if isinstance(accessory, dict) and _has_custom_id([accessory], custom_id):
            return True
    return False
