"""The Slack stand-in's HTTP mode: signed Events API requests POSTed to the app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from ._events import _EventBuilders

if TYPE_CHECKING:
    from typing_extensions import Unpack


def sign_request(
    body: str | bytes,
    secret: str,
    timestamp: int | None = None,
    *,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers that make ``body`` a correctly signed Slack request.

    ``X-Slack-Signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``
    keyed with the signing secret; ``X-Slack-Request-Timestamp`` is ``timestamp``
    (default: now; Bolt rejects one more than 5 minutes off). ``Content-Type`` is
    ``application/json``, what Slack sends for Events API requests; interactivity
    comes as ``application/x-www-form-urlencoded`` (``payload=<json>``).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(
        secret.encode("utf-8"), b"v0:" + str(ts).encode("ascii") + b":" + raw, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


#: Seconds Slack waits for an Events API answer before it counts a timeout.
ACK_TIMEOUT = 3.0


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

    # ------------------------------------------------------ acks and retries
    def hold_acks(self) -> None:
        """From now on acknowledgements do not arrive, until :meth:`release_acks`.

        A Socket Mode ack is dropped (the envelope goes out again on the next
        connection); an HTTP answer counts as a timeout, and the retry waits
        for the release. The state a bot killed after taking an event, before
        Slack heard it took it, leaves.
        """
        with self._changed:
            self._holding_acks = True
            self._changed.notify_all()

    def release_acks(self) -> None:
        """Acknowledgements arrive again; held HTTP retries go out."""
        with self._changed:
            self._holding_acks = False
            self._changed.notify_all()

    @property
    def http_deliveries(self) -> list[tuple[str, int, int]]:
        """Every :meth:`deliver_event` POST: ``(event_id, retry_num, status)``.

        ``status`` 0: no answer; negative: the app answered, but acks were held.
        """
        with self._lock:
            return list(self._http_deliveries)

    def deliver_event(self, app_url: str, event: Mapping[str, Any]) -> str:
        """Deliver ``event`` to an HTTP-mode app as Slack does; return its ``event_id``.

        In a background thread: POST, and unless the app answers 2xx within
        :data:`ACK_TIMEOUT` (and acks are not held), retry after each of
        :attr:`retry_delays` with ``X-Slack-Retry-Num`` 1, 2, 3 and
        ``X-Slack-Retry-Reason`` (``http_timeout``, ``http_error``,
        ``connection_failed``); the same ``event_id`` every time.
        :meth:`wait_for_http_ack` waits for the outcome.
        """
        body = dict(event) if event.get("type") == "event_callback" else self.event_callback(event)
        event_id = str(body["event_id"])
        thread = threading.Thread(
            target=self._deliver_with_retries,
            args=(app_url, body),
            name=f"slack-standin-deliver-{event_id}",
            daemon=True,
        )
        thread.start()
        return event_id

    def wait_for_http_ack(self, event_id: str, timeout: float = 30.0) -> int:
        """Block until a POST of ``event_id`` was answered 2xx (not held); return its retry_num."""

        def acked() -> int | None:
            return next(
                (r for e, r, status in self._http_deliveries if e == event_id and status == 200),
                None,
            )

        return self._wait_until(
            acked,
            timeout,
            lambda: f"waited {timeout}s for an ack of {event_id}: {self._http_deliveries!r}",
        )

    def _deliver_with_retries(self, app_url: str, body: dict[str, Any]) -> None:
        event_id = str(body["event_id"])
        reason = None
        for retry in range(len(self.retry_delays) + 1):
            if retry:
                self._wait_retry(self.retry_delays[retry - 1])
            options: _PostOptions = {"timeout": ACK_TIMEOUT}
            if retry:
                options["retry_num"], options["retry_reason"] = retry, reason
            try:
                status, _ = _post(app_url, *self._request(body, options))
            except OSError as exc:  # refused, reset, timed out
                status = 0
                reason = "http_timeout" if isinstance(exc, TimeoutError) else "connection_failed"
            else:
                reason = "http_error"
            with self._changed:
                held = self._holding_acks and 200 <= status < 300
                self._http_deliveries.append((event_id, retry, -status if held else status))
                self._changed.notify_all()
            if 200 <= status < 300 and not held:
                return
            if held:
                reason = "http_timeout"

    def _wait_retry(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        with self._changed:
            while True:
                left = deadline - time.monotonic()
                if (left <= 0 and not self._holding_acks) or self._stopping:
                    return
                self._changed.wait(max(left, 0.1))

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
        self._remember_user_message(body.get("event") or {})
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
