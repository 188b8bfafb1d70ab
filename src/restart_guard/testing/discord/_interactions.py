"""The Discord stand-in's app commands, interaction responses and followup webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._model import (
    _Call,
    _error,
    _Handler,
    _Interaction,
    _json_response,
    _no_content,
)
from ._rest import _files_mark, _Rest


class _Interactions(_Rest):
    """App commands, interaction callbacks and the webhooks of interaction followups."""

    def _route_list(self) -> list[tuple[str, str, _Handler]]:
        return [
            *super()._route_list(),
            # Global and guild commands: the same handlers, told apart by _scope().
            *(
                (method, f"/applications/{{application_id}}{scope}/commands", handler)
                for scope in ("", "/guilds/{guild_id}")
                for method, handler in (
                    ("GET", self._get_commands),
                    ("PUT", self._put_commands),
                    ("POST", self._post_command),
                )
            ),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._followup),
            *(
                (method, "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", handler)
                for method, handler in (
                    ("GET", self._get_webhook_message),
                    ("PATCH", self._edit_webhook_message),
                    ("DELETE", self._delete_webhook_message),
                )
            ),
        ]

    @staticmethod
    def _scope(call: _Call) -> int | None:
        raw = call.path.get("guild_id")
        return None if raw is None else int(raw)

    async def _get_commands(self, call: _Call) -> web.StreamResponse:
        with self._state:
            return _json_response(list(self._commands.get(self._scope(call), [])))

    async def _put_commands(self, call: _Call) -> web.StreamResponse:
        scope = self._scope(call)
        body = call.body if isinstance(call.body, list) else []
        with self._state:
            stored = [self._stored_command(scope, c) for c in body]
            self._commands[scope] = stored
        return _json_response(stored)

    async def _post_command(self, call: _Call) -> web.StreamResponse:
        scope = self._scope(call)
        with self._state:
            command = self._stored_command(scope, call.json)
            commands = [c for c in self._commands.get(scope, []) if c["name"] != command["name"]]
            self._commands[scope] = [*commands, command]
        return _json_response(command, 201)

    # interactions & webhooks
    async def _callback(self, call: _Call) -> web.StreamResponse:
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return _error(404, 10062, "Unknown interaction")
        if interaction.responded:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        interaction.responded = True
        body = call.json
        rtype = int(body.get("type", 0))
        data: dict[str, Any] = body.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & 64)
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": ephemeral,
            },
            "resource": {"type": rtype},
        }
        marks = {
            "interaction_response": True,
            "interaction_id": str(interaction.id),
            "response_type": rtype,
        }
        if rtype in (4, 5):
            extra: dict[str, Any] = {
                "type": 20 if interaction.type == 2 else 0,
                "application_id": str(self.application_id),
                "interaction_metadata": {
                    "id": str(interaction.id),
                    "type": interaction.type,
                    "user": self._user(interaction.user_id),
                    "authorizing_integration_owners": {},
                },
            }
            if rtype == 5:
                # A deferred response shows "thinking" until it is edited.
                extra["flags"] = 128 | (64 if ephemeral else 0)
                message = self._post(interaction.channel_id, {}, [], extra)
            else:
                message = self._post_recorded(
                    interaction.channel_id, data, call, extra, ephemeral=ephemeral, **marks
                )
            interaction.original_id = int(message["id"])
            result["interaction"]["response_message_id"] = message["id"]
            result["resource"]["message"] = message
        elif rtype == 7 and interaction.message_id is not None:
            with self._state:
                target = self._messages.get(interaction.message_id)
            if target is not None:
                updated = self._edit(target, data)
                self._record_sent(interaction.channel_id, updated, data, edit=True, **marks)
                result["interaction"]["response_message_id"] = updated["id"]
                result["resource"]["message"] = updated
        if "with_response" not in call.query or call.query["with_response"] in ("0", "false"):
            return _no_content()
        return _json_response(result)

    async def _followup(self, call: _Call) -> web.StreamResponse:
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        body = call.json
        extra = {"webhook_id": str(self.application_id), "application_id": str(self.application_id)}
        message = self._post_recorded(
            interaction.channel_id,
            body,
            call,
            extra,
            followup=True,
            interaction_id=str(interaction.id),
        )
        if call.query.get("wait") in ("1", "true", "True"):
            return _json_response(message)
        return _no_content()

    def _webhook_message(
        self, call: _Call
    ) -> tuple[_Interaction, dict[str, Any]] | web.StreamResponse:
        """The interaction and message a webhook-message path names, or Discord's 404."""
        interaction = self._lookup_interaction(call.path)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        raw = call.path["message_id"]
        mid = (
            interaction.original_id if raw == "@original" else (int(raw) if raw.isdigit() else None)
        )
        with self._state:
            message = None if mid is None else self._messages.get(mid)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return interaction, message

    async def _get_webhook_message(self, call: _Call) -> web.StreamResponse:
        found = self._webhook_message(call)
        if isinstance(found, web.StreamResponse):
            return found
        return _json_response(found[1])

    async def _edit_webhook_message(self, call: _Call) -> web.StreamResponse:
        found = self._webhook_message(call)
        if isinstance(found, web.StreamResponse):
            return found
        interaction, message = found
        body = dict(call.json)
        if "flags" not in body and int(message.get("flags", 0)) & 128:
            # Filling in a deferred response clears "thinking" but keeps "ephemeral".
            body["flags"] = int(message["flags"]) & ~128
        updated = self._edit(message, body)
        self._record_sent(
            interaction.channel_id,
            updated,
            call.json,
            edit=True,
            interaction_id=str(interaction.id),
            **_files_mark(call),
        )
        return _json_response(updated)

    async def _delete_webhook_message(self, call: _Call) -> web.StreamResponse:
        found = self._webhook_message(call)
        if isinstance(found, web.StreamResponse):
            return found
        with self._state:
            self._messages.pop(int(found[1]["id"]), None)
        return _no_content()
