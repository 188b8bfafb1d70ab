"""The aiogram driver of the restart scenarios: start the bot, say something, read what it posted.

Written to move into the shared scenario suite (``tests/scenarios/drivers/``)
as it is: a scenario needs only :meth:`start`, :meth:`say`, :meth:`posted`
and the stand-in.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn

__all__ = ["AiogramDriver"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class AiogramDriver:
    """Real aiogram bot processes (``restart_guard.demo.aiogram_bot``) on the Telegram stand-in.

    ``webhook=True`` runs every bot behind aiogram's aiohttp webhook handler
    instead of polling.
    """

    platform = "aiogram"

    def __init__(
        self, api: TelegramStandIn, marker_dir: Path, logs: Path, *, webhook: bool = False
    ) -> None:
        self.api = api
        self.marker_dir = marker_dir
        self.logs = logs
        self.webhook = webhook
        self.started: list[BotProcess] = []

    def start(self, *args: str, wait_ready: bool = True) -> BotProcess:
        """Start a bot; with ``wait_ready``, return once recovery is over and it listens."""
        argv = [
            sys.executable,
            "-m",
            "restart_guard.demo.aiogram_bot",
            "--api-url",
            self.api.url,
            "--token",
            self.api.token,
            "--marker-dir",
            str(self.marker_dir),
            *args,
        ]
        if self.webhook:
            argv += ["--webhook", str(_free_port())]
        since = time.monotonic()
        webhooks = sum(1 for m, _ in self.api.calls if m == "setWebhook")
        bot = BotProcess.start(argv, log_path=self.logs / f"bot-{len(self.started) + 1}.log")
        self.started.append(bot)
        if wait_ready:
            if self.webhook:
                # The webhook is registered by a startup handler, after recovery.
                self.api.wait_for_call("setWebhook", timeout=30, count=webhooks + 1)
            else:
                # Polling starts only after start-up recovery: notices come first.
                self.api.wait_for_poll(timeout=30, since=since)
        return bot

    def say(self, chat: int, text: str, thread: int | None = None) -> int:
        """A user writes ``text`` in ``chat`` (forum topic ``thread``); returns the update id."""
        return self.api.inject_message(chat, text, message_thread_id=thread)

    def posted(self, chat: int, thread: int | None = None) -> list[str]:
        """What the bot posted in ``chat`` (only in ``thread``, if given), in order."""
        return [m.text for m in self.api.sent_to(chat, thread)]

    def wait_posted(
        self, check: Callable[[SentMessage], bool], timeout: float = 30, count: int = 1
    ) -> list[SentMessage]:
        """Wait until the bot posted ``count`` messages that pass ``check``."""
        return self.api.wait_for_sent(check, timeout=timeout, count=count)

    def stop_all(self) -> None:
        """Kill what still runs; print every log (pytest shows them when a test fails)."""
        for bot in self.started:
            bot.stop()
        for bot in self.started:
            print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")
