"""The Slack stand-in's Web API: ``auth.test``, ``apps.connections.open``, ``chat.*``."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .._standin import Failure, SentMessage
from ._messages import ApiError, _Messages, check_blocks

# ``<@U123>`` or ``<@U123|name>`` in mrkdwn: the user is notified.
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class _WebApi(_Messages):
    """``{url}/api/<method>``: tokens checked, failures injected, messages recorded."""

    # ---------------------------------------------------------------- failures
    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Make every ``chat.postMessage`` to ``channel`` fail with Slack's ``error``.

        HTTP 200 ``{"ok": false, "error": error}`` — slack_sdk raises
        ``SlackApiError`` with ``e.response["error"] == error``. For the
        lasting conditions: ``channel_not_found``, ``not_in_channel``,
        ``is_archived``, ``account_inactive`` ... Lasts until :meth:`heal_channel`.
        """
        with self._lock:
            self._channel_errors[str(channel)] = error

    def heal_channel(self, channel: str) -> None:
        """Undo :meth:`fail_channel` for ``channel``."""
        with self._lock:
            self._channel_errors.pop(str(channel), None)

    def rate_limit(
        self,
        channel: str | None = None,
        retry_after: int = 1,
        times: int = 1,
        *,
        method: str = "chat.postMessage",
    ) -> None:
        """Answer the next ``times`` matching calls with HTTP 429, like Slack's rate limiter.

        Body ``{"ok": false, "error": "ratelimited"}``, header ``Retry-After:
        retry_after``. ``channel`` None matches any channel. A default
        ``WebClient`` has no retry handler for 429 and raises ``SlackApiError``
        (``e.response.status_code == 429``, ``e.response.headers["Retry-After"]``);
        one built with ``RateLimitErrorRetryHandler`` sleeps and retries.
        """
        self.fail(
            Failure(
                method=method,
                status=429,
                body={"ok": False, "error": "ratelimited"},
                chat=None if channel is None else str(channel),
                times=times,
                headers={"Retry-After": str(retry_after)},
            )
        )

    def fail_next(
        self,
        error: str = "internal_error",
        *,
        method: str = "chat.postMessage",
        channel: str | None = None,
        times: int = 1,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``.

        ``channel`` limits it to calls with that ``channel`` parameter;
        ``status`` and ``headers`` shape the HTTP answer (Slack sends most
        errors with 200; ``fatal_error`` and friends sometimes with 5xx).
        """
        self.fail(
            Failure(
                method=method,
                status=status,
                body={"ok": False, "error": error},
                chat=None if channel is None else str(channel),
                times=times,
                headers=dict(headers or {}),
            )
        )

    def set_method_result(self, method: str, result: Mapping[str, Any]) -> None:
        """Answer every later call of ``method`` with ``{"ok": true, **result}``.

        For Web API methods the stand-in does not model (``users.info`` with a
        particular profile, ``conversations.replies`` with history ...).
        """
        with self._lock:
            self._method_results[method] = dict(result)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        token = _bearer(request.headers.get("Authorization")) or params.pop("token", None)
        params.pop("token", None)
        self._record_call(method, dict(params))

        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return _json({"ok": False, "error": auth_error})

        channel = params.get("channel")
        failure = self._take_failure(method, None if channel is None else str(channel))
        if failure is not None:
            return _json(failure.body, status=failure.status, headers=failure.headers)

        if method == "auth.test":
            return _json(self._auth_test())
        if method == "apps.connections.open":
            return _json(self._connections_open())
        try:
            if method == "chat.postMessage":
                return _json(self._post_message(params))
            if method == "chat.update":
                return _json(self._update_message(params))
            if method == "chat.postEphemeral":
                return _json(self._post_ephemeral(params))
        except ApiError as exc:
            return _json(exc.body())
        return _json(self._other_method(method, params))

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "not_allowed_token_type" if token.startswith("xox") else "invalid_auth"
        if token == self.bot_token:
            return None
        return "not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth"

    def _auth_test(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": True,
            "url": f"https://{self.team_name.lower().replace(' ', '-')}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }
        if self.enterprise_id is not None:
            result["enterprise_id"] = self.enterprise_id
        return result

    def _connections_open(self) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        with self._lock:
            self._tickets.add(ticket)
        return {
            "ok": True,
            "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}",
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        channel = str(channel)
        self._channel_error(channel)
        text = params.get("text")
        if not (text or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        if params.get("blocks"):
            check_blocks(params["blocks"])
        thread_ts = params.get("thread_ts") or None
        ts = self.next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": ts,
        }
        if thread_ts is not None:
            message["thread_ts"] = str(thread_ts)
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        self._store_message(channel, message)
        self._record(
            SentMessage(
                chat=channel,
                thread=None if thread_ts is None else str(thread_ts),
                text=str(text or ""),
                params=params,
                reply_to=None if thread_ts is None else str(thread_ts),
                mentions=tuple(dict.fromkeys(_USER_MENTION.findall(str(text or "")))),
                id=ts,
            )
        )
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _other_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            scripted = self._method_results.get(method)
        if scripted is not None:
            return {"ok": True, **scripted}
        # A bare {"ok": true} would make ordinary listener code for these
        # (``resp["user"]["name"]``) raise KeyError.
        if method == "users.info":
            user = str(params.get("user") or self.user_id)
            return {
                "ok": True,
                "user": {
                    "id": user,
                    "team_id": self.team_id,
                    "name": user.lower(),
                    "real_name": user,
                    "is_bot": user == self.bot_user_id,
                    "profile": {"display_name": user, "real_name": user},
                },
            }
        if method == "conversations.info":
            channel = str(params.get("channel") or "")
            return {
                "ok": True,
                "channel": {"id": channel, "name": channel.lower(), "is_member": True},
            }
        if method in ("conversations.history", "conversations.replies"):
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": True}


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            with contextlib.suppress(ValueError):
                data = await request.json()
                if isinstance(data, dict):
                    params.update(data)
        else:
            form = await request.post()
            for key, value in form.items():
                # A multipart upload (files.upload) gives FileField objects: keep the name.
                params[key] = value if isinstance(value, str) else getattr(value, "filename", "")
    for key in ("blocks", "attachments", "metadata"):
        encoded = params.get(key)
        if isinstance(encoded, str):
            # Form-encoded clients send these as JSON strings; JSON clients as lists.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(encoded)
    return params


def _json(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers or {}))
