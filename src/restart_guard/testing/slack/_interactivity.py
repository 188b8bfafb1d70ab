"""The Slack stand-in's interactivity: a user presses a Block Kit button.

:meth:`press_button` builds the ``block_actions`` payload Slack sends for a
button in a message (``type``, ``user``, ``api_app_id``, ``token``,
``container``, ``trigger_id``, ``team``, ``enterprise``, ``channel``,
``message``, ``state``, ``response_url``, ``actions``) and delivers it the
way the app takes interactivity:

- **Socket Mode**: an ``interactive`` envelope on the websocket, acked like an
  ``events_api`` one; left unacknowledged when its connection closes, it is
  sent again on the next (as the stand-in does for every envelope);
- **HTTP**: a POST to the app's Request URL, form-encoded ``payload=<json>``,
  signed with the signing secret like an event. Slack does not retry an
  interaction: an answer other than 2xx within 3 s is an error the user
  sees, recorded in :attr:`ButtonPress.status`.

Only a button the message carries *now* can be pressed (``ValueError``
otherwise: never had one, or a ``chat.update`` took it off). Every press
gets a ``response_url`` the app may POST to (JSON) up to 5 times within 30
minutes: ``replace_original`` / ``delete_original`` change the message, and
anything else is a new message — ephemeral to the presser unless
``response_type`` is ``in_channel``.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .._standin import SentMessage
from ._http_events import ACK_TIMEOUT, _HttpEvents, _post, sign_request
from ._messages import Ephemeral, buttons_of
from ._model import VERIFICATION_TOKEN
from ._socket_mode import _SocketMode

__all__ = ["ButtonPress"]

#: How long a response_url works, and how many times (Slack's limits).
RESPONSE_URL_LIFETIME = 30 * 60.0
RESPONSE_URL_USES = 5
_FORM = "application/x-www-form-urlencoded"


@dataclass
class ButtonPress:
    """One press :meth:`SlackStandIn.press_button` delivered.

    ``envelope_id`` is its Socket Mode envelope (None over HTTP); ``status``
    the app's HTTP answer (None over Socket Mode, 0 for no answer in time).
    ``payload`` is the ``block_actions`` payload as sent.
    """

    trigger_id: str
    channel: str
    ts: str
    action_id: str
    user: str
    payload: dict[str, Any]
    response_url: str
    envelope_id: str | None = None
    status: int | None = None
    at: float = field(default_factory=time.time)
    uses: int = 0  # of its response_url


class _Interactivity(_SocketMode, _HttpEvents):
    """Button presses over Socket Mode or HTTP, and their ``response_url``."""

    def press_button(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        user: str | None = None,
        app_url: str | None = None,
        signing_secret: str | None = None,
    ) -> ButtonPress:
        """``user`` (default: the stand-in's user) presses the button ``action_id`` of a message.

        Over Socket Mode unless ``app_url`` (the app's Request URL) is given;
        see the module docstring. Returns at once over Socket Mode (wait with
        :meth:`wait_for_ack` on ``press.envelope_id``), after the app's answer
        over HTTP (signed with ``signing_secret``, default the stand-in's).
        """
        message = self.message(channel, ts)
        if message is None:
            raise ValueError(f"no message {ts} in channel {channel}")
        found = [(b, e) for b, e in buttons_of(message) if e.get("action_id") == action_id]
        if not found:
            raise ValueError(
                f"message {ts} has no button {action_id!r} now; buttons: "
                f"{self.buttons(channel, ts)!r}"
            )
        block_id, button = found[0]
        press = self._new_press(str(channel), message, block_id, button, user or self.user_id)
        if app_url is None:
            press.envelope_id = self._send_envelope("interactive", press.payload)
            return press
        self._not_on_loop("press_button")
        body = "payload=" + urllib.parse.quote(json.dumps(press.payload))
        data = body.encode("utf-8")
        secret = self.signing_secret if signing_secret is None else signing_secret
        headers = sign_request(data, secret, content_type=_FORM)
        try:
            press.status, _ = _post(app_url, data, headers, ACK_TIMEOUT)
        except OSError:
            press.status = 0  # Slack: "this app did not respond", no retry
        with self._changed:
            self._changed.notify_all()
        return press

    @property
    def presses(self) -> list[ButtonPress]:
        """Every button press delivered, oldest first."""
        with self._lock:
            return list(self._presses.values())

    def _new_press(
        self,
        channel: str,
        message: dict[str, Any],
        block_id: str,
        button: dict[str, Any],
        user: str,
    ) -> ButtonPress:
        number = secrets.randbelow(10**12)
        trigger_id = f"{number}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        response_url = f"{self.url}/actions/{self.team_id}/{number}/{secrets.token_urlsafe(18)}"
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": str(message["ts"]),
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = str(message["thread_ts"])
        action = {
            "type": "button",
            "block_id": block_id,
            "action_id": button["action_id"],
            "text": copy.deepcopy(button.get("text")),
            "action_ts": self.next_ts(),
        }
        for key in ("value", "style"):
            if key in button:
                action[key] = button[key]
        enterprise = (
            None if self.enterprise_id is None else {"id": self.enterprise_id, "name": "Grid"}
        )
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": user.lower(),
                "name": user.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": self.team_name.lower().replace(" ", "-")},
            "enterprise": enterprise,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": channel.lower()},
            "message": {"type": "message", **message},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        press = ButtonPress(
            trigger_id,
            channel,
            str(message["ts"]),
            str(button["action_id"]),
            user,
            payload,
            response_url,
        )
        with self._changed:
            self._presses[trigger_id] = press
            self._changed.notify_all()
        return press

    # ------------------------------------------------------------ response_url
    async def _response_url(self, request: web.Request) -> web.Response:
        url = f"{self.url}{request.path}"
        with self._lock:
            press = next((p for p in self._presses.values() if p.response_url == url), None)
            if press is not None:
                press.uses += 1
        if press is None:
            return web.json_response({"ok": False, "error": "invalid_url"}, status=404)
        if time.time() - press.at > RESPONSE_URL_LIFETIME:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if press.uses > RESPONSE_URL_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self._record_call("response_url", dict(body))
        self._respond(press, body)
        return web.json_response({"ok": True})

    def _respond(self, press: ButtonPress, body: dict[str, Any]) -> None:
        """What a ``response_url`` POST does (see the module docstring)."""
        key = (press.channel, press.ts)
        text = str(body.get("text") or "")
        if body.get("delete_original") or body.get("replace_original"):
            edited = {"user": self.bot_user_id, "ts": self.next_ts()}  # next_ts takes the lock
            with self._changed:
                message = self._messages.get(key)
                if message is not None and body.get("delete_original"):
                    del self._messages[key]
                elif message is not None:
                    message["text"] = text
                    message.pop("attachments", None)
                    if body.get("blocks"):
                        message["blocks"] = copy.deepcopy(body["blocks"])
                    else:
                        message.pop("blocks", None)  # replaced: nothing of the old one stays
                    message["edited"] = edited
                self._changed.notify_all()
            return
        raw_thread = body.get("thread_ts") or press.payload["container"].get("thread_ts")
        thread = None if raw_thread is None else str(raw_thread)
        if body.get("response_type") == "in_channel":
            ts = self.next_ts()
            message = {
                "type": "message",
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "text": text,
                "ts": ts,
            }
            if thread:
                message["thread_ts"] = thread
            self._store_message(press.channel, message)
            self._record(SentMessage(press.channel, thread, text, dict(body), id=ts))
            return
        self._show_ephemeral(
            Ephemeral(
                press.channel,
                press.user,
                text,
                thread,
                tuple(body.get("blocks") or ()),
                via="response_url",
                trigger_id=press.trigger_id,
            )
        )
