"""``restart-guard demo --platform discord``: the restart gap, then the same restart with the guard.

Everything runs on loopback: the Discord stand-in from ``restart_guard.testing``
in this process, a real discord.py bot in a subprocess
(:mod:`restart_guard.demo.discord_bot`), and real signals — SIGTERM as a
deploy sends it, SIGKILL one second later as a service manager does when the
drain outlives its limit.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

READY = "demo bot ready"


def _say(text: str) -> None:
    print(text, flush=True)


def _transcript(api: Any, since: int) -> None:
    sent = api.sent[since:]
    if not sent:
        _say("      (nothing)")
    for message in sent:
        where = "thread" if message.thread else f"channel {message.chat}"
        _say(f"      bot → {where}: {message.text}")


def _wait_new(api: Any, predicate: Any) -> None:
    """Until one more message than now matches (the rounds share one stand-in)."""
    before = sum(1 for m in api.sent if predicate(m))
    api.wait_for_sent(predicate, timeout=30, count=before + 1)


def _round(api: Any, workdir: Path, guarded: bool) -> bool:
    from restart_guard.testing.process import BotProcess

    label = "WITH restart-guard" if guarded else "WITHOUT restart-guard"
    _say(f"\n=== {label} ===")
    name = "guarded" if guarded else "unguarded"
    argv = [
        sys.executable,
        "-m",
        "restart_guard.demo.discord_bot",
        "--marker-dir",
        str(workdir / f"markers-{name}"),
        "--drain-timeout",
        "20",
    ]
    if not guarded:
        argv.append("--unguarded")

    def start(run: int) -> BotProcess:
        bot = BotProcess.start(argv, env=api.env_vars(), log_path=workdir / f"{name}-{run}.log")
        bot.wait_for_log(READY, timeout=30)
        return bot

    bot = start(1)
    _say(f"[1] bot started (pid {bot.pid}), connected to the loopback gateway")
    mark = len(api.sent)
    api.inject_message(api.thread_id, "!work 60")
    _say("[2] a user asks for 60 s of work in a thread: !work 60")
    _wait_new(api, lambda m: m.text.startswith("working"))
    _transcript(api, mark)
    _say("[3] deploy: SIGTERM")
    bot.send_signal(signal.SIGTERM)
    if guarded:
        bot.wait_for_log("marked before the drain", timeout=30)
        _say("      restart-guard marked the conversation durably, then began the drain")
        time.sleep(1.0)  # the service manager's stop timeout, shortened for the demo
        bot.process.kill()
        status = bot.wait_exit(30)
        _say(f"[4] the service manager's stop timeout expires: SIGKILL (exit {status})")
    else:
        status = bot.wait_exit(30)
        _say(f"[4] discord.py has no SIGTERM handler: the bot died at once (exit {status})")
    mark = len(api.sent)
    bot = start(2)
    _say(f"[5] bot restarted (pid {bot.pid}); Discord does not redeliver the message")
    # Show that the bot is up and serving; any notice was posted before the gateway.
    api.inject_message(api.thread_id, "hello?")
    _wait_new(api, lambda m: m.text == "echo: hello?")
    _say("[6] what the user sees in the thread after the restart:")
    _transcript(api, mark)
    notified = any("restarted" in m.text for m in api.sent[mark:])
    bot.send_signal(signal.SIGTERM)
    status = bot.wait_exit(30)
    if guarded:
        verdict = "told the user in the right thread" if notified else "NO NOTICE (bug!)"
    else:
        verdict = "silently lost" if not notified else "unexpected notice"
    _say(f"[7] result: the interrupted conversation was {verdict} (bot exited {status})")
    # A plain bot also dies from that last SIGTERM; the guarded one drains and exits 0.
    return notified == guarded and (status == 0 or not guarded)


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    try:
        import discord  # noqa: F401

        from restart_guard.testing.discord import DiscordStandIn
    except ImportError as exc:
        _say(
            "the Discord demo needs discord.py and aiohttp: "
            f'pip install "restart-guard[discord,testing]" ({exc})'
        )
        return 2
    started = time.monotonic()
    _say("restart-guard demo: a real discord.py bot process on a loopback Discord")
    _say("(no token, no network; SIGTERM then SIGKILL 1 s later, as a service manager does)")
    with (
        tempfile.TemporaryDirectory(prefix="restart-guard-demo-") as tmp,
        DiscordStandIn.running() as api,
    ):
        ok = _round(api, Path(tmp), guarded=False)
        ok = _round(api, Path(tmp), guarded=True) and ok
    _say(
        f"\ndone in {time.monotonic() - started:.1f}s — " + ("as expected" if ok else "UNEXPECTED")
    )
    return 0 if ok else 1
