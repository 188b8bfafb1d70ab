"""One driver per platform for the notice fault suite: a stand-in, the demo bot, its chats.

Every scenario starts from markers a dead process left (written with
:class:`DirectoryStore`, as a SIGKILL leaves them), runs the platform's demo
bot as a real subprocess against the platform's stand-in, and counts the
notices the stand-in received per conversation.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from restart_guard import Conversation, DirectoryStore, Marker
from restart_guard.testing._standin import SentMessage, StandIn
from restart_guard.testing.discord import DiscordStandIn
from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.process import BotProcess
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

PLATFORMS = ("telegram", "discord", "slack")


def is_notice(message: SentMessage) -> bool:
    return "restarted" in message.text or "could not finish" in message.text


class NoticeTrap:
    """Stand-in mixin: run ``on_notice(n)`` when the n-th notice arrives, before answering it.

    It runs on the stand-in's own loop while the bot waits for the answer,
    so whatever it does (a signal to the bot, a look at its marker
    directory) happens with that notice in flight.
    """

    on_notice: Callable[[int], None] | None = None
    notices_seen = 0

    def _record(self, message: SentMessage) -> None:
        super()._record(message)  # type: ignore[misc]
        if is_notice(message):
            self.notices_seen += 1
            if self.on_notice is not None:
                self.on_notice(self.notices_seen)


class _Telegram(NoticeTrap, TelegramStandIn):
    pass


class _Discord(NoticeTrap, DiscordStandIn):
    pass


class _Slack(NoticeTrap, SlackStandIn):
    pass


@dataclass
class Driver:
    """What a scenario needs from one platform."""

    platform: str
    api: Any  # the stand-in (a NoticeTrap)
    marker_dir: Path
    tmp_path: Path
    started: list[BotProcess] = field(default_factory=list)

    # ----------------------------------------------------------- conversations
    def conversations(self, count: int) -> list[Conversation]:
        """``count`` conversations the stand-in knows, each in a chat of its own."""
        if self.platform == "telegram":
            return [Conversation("telegram", str(-1001000000100 - n)) for n in range(count)]
        if self.platform == "discord":
            guild = self.api.guild_id
            return [
                Conversation(
                    "discord", str(self.api.add_channel(guild, name=f"c{n}")), None, str(guild)
                )
                for n in range(count)
            ]
        return [
            Conversation("slack", f"C0FAULT{n}", f"1700000000.{n:06d}", self.api.team_id)
            for n in range(count)
        ]

    def leave_markers(self, conversations: list[Conversation]) -> list[Marker]:
        """Markers of a process that died: the first conversation is the oldest."""
        now = time.time()
        markers = [
            Marker(c, started_at=now - 60 + n, owner="elsewhere:1:dead", updated_at=now - 60 + n)
            for n, c in enumerate(conversations)
        ]
        store = DirectoryStore(self.marker_dir)
        store.open("elsewhere:1:dead")
        store.commit(markers, [])
        store.close()  # the lock goes as the kernel drops it on SIGKILL
        return markers

    def fail_transiently(self, conversation: Conversation) -> None:
        """Every notice to this conversation fails with an error worth retrying."""
        if self.platform == "telegram":
            self.api.fail_next(
                "sendMessage", 500, "Internal Server Error", chat_id=conversation.chat, times=10**6
            )
        elif self.platform == "discord":
            # 503: discord.py retries 500/502/504 itself, which would only slow this down.
            self.api.fail_next(
                503,
                message="503: Service Unavailable",
                channel_id=int(conversation.chat),
                times=10**6,
            )
        else:
            self.api.fail_next("internal_error", channel=conversation.chat, times=10**6)

    # ------------------------------------------------------------------- notices
    def notices_to(self, conversation: Conversation) -> list[SentMessage]:
        return [m for m in self.api.sent if m.chat == conversation.chat and is_notice(m)]

    def wait_for_notices(self, count: int, timeout: float = 60.0) -> list[SentMessage]:
        return list(self.api.wait_for_sent(is_notice, timeout=timeout, count=count))

    def markers(self) -> list[Marker]:
        return [s.marker for s in DirectoryStore(self.marker_dir).load()]

    # --------------------------------------------------------------------- bots
    def wait_ready(self, bot: BotProcess, since: float) -> None:
        """Until the bot takes new messages (start-up recovery is over by then)."""
        if self.platform == "telegram":
            bot.wait_for_log("Application started", timeout=60)
            self.api.wait_for_poll(timeout=60, since=since)
        elif self.platform == "discord":
            bot.wait_for_log("demo bot ready", timeout=60)
        else:
            eventually(lambda: self.api.connected_count, 60, "a Socket Mode connection")

    def start_work(self, conversation: Conversation, seconds: float) -> None:
        """The demo bot's long turn (``work N``) runs in ``conversation``, and is marked."""
        chat = conversation.chat
        if self.platform == "telegram":
            self.api.inject_message(int(chat), f"/work {seconds:g}")
        elif self.platform == "discord":
            self.api.inject_message(int(chat), f"!work {seconds:g}")
        else:
            self.api.inject_message(chat, f"work {seconds:g}")
        self.api.wait_for_sent(lambda m: m.chat == chat and m.text.startswith("working"), 60)
        wait_for_markers(self.marker_dir, lambda m: m.conversation.chat == chat, timeout=60)

    def start_bot(self, *args: str) -> BotProcess:
        """The platform's demo bot in a subprocess (not waiting for anything)."""
        module = f"restart_guard.demo.{self.platform}_bot"
        argv = [sys.executable, "-m", module, "--marker-dir", str(self.marker_dir), *args]
        env: dict[str, str] = {}
        if self.platform == "telegram":
            argv += ["--api-url", self.api.base_url, "--token", self.api.token]
        elif self.platform == "discord":
            env = self.api.env_vars()
        else:
            argv += ["--mode", "socket"]
            env = self.api.env()
        log = self.tmp_path / f"{self.platform}-bot-{len(self.started) + 1}.log"
        bot = BotProcess.start(argv, env=env, log_path=log)
        self.started.append(bot)
        return bot


_STANDINS: dict[str, type[StandIn]] = {"telegram": _Telegram, "discord": _Discord, "slack": _Slack}


@pytest.fixture(params=PLATFORMS)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    with _STANDINS[request.param].running() as api:
        drv = Driver(request.param, api, tmp_path / "markers", tmp_path)
        yield drv
        drv.api.on_notice = None
        for bot in drv.started:
            bot.stop()
        for bot in drv.started:
            # Shown by pytest only when the test fails.
            print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")


def run_in_thread(action: Callable[[], None]) -> None:
    """Start ``action`` beside the stand-in's loop (a trap must not block it)."""
    threading.Thread(target=action, daemon=True).start()


def keys(markers: list[Marker]) -> set[str]:
    return {m.key for m in markers}
