"""The Telegram stand-in's webhook delivery: updates POSTed to the bot until it answers 2xx.

Like Telegram: once ``setWebhook`` named a URL, every pending update is
POSTed there as JSON (with ``X-Telegram-Bot-Api-Secret-Token`` when a
``secret_token`` was set), oldest first, one at a time; a 2xx answer
confirms it (gone for good), anything else — an error status, a refused
connection, no answer within the timeout — leaves it pending and it is
POSTed again after a delay. ``getUpdates`` answers 409 while a webhook is
set; ``deleteWebhook`` ends the delivery (pending updates stay, for
``getUpdates``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

__all__ = ["WEBHOOK_CONFLICT", "Webhook", "WebhookDelivery"]

WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
# How often a held confirmation looks whether its client has gone away.
_HOLD_CHECK = 0.1
#: How long Telegram waits for the bot's answer to one webhook POST (seconds).
ANSWER_TIMEOUT = 10.0


@dataclass
class Webhook:
    """The webhook ``setWebhook`` set."""

    url: str
    secret_token: str | None = None
    #: Every POST made: ``(update_id, HTTP status or 0 when no answer came)``.
    attempts: list[tuple[int, int]] = field(default_factory=list)


class WebhookDelivery:
    """POSTs pending updates to the webhook, in order, retrying until 2xx.

    ``next_update`` returns the oldest pending update (or None), ``answered``
    is told that the bot answered 2xx for an update_id — the stand-in
    confirms it unless it holds confirmations — and ``recorded`` is told of
    every attempt. Runs as one task on the stand-in's loop.
    """

    def __init__(
        self,
        next_update: Callable[[], dict[str, Any] | None],
        answered: Callable[[int], bool],
        recorded: Callable[[int, int], None],
        retry_delay: float,
    ) -> None:
        self._next_update = next_update
        self._answered = answered
        self._recorded = recorded
        self.retry_delay = retry_delay
        self.webhook: Webhook | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def set(self, webhook: Webhook | None) -> None:
        """Deliver to ``webhook`` from now on (None: stop delivering). On the stand-in's loop."""
        self.webhook = webhook
        if webhook is not None and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())
        self.wake()

    def wake(self) -> None:
        """Something changed (an update, a release): look again. On the stand-in's loop."""
        self._wake.set()

    async def close(self) -> None:
        """Stop delivering (the stand-in stops)."""
        self.webhook = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            while self.webhook is not None:
                self._wake.clear()
                update = self._next_update()
                if update is None:
                    await self._wake.wait()
                    continue
                if await self._post(session, self.webhook, update):
                    continue
                # Not taken: the same update again after a delay (or a change).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.retry_delay)

    async def _post(
        self, session: aiohttp.ClientSession, webhook: Webhook, update: dict[str, Any]
    ) -> bool:
        update_id = int(update["update_id"])
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        status = 0
        try:
            async with session.post(webhook.url, data=json.dumps(update), headers=headers) as r:
                status = r.status
                await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            status = 0
        webhook.attempts.append((update_id, status))
        self._recorded(update_id, status)
        return 200 <= status < 300 and self._answered(update_id)


class _WebhookControls:
    """The Telegram stand-in's webhook methods and held confirmations (mixed into it)."""

    # Provided by TelegramStandIn.
    _lock: threading.Lock
    _changed: threading.Condition
    _loop: asyncio.AbstractEventLoop | None
    _updates: list[dict[str, Any]]
    _confirmed_offset: int
    _next_update_id: int
    _holding: bool
    _answered_held: set[int]
    _webhook: WebhookDelivery

    if TYPE_CHECKING:  # provided by the stand-in

        def _confirm(self, offset: int) -> None: ...
        def _notify_async(self) -> None: ...

    def hold_confirmations(self) -> None:
        """From now on the bot's confirmations do not arrive, until :meth:`release_confirmations`.

        A ``getUpdates`` with a higher offset waits (confirming nothing) while
        its client is connected; a webhook's 2xx answer is not counted, and
        the update is POSTed again after the release. The state a bot killed
        after taking an update, before Telegram heard it took it, leaves.
        """
        with self._lock:
            self._holding = True

    def release_confirmations(self) -> None:
        """Confirmations arrive again; webhook updates answered meanwhile are POSTed again."""
        with self._changed:
            self._holding = False
            self._answered_held.clear()
            self._changed.notify_all()
        self._wake_webhook()

    @property
    def webhook_url(self) -> str | None:
        """The URL ``setWebhook`` set (None: no webhook, ``getUpdates`` works)."""
        webhook = self._webhook.webhook
        return None if webhook is None else webhook.url

    @property
    def webhook_attempts(self) -> list[tuple[int, int]]:
        """Every webhook POST: ``(update_id, HTTP status)``, 0 when no answer came."""
        webhook = self._webhook.webhook
        return [] if webhook is None else list(webhook.attempts)

    async def _set_webhook(self, params: dict[str, Any], request: web.Request) -> Any:
        url = params.get("url")
        if not url:  # setWebhook with an empty URL removes the webhook, as on Telegram
            self._webhook.set(None)
            return True
        secret = params.get("secret_token")
        if params.get("drop_pending_updates") in (True, "true", "True", 1):
            with self._changed:
                self._confirm(self._next_update_id)
        self._webhook.set(Webhook(str(url), None if secret is None else str(secret)))
        return True

    async def _confirmation_arrives(self, offset: int, request: web.Request) -> bool:
        """Hold a confirming ``getUpdates`` while confirmations are held; False: client gone."""
        with self._lock:
            if not self._holding:
                # Telegram confirms on receipt: a client that hangs up right after
                # asking (polling cancelled by a stop) has confirmed all the same.
                return True
        while True:
            # The client first: a bot killed while held never confirms, released or not.
            transport = request.transport
            if transport is None or transport.is_closing():
                return False
            with self._lock:
                if not self._holding or offset <= self._confirmed_offset:
                    return True
            await asyncio.sleep(_HOLD_CHECK)

    def _next_webhook_update(self) -> dict[str, Any] | None:
        with self._lock:
            for update in self._updates:
                if int(update["update_id"]) not in self._answered_held:
                    return copy.deepcopy(update)
        return None

    def _webhook_answered(self, update_id: int) -> bool:
        """A webhook answered 2xx for ``update_id``: confirmed, unless confirmations are held."""
        with self._changed:
            if self._holding:
                self._answered_held.add(update_id)
                self._changed.notify_all()
                return True  # taken as far as the sender is concerned; sent again on release
            self._confirm(update_id + 1)
            self._changed.notify_all()
        self._notify_async()
        return True

    def _wake_webhook(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._webhook.wake)
