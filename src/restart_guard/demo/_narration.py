"""What every ``restart-guard demo`` runner prints, and the frame around its two rounds.

Each platform's runner keeps its own steps (how its bot starts, what its
users send, how its process dies); the narration they share lives here so the
three demos read alike and change together.
"""

from __future__ import annotations

import importlib
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .._registry import AdapterSpec

__all__ = [
    "begin_round",
    "deploy_then_kill",
    "missing_framework",
    "run_rounds",
    "say",
    "say_hello",
    "stop_and_report",
    "stop_timeout_kill",
    "transcript",
]


def say(text: str) -> None:
    """Print one line of the demo now, not when the buffer fills, so it keeps pace."""
    print(text, flush=True)


def missing_framework(spec: AdapterSpec, exc: Exception) -> None:
    """Say what to install when the demo's framework (or the stand-in's aiohttp) is missing."""
    say(
        f"the {spec.platform} demo needs {spec.framework} and aiohttp: "
        f"{spec.pip_install('testing')} ({exc})"
    )


def transcript(sent: Iterable[Any], where: Callable[[Any], str]) -> None:
    """Print what the bot posted, each message with the place ``where`` names."""
    sent = list(sent)
    if not sent:
        say("      (nothing)")
    for message in sent:
        say(f"      bot → {where(message)}: {message.text}")


def begin_round(guarded: bool) -> str:
    """Print the round's heading; return its name for log and marker paths."""
    label = "WITH restart-guard" if guarded else "WITHOUT restart-guard"
    say(f"\n=== {label} ===")
    return "guarded" if guarded else "unguarded"


def stop_timeout_kill(bot: Any) -> int:
    """SIGKILL the draining bot as a service manager does; return its exit status."""
    time.sleep(1.0)  # the service manager's stop timeout, shortened for the demo
    bot.process.kill()
    status: int = bot.wait_exit(30)
    return status


def deploy_then_kill(bot: Any, guarded: bool, *, marked: str, died: str) -> int:
    """Steps 3 and 4 for a framework without a SIGTERM handler of its own.

    Guarded, the bot marks and drains until the stop timeout kills it; plain, the
    SIGTERM itself ends it. ``marked`` and ``died`` are the lines that say so.
    Returns the bot's exit status.
    """
    say("[3] deploy: SIGTERM")
    bot.send_signal(signal.SIGTERM)
    if guarded:
        bot.wait_for_log("marked before the drain", timeout=30)
        say(f"      {marked}")
        status = stop_timeout_kill(bot)
        say(f"[4] the service manager's stop timeout expires: SIGKILL (exit {status})")
    else:
        status = bot.wait_exit(30)
        say(f"[4] {died} (exit {status})")
    return status


def say_hello(where: str, text: str) -> None:
    """Print step 6's heading: the user, who got no answer, writes ``text`` again."""
    say(f"[6] the user, still without an answer, writes again in {where}: {text}")
    say(f"      what the user sees in {where} after the restart:")


def _exit_text(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited {status}"


def stop_and_report(bot: Any, guarded: bool, notified: bool, *, told: str) -> int:
    """Steps 7 and 8: an ordinary stop with nothing in flight, then the verdict.

    ``told`` completes "restart-guard …" when the guarded bot posted its notice.
    Returns the bot's exit status.
    """
    bot.send_signal(signal.SIGTERM)
    status: int = bot.wait_exit(30)
    say(
        "[7] the demo stops the bot again (SIGTERM, nothing in flight): "
        f"the bot {_exit_text(status)}"
    )
    if guarded:
        verdict = f"restart-guard {told}" if notified else "NO NOTICE (bug!)"
    else:
        verdict = (
            "the interrupted conversation was silently lost"
            if not notified
            else "an unexpected notice"
        )
    say(f"[8] result: {verdict}")
    return status


def run_rounds(
    spec: AdapterSpec,
    title: str,
    stand_in: Callable[[], Callable[[], AbstractContextManager[Any]]],
    play_round: Callable[[Any, Path, bool], bool],
) -> int:
    """Play the unguarded round, then the guarded one, on one stand-in.

    ``stand_in`` imports the stand-in and returns its ``running``; when the
    framework (which the bot subprocess needs) or the stand-in is missing,
    the demo says what to install. Returns the process exit status: 0 when
    both rounds behaved, 2 when something is missing.
    """
    try:
        importlib.import_module(spec.classes[0][0])
        running = stand_in()
    except ImportError as exc:
        missing_framework(spec, exc)
        return 2
    started = time.monotonic()
    say(f"restart-guard demo: {title}")
    say("(no token, no network; SIGTERM then SIGKILL 1 s later, as a service manager does)")
    with (
        tempfile.TemporaryDirectory(prefix="restart-guard-demo-") as tmp,
        running() as api,
    ):
        ok = play_round(api, Path(tmp), False)
        ok = play_round(api, Path(tmp), True) and ok
    say(f"\ndone in {time.monotonic() - started:.1f}s — " + ("as expected" if ok else "UNEXPECTED"))
    return 0 if ok else 1
