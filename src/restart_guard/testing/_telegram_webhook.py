"""Webhook delivery for the Telegram stand-in: push updates as Telegram does.

After ``setWebhook`` Telegram POSTs each pending update as JSON to the URL
(with ``X-Telegram-Bot-Api-Secret-Token`` when a secret was set), up to
``max_connections`` at a time, and keeps an update until the webhook answers
2xx — any other answer or a failed connection is retried later. This module
is that loop; :class:`~restart_guard.testing.telegram.TelegramStandIn` owns
the updates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["WebhookDelivery"]

#: Seconds before an update the webhook did not take is offered again (Telegram
#: waits longer and longer; a test wants it soon).
RETRY_DELAY = 0.2


@dataclass(frozen=True)
class Attempt:
    """One POST of an update to the webhook: its status, or the error's name."""

    update_id: int
    outcome: int | str


class WebhookDelivery:
    """Pushes ``pending()`` updates to the registered webhook; ``acknowledge`` on a 2xx."""

    def __init__(
        self,
        pending: Callable[[], list[dict[str, Any]]],
        acknowledge: Callable[[int], None],
    ) -> None:
        self._pending = pending
        self._acknowledge = acknowledge
        self.url: str | None = None
        self.secret: str | None = None
        self.max_connections = 40
        #: Every POST made, in order (read by tests).
        self.attempts: list[Attempt] = []
        self._in_flight: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def configure(self, url: str | None, secret: str | None, max_connections: int) -> None:
        """``setWebhook`` (url) or ``deleteWebhook`` (None). Call on the stand-in's loop."""
        self.url = url or None
        self.secret = secret or None
        self.max_connections = max(1, min(max_connections, 100))
        if self.url is not None and self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self.wake()

    def wake(self) -> None:
        """Something changed: look for updates to push (call on the stand-in's loop)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop pushing; POSTs under way are abandoned, their updates stay pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession()
        posts: set[asyncio.Task[None]] = set()
        while True:
            self._wake.clear()
            url = self.url
            if url is not None:
                for update in self._pending():
                    update_id = int(update["update_id"])
                    if update_id in self._in_flight or len(self._in_flight) >= self.max_connections:
                        continue
                    self._in_flight.add(update_id)
                    post = asyncio.ensure_future(self._post(url, update_id, update))
                    posts.add(post)
                    post.add_done_callback(posts.discard)
            await self._wake.wait()

    async def _post(self, url: str, update_id: int, update: dict[str, Any]) -> None:
        assert self._session is not None
        headers = {} if self.secret is None else {"X-Telegram-Bot-Api-Secret-Token": self.secret}
        outcome: int | str
        try:
            async with self._session.post(url, json=update, headers=headers) as response:
                outcome = response.status
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            outcome = type(exc).__name__
        self.attempts.append(Attempt(update_id, outcome))
        if isinstance(outcome, int) and 200 <= outcome < 300:
            self._acknowledge(update_id)
            self._in_flight.discard(update_id)
            self.wake()
            return
        await asyncio.sleep(RETRY_DELAY)
        self._in_flight.discard(update_id)
        self.wake()
