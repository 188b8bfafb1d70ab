"""The Slack stand-in's HTTP mode: signed Events API requests POSTed to the app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from ._events import _EventBuilders

if TYPE_CHECKING:
    from typing_extensions import Unpack


def sign_request(body: str | bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers that make ``body`` a correctly signed Slack request.

    ``X-Slack-Signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``
    keyed with the signing secret; ``X-Slack-Request-Timestamp`` is ``timestamp``
    (default: now; Bolt rejects one more than 5 minutes off). ``Content-Type`` is
    ``application/json``, what Slack sends for Events API requests.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(
        secret.encode("utf-8"), b"v0:" + str(ts).encode("ascii") + b":" + raw, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


class _PostOptions(TypedDict, total=False):
    """The keyword arguments of ``post_event`` and ``post_event_async``."""

    signing_secret: str | None
    timestamp: int | None
    team: str | None
    enterprise: str | None
    retry_num: int | None
    retry_reason: str | None
    timeout: float


class _HttpEvents(_EventBuilders):
    """Posts signed Events API requests to an HTTP-mode app's own endpoint."""

    # ------------------------------------------------------------ HTTP delivery
    def post_event(
        self, app_url: str, event: Mapping[str, Any], **options: Unpack[_PostOptions]
    ) -> tuple[int, str]:
        """POST a signed Events API request to an HTTP-mode app; return ``(status, body)``.

        ``app_url`` is the app's endpoint (``http://127.0.0.1:PORT/slack/events``
        for Bolt's defaults), ``event`` a bare event or a whole
        ``event_callback`` body (built for ``team``/``enterprise``). Signed
        with ``signing_secret`` (default: the stand-in's) at ``timestamp``
        (default: now); Bolt answers 200 (it acks before the listener runs) or
        401 for a bad signature. ``retry_num`` and ``retry_reason`` add
        Slack's ``X-Slack-Retry-*`` headers; ``timeout`` (default 10 s) bounds
        the request. Blocks; works without the stand-in running.
        """
        self._not_on_loop("post_event")
        return _post(app_url, *self._request(event, options))

    async def post_event_async(
        self, app_url: str, event: Mapping[str, Any], **options: Unpack[_PostOptions]
    ) -> tuple[int, str]:
        """:meth:`post_event` for async tests (an ``AsyncApp`` on the same loop).

        The same request, sent from a worker thread so the loop keeps serving the app.
        """
        return await asyncio.to_thread(_post, app_url, *self._request(event, options))

    def _request(
        self, event: Mapping[str, Any], options: _PostOptions
    ) -> tuple[bytes, dict[str, str], float]:
        """The body, headers and timeout of :meth:`post_event`'s request."""
        if event.get("type") == "event_callback":
            body = dict(event)
        else:
            body = self.event_callback(
                event, team=options.get("team"), enterprise=options.get("enterprise")
            )
        data = json.dumps(body).encode("utf-8")
        secret = options.get("signing_secret")
        headers = sign_request(
            data, self.signing_secret if secret is None else secret, options.get("timestamp")
        )
        headers.update(_retry_headers(options.get("retry_num"), options.get("retry_reason")))
        return data, headers, options.get("timeout", 10.0)


def _retry_headers(retry_num: int | None, retry_reason: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    # No proxy: the app under test listens on loopback.
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            return int(exc.code), exc.read().decode("utf-8", "replace")
