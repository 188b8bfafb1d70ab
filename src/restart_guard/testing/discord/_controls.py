"""The Discord stand-in's test controls: add guilds and channels, inject failures and events."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._standin import Failure
from ._gateway import _Gateway
from ._model import (
    _DM,
    _PRIVATE_THREAD,
    _PUBLIC_THREAD,
    _TEXT,
    CREATE_MESSAGE,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_THREAD_ID,
    _Channel,
    _Guild,
    _now_iso,
)


class _Controls(_Gateway):
    """What a test changes on the platform: guilds, channels, failures, injected events."""

    # -------------------------------------------------------------- configuration
    def _add_default_guild(self) -> None:
        self.add_guild(DEFAULT_GUILD_ID, "restart-guard test guild")
        self.add_channel(DEFAULT_GUILD_ID, DEFAULT_CHANNEL_ID, "general")
        self.add_thread(DEFAULT_CHANNEL_ID, DEFAULT_THREAD_ID, "a thread")

    def add_guild(self, guild_id: int | None = None, name: str = "guild") -> int:
        """Add a guild with the bot and the default user as members; return its id.

        Connected clients get a GUILD_CREATE.
        """
        gid = self.new_id() if guild_id is None else guild_id
        with self._state:
            guild = _Guild(id=gid, name=name, owner_id=self.user_id, bot_role_id=self.new_id())
            guild.members[self.bot_user_id] = _now_iso()
            guild.members[self.user_id] = _now_iso()
            self._guilds[gid] = guild
            payload = self._guild_payload(guild)
        # Without "unavailable" discord.py takes it for a join (on_guild_join),
        # with it for an outage ending (on_guild_available).
        del payload["unavailable"]
        self._in_loop(self._broadcast, "GUILD_CREATE", payload, gid, self._guild_create_for)
        return gid

    def add_channel(
        self, guild_id: int, channel_id: int | None = None, name: str = "channel"
    ) -> int:
        """Add a text channel to a guild; return its id. Connected clients get CHANNEL_CREATE."""
        cid = self.new_id() if channel_id is None else channel_id
        with self._state:
            guild = self._guilds[guild_id]
            channel = _Channel(
                id=cid, type=_TEXT, name=name, guild_id=guild_id, position=len(guild.channel_ids)
            )
            self._channels[cid] = channel
            self._deleted.discard(cid)
            guild.channel_ids.append(cid)
            payload = self._channel_payload(channel)
        self._in_loop(self._broadcast, "CHANNEL_CREATE", payload, guild_id)
        return cid

    def add_thread(
        self,
        parent_id: int,
        thread_id: int | None = None,
        name: str = "thread",
        *,
        private: bool = False,
        owner_id: int | None = None,
    ) -> int:
        """Add a thread under a text channel; return its id. Connected clients get THREAD_CREATE."""
        tid = self.new_id() if thread_id is None else thread_id
        self._create_thread(
            parent_id, tid, name, private=private, owner_id=owner_id or self.user_id
        )
        return tid

    def _create_thread(
        self, parent_id: int, tid: int, name: str, *, private: bool, owner_id: int
    ) -> dict[str, Any]:
        with self._state:
            parent = self._channels[parent_id]
            assert parent.guild_id is not None, "threads live in guild channels"
            thread = _Channel(
                id=tid,
                type=_PRIVATE_THREAD if private else _PUBLIC_THREAD,
                name=name,
                guild_id=parent.guild_id,
                parent_id=parent_id,
                owner_id=owner_id,
            )
            self._channels[tid] = thread
            self._deleted.discard(tid)
            self._guilds[parent.guild_id].channel_ids.append(tid)
            payload = self._channel_payload(thread)
        self._in_loop(
            self._broadcast, "THREAD_CREATE", {**payload, "newly_created": True}, parent.guild_id
        )
        return payload

    def dm_channel_id(self, user_id: int | None = None) -> int:
        """The id of the DM channel between the bot and ``user_id`` (created on first use)."""
        uid = self.user_id if user_id is None else user_id
        with self._state:
            if uid not in self._users:
                self.add_user(uid)
            cid = self._dm_channels.get(uid)
            if cid is None:
                cid = self.new_id()
                self._dm_channels[uid] = cid
            # Also after delete_channel: the id stays, calls on it answer 404.
            self._channels.setdefault(cid, _Channel(id=cid, type=_DM, name="", recipient_id=uid))
            return cid

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread: every call on it answers 404 Unknown Channel (10003).

        Deleting a channel deletes its threads too, as on Discord. Connected
        clients get CHANNEL_DELETE (discord.py drops the channel's threads
        itself) or THREAD_DELETE. ``add_channel`` with the same id brings the
        channel back, not its threads.
        """
        with self._state:
            self._deleted.add(channel_id)
            channel = self._channels.pop(channel_id, None)
            if channel is None or channel.guild_id is None:
                return
            guild = self._guilds.get(channel.guild_id)
            doomed = [channel_id]
            if not channel.is_thread:
                threads = [c.id for c in self._channels.values() if c.parent_id == channel_id]
                for thread_id in threads:
                    del self._channels[thread_id]
                    self._deleted.add(thread_id)
                doomed.extend(threads)
            if guild is not None:
                guild.channel_ids = [c for c in guild.channel_ids if c not in doomed]
            payload = self._channel_payload(channel)
        event = "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE"
        self._in_loop(self._broadcast, event, payload, channel.guild_id)

    # ---------------------------------------------------------------- failures
    def fail_channel(
        self,
        channel_id: int,
        status: int = 403,
        code: int = 50001,
        message: str = "Missing Access",
        *,
        times: int | None = None,
    ) -> None:
        """Make calls on a channel fail with Discord's error body ``{"message", "code"}``.

        ``times=None``: every call on ``/channels/{channel_id}/...`` fails until
        :meth:`restore_channel`. ``times=N``: the next N message posts to it
        fail. 403 makes discord.py raise ``Forbidden``, 404 ``NotFound``.
        """
        body = {"message": message, "code": code}
        if times is None:
            with self._state:
                self._channel_failures[channel_id] = (status, body)
        else:
            self.fail(Failure(CREATE_MESSAGE, status, body, chat=str(channel_id), times=times))

    def restore_channel(self, channel_id: int) -> None:
        """Undo :meth:`fail_channel` (``times=None``) for a channel."""
        with self._state:
            self._channel_failures.pop(channel_id, None)

    def rate_limit(
        self,
        channel_id: int | None = None,
        retry_after: float = 1.0,
        times: int = 1,
        *,
        method: str = CREATE_MESSAGE,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``times`` matching calls with a 429 shaped like Discord's.

        Body ``{"message": "You are being rate limited.", "retry_after": N,
        "global": false}`` with ``Retry-After``, ``X-RateLimit-*`` and ``Via``
        headers (discord.py treats a 429 without ``Via`` as a Cloudflare ban and
        raises instead of retrying). discord.py sleeps ``retry_after`` and
        retries. ``channel_id`` None: any channel.
        """
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "restart-guard-stand-in",
            "X-RateLimit-Scope": "global" if is_global else "user",
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
        }
        chat = None if channel_id is None else str(channel_id)
        self.fail(Failure(method, 429, body, chat=chat, times=times, headers=headers))

    def fail_next(
        self,
        status: int = 500,
        code: int = 0,
        message: str = "500: Internal Server Error",
        *,
        method: str = CREATE_MESSAGE,
        channel_id: int | None = None,
        times: int = 1,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Fail the next ``times`` calls named ``method`` (on ``channel_id``, or any).

        ``method`` is a call name (:data:`CREATE_MESSAGE`, :data:`INTERACTION_CALLBACK`
        ...). The body is ``{"message", "code"}`` unless ``body`` is given. Mind
        that discord.py retries 500/502/504/524 by itself (after 1, 3, 5 ... s).
        For interaction and webhook calls ``channel_id`` is the interaction's channel.
        """
        self.fail(
            Failure(
                method,
                status,
                body if body is not None else {"message": message, "code": code},
                chat=None if channel_id is None else str(channel_id),
                times=times,
                headers=dict(headers or {}),
            )
        )

    # ---------------------------------------------------------------- injection
    def inject_message(
        self,
        channel_id: int,
        content: str,
        *,
        author_id: int | None = None,
        author_name: str | None = None,
        author_bot: bool = False,
        guild_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Send MESSAGE_CREATE from a user to every connected client; return the message id.

        ``guild_id`` defaults to the channel's guild (a DM channel has none);
        a channel the stand-in does not know needs ``guild_id`` (it is then
        delivered as a guild message discord.py cannot resolve to a cached
        channel). The author becomes a guild member. ``<@id>`` mentions are
        resolved. Only clients connected right now get it, as on Discord:
        call :meth:`wait_for_identify` first. Thread-safe.
        """
        uid = self.user_id if author_id is None else author_id
        with self._state:
            channel = self._channels.get(channel_id)
            gid = guild_id if guild_id is not None else (channel.guild_id if channel else None)
            if channel is None and gid is None:
                raise ValueError(f"unknown channel {channel_id}: add it first or pass guild_id")
            known = self._users.get(uid)
            if known is None or author_name is not None or known["bot"] != author_bot:
                name = author_name or (None if known is None else str(known["username"]))
                self.add_user(uid, name, bot=author_bot)
            if gid is not None and gid in self._guilds:
                self._guilds[gid].members.setdefault(uid, _now_iso())
            extra: dict[str, Any] = {}
            if reply_to is not None:
                extra["message_reference"] = {
                    "type": 0,
                    "message_id": str(reply_to),
                    "channel_id": str(channel_id),
                    **({"guild_id": str(gid)} if gid is not None else {}),
                }
                referenced = self._messages.get(reply_to)
                if referenced is not None:
                    extra["referenced_message"] = referenced
                extra["type"] = 19
            payload = self._message_payload(channel_id, gid, uid, content, extra)
        self._in_loop(self._broadcast_message, payload)
        return int(payload["id"])

    def inject_dm(self, user_id: int | None, content: str) -> int:
        """Send a direct message from ``user_id`` (None: the default user); return its id.

        The DM channel is :meth:`dm_channel_id` of that user.
        """
        uid = self.user_id if user_id is None else user_id
        return self.inject_message(self.dm_channel_id(uid), content, author_id=uid)

    def inject_slash_command(
        self,
        name: str,
        channel_id: int | None = None,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        user_id: int | None = None,
        command_guild_id: int | None = None,
        resolved: Mapping[str, Any] | None = None,
        locale: str = "en-US",
    ) -> int:
        """Send INTERACTION_CREATE for a chat input (slash) command; return the interaction id.

        ``name`` is the command's name, with subcommands separated by spaces
        (``"config set"``). ``options`` maps option names to str/int/float/bool
        values (typed from the synced command when the bot ran ``tree.sync()``,
        else from the Python type), or is a raw list of option objects (with
        ``resolved`` for users, channels, roles). ``channel_id`` defaults to
        ``channel_id``; a DM channel makes it a DM interaction.
        ``command_guild_id`` marks it a guild command (needed for a command
        registered with ``guild=`` that was never synced); after a guild sync
        it is found automatically.
        """
        parts = name.split()
        cid = self.channel_id if channel_id is None else channel_id
        with self._state:
            channel = self._channels.get(cid)
            gid = channel.guild_id if channel is not None else None
            synced, scope = self._find_command(parts[0], gid, command_guild_id)
            definition: Mapping[str, Any] | None = synced
            for sub in parts[1:]:
                definition = _find_option(definition, sub)
            if options is None:
                built: list[dict[str, Any]] = []
            elif isinstance(options, Mapping):
                built = [_option(k, v, _find_option(definition, k)) for k, v in options.items()]
            else:
                built = [dict(o) for o in options]
            for depth, sub in reversed(list(enumerate(parts[1:], start=1))):
                kind = 1 if depth == len(parts) - 1 else 2
                built = [{"type": kind, "name": sub, "options": built}]
            data: dict[str, Any] = {
                "id": str(synced["id"]) if synced else str(self._command_id(parts[0])),
                "name": parts[0],
                "type": 1,
                "options": built,
            }
            if scope is not None:
                data["guild_id"] = str(scope)
            if resolved is not None:
                data["resolved"] = dict(resolved)
            payload = self._interaction_payload(2, cid, user_id, data, locale=locale)
        self._in_loop(self._broadcast_interaction, payload)
        return int(payload["id"])

    def inject_component(
        self,
        custom_id: str,
        channel_id: int | None = None,
        message_id: int | None = None,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        user_id: int | None = None,
    ) -> int:
        """Send INTERACTION_CREATE for a component click; return the interaction id.

        ``message_id`` None: the newest message the bot posted (in
        ``channel_id``, if given) that has a component with ``custom_id``.
        ``component_type`` 2 is a button, 3 a string select (give ``values``).
        """
        with self._state:
            message = self._find_component_message(custom_id, channel_id, message_id)
            cid = int(message["channel_id"])
            data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
            if values is not None:
                data["values"] = list(values)
            payload = self._interaction_payload(3, cid, user_id, data, message=message)
        self._in_loop(self._broadcast_interaction, payload)
        return int(payload["id"])


def _find_option(definition: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if definition is None:
        return None
    for option in definition.get("options") or []:
        if isinstance(option, dict) and option.get("name") == name:
            return option
    return None


def _option(name: str, value: Any, definition: Mapping[str, Any] | None) -> dict[str, Any]:
    if definition is not None and "type" in definition:
        kind = int(definition["type"])
    elif isinstance(value, bool):
        kind = 5
    elif isinstance(value, int):
        kind = 4
    elif isinstance(value, float):
        kind = 10
    elif isinstance(value, str):
        kind = 3
    else:
        raise TypeError(
            f"option {name!r}: pass str/int/float/bool values, or a raw option list with resolved="
        )
    return {"name": name, "type": kind, "value": value}
