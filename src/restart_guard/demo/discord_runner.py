"""``restart-guard demo --platform discord``: the restart gap, then the same restart with the guard.

Everything runs on loopback: the Discord stand-in from ``restart_guard.testing``
in this process, a real discord.py bot in a subprocess
(:mod:`restart_guard.demo.discord_bot`), and real signals — SIGTERM as a
deploy sends it, SIGKILL one second later as a service manager does when the
drain outlives its limit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._registry import DISCORD
from ._narration import (
    begin_round,
    deploy_then_kill,
    run_rounds,
    say,
    say_hello,
    stop_and_report,
    transcript,
)
from ._options import bot_argv

__all__ = ["run_demo"]

READY = "demo bot ready"


def _transcript(api: Any, since: int) -> None:
    transcript(
        api.sent[since:],
        lambda message: "thread" if message.thread else f"channel {message.chat}",
    )


def _wait_new(api: Any, predicate: Any) -> None:
    """Until one more message than now matches (the rounds share one stand-in)."""
    before = sum(1 for m in api.sent if predicate(m))
    api.wait_for_sent(predicate, timeout=30, count=before + 1)


def _round(api: Any, workdir: Path, guarded: bool) -> bool:
    from restart_guard.testing.process import BotProcess

    name = begin_round(guarded)
    argv = bot_argv(
        "restart_guard.demo.discord_bot",
        marker_dir=workdir / f"markers-{name}",
        guarded=guarded,
    )

    def start(run: int) -> BotProcess:
        bot = BotProcess.start(argv, env=api.env_vars(), log_path=workdir / f"{name}-{run}.log")
        bot.wait_for_log(READY, timeout=30)
        return bot

    bot = start(1)
    say(f"[1] bot started (pid {bot.pid}), connected to the loopback gateway")
    mark = len(api.sent)
    api.inject_message(api.thread_id, "!work 60")
    say("[2] a user asks for 60 s of work in a thread: !work 60")
    _wait_new(api, lambda m: m.text.startswith("working"))
    _transcript(api, mark)
    deploy_then_kill(
        bot,
        guarded,
        marked="restart-guard marked the conversation durably, then began the drain",
        died="discord.py has no SIGTERM handler: the bot died at once",
    )
    mark = len(api.sent)
    bot = start(2)
    say(f"[5] bot restarted (pid {bot.pid}); Discord does not redeliver the message")
    # Show that the bot is up and serving; any notice was posted before the gateway.
    say_hello("the thread", "hello?")
    api.inject_message(api.thread_id, "hello?")
    _wait_new(api, lambda m: m.text == "echo: hello?")
    _transcript(api, mark)
    notified = any("restarted" in m.text for m in api.sent[mark:])
    status = stop_and_report(
        bot,
        guarded,
        notified,
        told="told the user in the right thread about the interrupted conversation",
    )
    # A plain bot also dies from that last SIGTERM; the guarded one drains and exits 0.
    return notified == guarded and (status == 0 or not guarded)


def _stand_in() -> Callable[[], AbstractContextManager[Any]]:
    from restart_guard.testing.discord import DiscordStandIn

    return DiscordStandIn.running


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    return run_rounds(
        DISCORD, "a real discord.py bot process on a loopback Discord", _stand_in, _round
    )
