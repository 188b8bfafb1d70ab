"""``restart-guard demo --platform slack``: the restart gap, then the same restart with the guard.

Everything runs on loopback: the Slack stand-in from ``restart_guard.testing``
in this process (Web API and Socket Mode), a real slack-bolt app over Socket
Mode in a subprocess, and real signals — SIGTERM as a deploy sends it,
SIGKILL one second later as a service manager does when the drain outlives
its limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._registry import SLACK
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

CHANNEL = "C0DEPLOYS"


def _transcript(api: object, thread: str, since: int) -> None:
    sent = [m for m in api.sent[since:] if m.thread == thread]  # type: ignore[attr-defined]
    transcript(sent, lambda _message: f"thread {thread}")


def _round(api: object, workdir: Path, guarded: bool) -> bool:
    from restart_guard.testing.process import BotProcess

    name = begin_round(guarded)
    argv = bot_argv(
        "restart_guard.demo.slack_bot",
        "--mode",
        "socket",
        marker_dir=workdir / f"markers-{name}",
        guarded=guarded,
    )

    def start(run: int) -> BotProcess:
        connections = api.total_connections  # type: ignore[attr-defined]
        bot = BotProcess.start(
            argv,
            env=api.env(),  # type: ignore[attr-defined]
            log_path=workdir / f"{name}-{run}.log",
        )
        deadline = time.monotonic() + 30
        # Start-up recovery (the notice) happens before the Socket Mode connection opens.
        while api.total_connections <= connections:  # type: ignore[attr-defined]
            if bot.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not connect:\n{bot.log()}")
            time.sleep(0.02)
        return bot

    bot = start(1)
    say(f"[1] bot started (pid {bot.pid}), connected over Socket Mode to the loopback Slack")
    root = api.next_ts()  # type: ignore[attr-defined]
    mark = len(api.sent)  # type: ignore[attr-defined]
    event = api.inject_message(CHANNEL, "work 60", thread_ts=root)  # type: ignore[attr-defined]
    say(f"[2] a user asks, in a thread of {CHANNEL}, for 60 s of work: work 60")
    api.wait_for_sent(  # type: ignore[attr-defined]
        lambda m: m.thread == root and m.text.startswith("working"), timeout=30
    )
    api.wait_for_ack(event, timeout=30)  # type: ignore[attr-defined]
    say("      Bolt acknowledged the event before the listener ran: Slack will not resend it")
    _transcript(api, root, mark)
    deploy_then_kill(
        bot,
        guarded,
        marked="restart-guard marked the conversation durably, then began the drain…",
        died="Bolt has no SIGTERM handler: the process died mid-listener",
    )
    mark = len(api.sent)  # type: ignore[attr-defined]
    bot = start(2)
    say(f"[5] bot restarted (pid {bot.pid})")
    if guarded:
        api.wait_for_sent(  # type: ignore[attr-defined]
            lambda m: m.thread == root and "restarted" in m.text, timeout=30
        )
    # Show that the bot is up and serving; any notice was posted before it connected.
    say_hello("the thread", "hello?")
    api.inject_message(CHANNEL, "hello?", thread_ts=root)  # type: ignore[attr-defined]
    api.wait_for_sent(  # type: ignore[attr-defined]
        lambda m: m.thread == root and m.text == "echo: hello?", timeout=30
    )
    _transcript(api, root, mark)
    notified = any(
        "restarted" in m.text and m.thread == root
        for m in api.sent[mark:]  # type: ignore[attr-defined]
    )
    status = stop_and_report(
        bot,
        guarded,
        notified,
        told="resumed the interrupted conversation: the user was told in its thread",
    )
    clean = status == 0 if guarded else True  # unguarded, SIGTERM kills Bolt outright
    return notified == guarded and clean


def _stand_in() -> Callable[[], AbstractContextManager[Any]]:
    from restart_guard.testing.slack import SlackStandIn

    return SlackStandIn.running


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    return run_rounds(
        SLACK, "a real slack-bolt app (Socket Mode) on a loopback Slack", _stand_in, _round
    )
