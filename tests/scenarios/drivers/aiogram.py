"""aiogram's demo bot against the Telegram stand-in: polling, and aiogram's aiohttp webhook.

The platform is Telegram's, so everything a user does and every fault is the
python-telegram-bot driver's; only the bot's command line and the sign that
it serves differ.
"""

from __future__ import annotations

import socket
import time

from restart_guard.testing.process import BotProcess
from restart_guard.testing.wait import eventually

from .base import free_port
from .telegram import TelegramDriver

WEBHOOK = "setWebhook"


class AiogramDriver(TelegramDriver):
    name = "aiogram"
    framework = "aiogram"
    # polling: dp.run_polling (handle_as_tasks=True); webhook: SimpleRequestHandler + run_app.
    modes = ("polling", "webhook")
    concurrent_mode = "polling"  # every update is a task of its own
    button_modes = modes  # a press arrives by polling or through the webhook: both answered
    module = "restart_guard.demo.aiogram_bot"
    ready_log = None  # no line both modes log once they serve

    webhook_needs = None  # aiogram's webhook runs on aiohttp, which aiogram requires

    def _bot_args(self) -> list[str]:
        if self.mode == "polling":
            return ["--api-url", self.api.url, "--token", self.api.token]
        self.port = self.port or free_port()  # the same URL across restarts, as in production
        return ["--api-url", self.api.url, "--token", self.api.token, "--webhook", str(self.port)]

    def _before_start(self) -> tuple[float, int]:
        return time.monotonic(), self._webhooks_set()

    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        assert isinstance(before, tuple)
        since, webhooks = before
        if self.mode == "webhook":
            # A startup handler registers the webhook; aiohttp listens once startup is over.
            self.api.wait_for_call(WEBHOOK, timeout=30, count=webhooks + 1)
            port = self.port
            assert port is not None
            eventually(lambda: _listens(port), timeout=30, what=f"the bot on port {port}")
        else:
            # Polling starts only after start-up recovery: the notices come first.
            self.api.wait_for_poll(timeout=30, since=since)

    def _webhooks_set(self) -> int:
        return sum(1 for method, _ in self.api.calls if method == WEBHOOK)


def _listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
