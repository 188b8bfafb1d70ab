"""The Discord stand-in's REST API: routing, users, channels, messages, guilds."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .._standin import SentMessage
from ._controls import _Controls
from ._model import (
    _APPLICATION_FLAGS,
    _NONCE_WINDOW,
    _PRIVATE_THREAD,
    _Call,
    _error,
    _Handler,
    _Interaction,
    _json_response,
    _log,
    _no_content,
    _now_iso,
    _snowflake_age,
)


class _Rest(_Controls):
    """REST under ``/api/v10``: routing, auth, injected failures, users, channels, messages."""

    _table: list[tuple[str, str, re.Pattern[str], _Handler]]

    def _routes(self, app: web.Application) -> None:
        self._table = []
        for method, template, handler in self._route_list():
            regex = re.compile(re.sub(r"\{(\w+)\}", _route_param, template))
            self._table.append((method, template, regex, handler))
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", r"/api/v{version:\d+}/{path:.*}", self._rest)
        app.router.add_route("*", "/api/{path:.*}", self._rest)

    # -------------------------------------------------------------------- REST
    def _route_list(self) -> list[tuple[str, str, _Handler]]:
        """``(method, template, handler)`` of every known route, matched in this order."""
        return [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("GET", "/channels/{channel_id}/messages/pins", self._get_pins),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("POST", "/channels/{channel_id}/threads", self._start_thread),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._start_thread),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await _read_body(request)
        name, params = f"{request.method} {path}", {}
        handler: _Handler = self._fallback
        for method, template, regex, candidate in self._table:
            match = regex.fullmatch(path) if method == request.method else None
            if match is not None:
                name, params, handler = f"{method} {template}", match.groupdict(), candidate
                break
        recorded: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if isinstance(body, list):
            recorded["body"] = body
        recorded.update(params)
        if request.query:
            recorded["query"] = dict(request.query)
        if files:
            recorded["files"] = files
        self._record_call(name, recorded)

        channel = re.match(r"/channels/(\d+)", path)
        chat = channel.group(1) if channel else self._interaction_chat(params)
        call = _Call(name=name, path=params, query=request.query, body=body, files=files, chat=chat)

        # Interaction callbacks and webhooks authenticate by their token, not the bot's.
        webhook_call = path.startswith(("/interactions/", "/webhooks/"))
        authorization = request.headers.get("Authorization")
        if not webhook_call and self.token is not None and authorization != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        if channel is not None:
            cid = int(channel.group(1))
            with self._state:
                if cid in self._deleted:
                    return _error(404, 10003, "Unknown Channel")
                persistent = self._channel_failures.get(cid)
            if persistent is not None:
                return _json_response(persistent[1], persistent[0])
        failure = self._take_failure(name, chat)
        if failure is not None:
            return _json_response(failure.body, failure.status, failure.headers)
        try:
            return await handler(call)
        except Exception as exc:
            # A 500 would make discord.py retry for ~25 s; a 400 surfaces at once.
            _log.exception("stand-in failed to answer %s", name)
            return _error(400, 0, f"restart-guard Discord stand-in failed: {exc!r}")

    def _interaction_chat(self, params: Mapping[str, str]) -> str | None:
        interaction = self._lookup_interaction(params)
        return None if interaction is None else str(interaction.channel_id)

    def _lookup_interaction(self, params: Mapping[str, str]) -> _Interaction | None:
        token = params.get("interaction_token") or params.get("webhook_token")
        if token is None:
            return None
        with self._state:
            raw_id = params.get("interaction_id")
            if raw_id is not None:
                found = self._interactions.get(int(raw_id)) if raw_id.isdigit() else None
                return found if found is not None and found.token == token else None
            return next((i for i in self._interactions.values() if i.token == token), None)

    async def _fallback(self, call: _Call) -> web.StreamResponse:
        method = call.name.split(" ", 1)[0]
        if method in ("PUT", "DELETE"):
            return _no_content()
        last = call.name.rsplit("/", 1)[-1]
        if method == "GET" and not last.isdigit() and not last.startswith("@"):
            return _json_response([])
        return _json_response({})

    # users & application
    async def _get_me(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {**self._user(self.bot_user_id), "verified": True, "mfa_enabled": False}
        )

    async def _get_application(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_name,
                "icon": None,
                "description": "",
                "summary": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": self._user(self.user_id),
                "team": None,
                "flags": _APPLICATION_FLAGS,
                "bot": self._user(self.bot_user_id),
                "rpc_origins": [],
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            }
        )

    async def _get_gateway(self, call: _Call) -> web.StreamResponse:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, call: _Call) -> web.StreamResponse:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_user(self, call: _Call) -> web.StreamResponse:
        raw = call.path["user_id"]
        with self._state:
            if not raw.isdigit() or int(raw) not in self._users:
                return _error(404, 10013, "Unknown User")
            return _json_response(self._user(int(raw)))

    async def _create_dm(self, call: _Call) -> web.StreamResponse:
        recipient = call.json.get("recipient_id")
        if recipient is None:
            return _error(400, 50035, "Invalid Form Body")
        cid = self.dm_channel_id(int(recipient))
        with self._state:
            return _json_response(self._channel_payload(self._channels[cid]))

    # channels & messages
    async def _get_channel(self, call: _Call) -> web.StreamResponse:
        with self._state:
            channel = self._channels.get(int(call.path["channel_id"]))
            if channel is None:
                return _error(404, 10003, "Unknown Channel")
            return _json_response(self._channel_payload(channel))

    def _post(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[dict[str, Any]],
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store and broadcast a message from the bot; callers record it."""
        with self._state:
            fields: dict[str, Any] = {
                k: body[k] for k in ("embeds", "components", "tts", "nonce", "poll") if k in body
            }
            if body.get("flags"):
                fields["flags"] = int(body["flags"])
            reference = body.get("message_reference")
            if reference:
                fields["message_reference"] = {
                    "type": 0,
                    "channel_id": str(channel_id),
                    **reference,
                }
                referenced = self._messages.get(int(reference.get("message_id", 0)))
                if referenced is not None:
                    fields["referenced_message"] = referenced
                fields["type"] = 19
            if files:
                fields["attachments"] = [
                    {
                        "id": str(self.new_id()),
                        "filename": f["filename"],
                        "size": f["size"],
                        "url": f"{self.url}/attachments/{channel_id}/{f['filename']}",
                        "proxy_url": f"{self.url}/attachments/{channel_id}/{f['filename']}",
                        "content_type": f.get("content_type"),
                    }
                    for f in files
                ]
            fields.update(extra or {})
            payload = self._message_payload(
                channel_id,
                self._guild_of(channel_id),
                self.bot_user_id,
                str(body.get("content") or ""),
                fields,
            )
        if self.echo_own_messages and not int(payload.get("flags", 0)) & 64:
            self._broadcast_message(payload)
        return payload

    def _post_recorded(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        call: _Call,
        extra: Mapping[str, Any] | None = None,
        **marks: Any,
    ) -> dict[str, Any]:
        """:meth:`_post` ``body`` with ``call``'s files, recorded in :attr:`sent` with ``marks``."""
        message = self._post(channel_id, body, call.files, extra)
        self._record_sent(channel_id, message, body, **marks, **_files_mark(call))
        return message

    def _record_sent(
        self, channel_id: int, message: Mapping[str, Any], body: Mapping[str, Any], **marks: Any
    ) -> None:
        """Record ``message``, posted or edited from request ``body``, in :attr:`sent`."""
        mid = message["id"]
        text = message["content"]
        with self._state:
            channel = self._channels.get(channel_id)
        params: dict[str, Any] = dict(body)
        params["channel_id"] = str(channel_id)
        if channel is not None and channel.guild_id is not None:
            params["guild_id"] = str(channel.guild_id)
        thread = None
        if channel is not None and channel.is_thread:
            thread = str(channel_id)
            params["parent_id"] = str(channel.parent_id)
        params["message_id"] = mid
        params.update(marks)
        reference = body.get("message_reference")
        reply_to = None
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            reply_to = str(reference["message_id"])
        self._record(
            SentMessage(
                chat=str(channel_id),
                thread=thread,
                text=text,
                params=params,
                reply_to=reply_to,
                mentions=self._notified(text, body.get("allowed_mentions"), reply_to),
                id=str(mid),
            )
        )

    async def _create_message(self, call: _Call) -> web.StreamResponse:
        channel_id = int(call.path["channel_id"])
        body = call.json
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            # As Discord: a nonce this author used in this channel a few minutes ago
            # answers with that message; no second one is created.
            with self._state:
                for earlier in reversed(self._messages.values()):
                    if (
                        earlier["channel_id"] == str(channel_id)
                        and earlier.get("nonce") == body["nonce"]
                        and earlier["author"]["id"] == str(self.bot_user_id)
                        and _snowflake_age(int(earlier["id"])) < _NONCE_WINDOW
                    ):
                        return _json_response(earlier)
        reference = body.get("message_reference")
        if isinstance(reference, dict) and not self._references(channel_id, reference):
            if reference.get("fail_if_not_exists", True):
                # As Discord: a reply to a message that is not there is refused...
                return _json_response(
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": {
                            "message_reference": {
                                "_errors": [
                                    {
                                        "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                        "message": "Unknown message",
                                    }
                                ]
                            }
                        },
                    },
                    400,
                )
            body = {k: v for k, v in body.items() if k != "message_reference"}  # ...or posted plain
        return _json_response(self._post_recorded(channel_id, body, call))

    def _notified(self, text: str, allowed: Any, reply_to: str | None) -> tuple[str, ...]:
        """Who Discord pings: allowed ``<@id>`` mentions, and the replied-to author."""
        users = list(_notified_users(text, allowed))
        replied_user = not isinstance(allowed, dict) or allowed.get("replied_user", False)
        if reply_to is not None and replied_user:
            with self._state:
                message = self._messages.get(int(reply_to))
            author = None if message is None else message["author"]["id"]
            if author is not None and author != str(self.bot_user_id):
                users.append(author)
        return tuple(dict.fromkeys(users))

    def _references(self, channel_id: int, reference: Mapping[str, Any]) -> bool:
        """Whether ``reference`` points at a message this stand-in has, in ``channel_id``."""
        try:
            message_id = int(reference.get("message_id") or 0)
        except (TypeError, ValueError):
            return False
        with self._state:
            message = self._messages.get(message_id)
        return message is not None and message["channel_id"] == str(channel_id)

    async def _get_messages(self, call: _Call) -> web.StreamResponse:
        channel_id = call.path["channel_id"]
        limit = int(call.query.get("limit", "50"))
        before = int(call.query.get("before", "0") or 0)
        after = int(call.query.get("after", "0") or 0)
        with self._state:
            found = [
                m
                for m in reversed(self._messages.values())
                if m["channel_id"] == channel_id
                and (not before or int(m["id"]) < before)
                and (not after or int(m["id"]) > after)
            ]
        return _json_response(found[:limit])

    async def _get_pins(self, call: _Call) -> web.StreamResponse:
        return _json_response({"items": [], "has_more": False})

    async def _get_message(self, call: _Call) -> web.StreamResponse:
        with self._state:
            message = self._messages.get(int(call.path["message_id"]))
            if message is None or message["channel_id"] != call.path["channel_id"]:
                return _error(404, 10008, "Unknown Message")
            return _json_response(message)

    def _edit(self, message: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        with self._state:
            for key in ("content", "embeds", "components", "attachments", "flags"):
                if key in body and body[key] is not None:
                    message[key] = body[key]
            message["edited_timestamp"] = _now_iso()
            updated = dict(message)
        gid = int(updated["guild_id"]) if "guild_id" in updated else None
        self._broadcast("MESSAGE_UPDATE", updated, gid, self._visible_message)
        return updated

    async def _edit_message(self, call: _Call) -> web.StreamResponse:
        with self._state:
            message = self._messages.get(int(call.path["message_id"]))
        if message is None or message["channel_id"] != call.path["channel_id"]:
            return _error(404, 10008, "Unknown Message")
        if message["author"]["id"] != str(self.bot_user_id) and "content" in call.json:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        updated = self._edit(message, call.json)
        self._record_sent(int(call.path["channel_id"]), updated, call.json, edit=True)
        return _json_response(updated)

    async def _delete_message(self, call: _Call) -> web.StreamResponse:
        mid = int(call.path["message_id"])
        with self._state:
            message = self._messages.pop(mid, None)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        data: dict[str, Any] = {
            k: message[k] for k in ("id", "channel_id", "guild_id") if k in message
        }
        gid = int(message["guild_id"]) if "guild_id" in message else None
        self._broadcast("MESSAGE_DELETE", data, gid)
        return _no_content()

    async def _typing(self, call: _Call) -> web.StreamResponse:
        return _no_content()

    async def _start_thread(self, call: _Call) -> web.StreamResponse:
        parent_id = int(call.path["channel_id"])
        with self._state:
            parent = self._channels.get(parent_id)
            if parent is None or parent.guild_id is None or parent.is_thread:
                return _error(400, 50024, "Cannot execute action on this channel type")
            raw_mid = call.path.get("message_id")
            tid = int(raw_mid) if raw_mid is not None else self.new_id()
            private = call.json.get("type") == _PRIVATE_THREAD
        payload = self._create_thread(
            parent_id,
            tid,
            str(call.json.get("name") or "thread"),
            private=private,
            owner_id=self.bot_user_id,
        )
        return _json_response(payload)

    # guilds
    async def _get_guild(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            payload = self._guild_payload(guild)
        for key in ("members", "channels", "threads", "joined_at", "large", "member_count"):
            payload.pop(key, None)
        return _json_response(payload)

    async def _get_guild_channels(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            channels = [
                self._channel_payload(self._channels[c])
                for c in guild.channel_ids
                if c in self._channels and not self._channels[c].is_thread
            ]
        return _json_response(channels)

    async def _get_member(self, call: _Call) -> web.StreamResponse:
        with self._state:
            guild = self._guilds.get(int(call.path["guild_id"]))
            uid = int(call.path["user_id"]) if call.path["user_id"].isdigit() else -1
            if guild is None:
                return _error(404, 10004, "Unknown Guild")
            if uid not in guild.members:
                return _error(404, 10007, "Unknown Member")
            return _json_response(self._member(guild, uid))


# -------------------------------------------------------------------------- helpers


async def _read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        body: Any = {}
        files: list[dict[str, Any]] = []
        for key, value in form.items():
            if isinstance(value, web.FileField):
                content = value.file.read()
                files.append(
                    {
                        "field": key,
                        "filename": value.filename,
                        "size": len(content),
                        "content_type": value.content_type,
                    }
                )
            elif key == "payload_json":
                body = json.loads(value if isinstance(value, str) else value.decode())
        return body, files
    if not request.can_read_body:
        return None, []
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        return raw.decode(errors="replace"), []


def _route_param(match: re.Match[str]) -> str:
    # Ids are snowflakes (or "@original"/"@me"), so ".../messages/pins" is not a message.
    name = match.group(1)
    pattern = r"\d+|@[a-z]+" if name.endswith("_id") else r"[^/]+"
    return f"(?P<{name}>{pattern})"


def _files_mark(call: _Call) -> dict[str, Any]:
    return {"files": call.files} if call.files else {}


_USER_MENTION = re.compile(r"<@!?(\d+)>")


def _notified_users(text: str, allowed: Any) -> tuple[str, ...]:
    """The users ``<@id>`` in ``text`` that Discord notifies, given ``allowed_mentions``."""
    users = tuple(dict.fromkeys(_USER_MENTION.findall(text)))
    if not isinstance(allowed, dict):
        return users  # no allowed_mentions: every mention pings
    if "users" in (allowed.get("parse") or ()):
        return users
    listed = {str(u) for u in allowed.get("users") or ()}
    return tuple(u for u in users if u in listed)
