"""The ``restart-guard`` command.

``restart-guard demo`` shows the restart gap and the fix on loopback;
``status`` (``list``), ``clear`` and ``doctor`` are for operators (see
:mod:`restart_guard.ops`). Each subcommand lives in its own module and
registers a parser here.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from ._registry import ADAPTERS, spec_for_platform

__all__ = ["main"]

#: The platforms with a ``restart-guard demo``, from the adapter registry.
DEMO_PLATFORMS = [spec.platform for spec in ADAPTERS if spec.demo is not None]


def _demo(args: argparse.Namespace) -> int:
    demo = spec_for_platform(args.platform).demo
    try:
        runner = importlib.import_module(demo or "")
    except (ModuleNotFoundError, ValueError):
        print(f"the {args.platform} demo is not available in this version")
        return 2
    status: int = runner.run_demo()
    return status


#: reStructuredText markup the subcommands' docstrings use: ``literal``,
#: :role:`target` and *emphasis*. ``--help`` prints their text without it.
_RST_MARKUP = re.compile(r"``([^`]+?)``|:[a-z]+:`~?([^`]+?)`|(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")


def plain_text(text: str) -> str:
    """``text`` with its reStructuredText markup removed, for a terminal."""
    return _RST_MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="restart-guard",
        description="Never lose a conversation to a bot restart.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="show a restart losing a conversation, then restart-guard saving it"
    )
    demo.add_argument("--platform", choices=DEMO_PLATFORMS, default="telegram")
    demo.set_defaults(run=_demo)
    # Operators' commands; their modules import nothing heavy until they run.
    from .ops import clear, doctor, status

    status.register(commands)
    clear.register(commands)
    doctor.register(commands)
    # The subcommands' descriptions are their modules' docstrings, written for
    # the API reference; a terminal gets them as plain text.
    for subparser in commands.choices.values():
        if subparser.description:
            subparser.description = plain_text(subparser.description)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``restart-guard`` console script."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
