"""``restart-guard demo``: the restart gap, then the same restart with the guard.

Everything runs on loopback: the Telegram stand-in from
``restart_guard.testing`` in this process, a real python-telegram-bot bot in a
subprocess, and real signals — SIGTERM as a deploy sends it, SIGKILL one
second later as a service manager does when the drain outlives its limit.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._registry import TELEGRAM
from ._narration import (
    begin_round,
    run_rounds,
    say,
    say_hello,
    stop_and_report,
    stop_timeout_kill,
    transcript,
)
from ._options import bot_argv

__all__ = ["run_demo"]

CHAT = -1001234567890
TOPIC = 42


def _transcript(api: object, since: int) -> None:
    transcript(
        api.sent[since:],  # type: ignore[attr-defined]
        lambda message: f"topic {message.thread}" if message.thread else "main chat",
    )


def _round(api: object, workdir: Path, guarded: bool) -> bool:
    from restart_guard.testing.process import BotProcess

    name = begin_round(guarded)
    argv = bot_argv(
        "restart_guard.demo.telegram_bot",
        "--api-url",
        api.base_url,  # type: ignore[attr-defined]
        "--token",
        api.token,  # type: ignore[attr-defined]
        marker_dir=workdir / "markers",
        guarded=guarded,
    )

    def start(run: int) -> BotProcess:
        since = time.monotonic()
        bot = BotProcess.start(argv, log_path=workdir / f"{name}-{run}.log")
        api.wait_for_poll(timeout=30, since=since)  # type: ignore[attr-defined]
        return bot

    bot = start(1)
    say(f"[1] bot started (pid {bot.pid}), polling the loopback Bot API")
    mark = len(api.sent)  # type: ignore[attr-defined]
    update = api.inject_message(CHAT, "/work 60", message_thread_id=TOPIC)  # type: ignore[attr-defined]
    say(f"[2] a user asks for 60 s of work in forum topic {TOPIC}: /work 60")
    api.wait_for_sent(lambda m: m.text.startswith("working"), timeout=30)  # type: ignore[attr-defined]
    api.wait_until_confirmed(update, timeout=30)  # type: ignore[attr-defined]
    _transcript(api, mark)
    say("[3] deploy: SIGTERM. The bot drains, waiting for the 60 s handler…")
    bot.send_signal(signal.SIGTERM)
    if guarded:
        bot.wait_for_log("marked before the drain", timeout=30)
        say("      restart-guard marked the conversation durably before the drain began")
    else:
        bot.wait_for_log("Application is stopping", timeout=30)
    stop_timeout_kill(bot)
    say("[4] the service manager's stop timeout expires: SIGKILL")
    mark = len(api.sent)  # type: ignore[attr-defined]
    bot = start(2)
    say(f"[5] bot restarted (pid {bot.pid}); Telegram does not redeliver the update")
    if guarded:
        api.wait_for_sent(lambda m: "restarted" in m.text, timeout=30)  # type: ignore[attr-defined]
    # Show that the bot is up and serving; any notice was posted before polling began.
    hello = f"hello? ({name} run)"
    say_hello(f"topic {TOPIC}", hello)
    api.inject_message(CHAT, hello, message_thread_id=TOPIC)  # type: ignore[attr-defined]
    api.wait_for_sent(lambda m: m.text == f"echo: {hello}", timeout=30)  # type: ignore[attr-defined]
    _transcript(api, mark)
    notified = any("restarted" in m.text for m in api.sent[mark:])  # type: ignore[attr-defined]
    status = stop_and_report(
        bot,
        guarded,
        notified,
        told="told the user in the right topic about the interrupted conversation",
    )
    return notified == guarded and status == 0


def _stand_in() -> Callable[[], AbstractContextManager[Any]]:
    from restart_guard.testing.telegram import TelegramStandIn

    return TelegramStandIn.running


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    return run_rounds(
        TELEGRAM, "a real python-telegram-bot process on a loopback Telegram", _stand_in, _round
    )
