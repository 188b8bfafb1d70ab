"""The demo bots' shared command line: the guard's options, written and read in one place.

Each demo bot (``restart_guard.demo.<platform>_bot``) adds its platform's own
options to :func:`guard_options` and wraps its bot in :func:`guard_from`;
the demo runners, the end-to-end tests and the benchmarks start a bot with
:func:`bot_argv`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import restart_guard

__all__ = ["bot_argv", "guard_from", "guard_options"]


def bot_argv(module: str, *options: str, marker_dir: Path, guarded: bool = True) -> list[str]:
    """The command line that runs the demo bot ``module`` with ``options`` (its own, or the
    guard's: ``--drain-timeout`` …); ``guarded=False`` adds ``--unguarded``."""
    argv = [sys.executable, "-m", module, "--marker-dir", str(marker_dir), *options]
    if not guarded:
        argv.append("--unguarded")
    return argv


def guard_options(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the bot's ``doc``, with the options every demo bot takes."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--marker-dir", required=True)
    parser.add_argument("--drain-timeout", type=float, default=20.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--replay", action="store_true")
    parser.add_argument(
        "--ask", action="store_true", help='replay="ask": the notice asks Continue / Dismiss'
    )
    parser.add_argument("--max-age", type=float, default=24 * 3600.0)
    parser.add_argument(
        "--store",
        metavar="URL",
        help="a redis:// URL: markers in Redis, --marker-dir is the fallback when it is down",
    )
    parser.add_argument("--unguarded", action="store_true", help="leave restart-guard out")
    return parser


def guard_from(args: argparse.Namespace, **options: Any) -> Callable[[Any], Any]:
    """``restart_guard.protect`` as the options ask for it (extra ``options`` passed on);
    with ``--unguarded``, a decorator that leaves the bot as it is."""
    if args.unguarded:
        return lambda bot: bot
    return restart_guard.protect(
        marker_dir=args.marker_dir,
        drain_timeout=args.drain_timeout,
        max_attempts=args.max_attempts,
        replay="ask" if args.ask else args.replay,
        max_age=args.max_age,
        store=args.store,
        **options,
    )
