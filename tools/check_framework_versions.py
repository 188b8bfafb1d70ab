"""Canary: does restart-guard still work with the newest release of each framework?

Installs the newest release of python-telegram-bot, discord.py, slack-bolt
(+ slack-sdk) and aiogram — newest overall, not only inside the supported range — in a
scratch venv per framework, then runs there:

1. the compatibility check ``protect()`` runs (release in range, every hooked
   internal present with its shape), and
2. the adapter's fast tests (its tests minus the end-to-end ones).

and prints a table framework × version × result. A scheduled job runs it: the
day a framework ships a release that moves a hooked internal is a red line
here, not a user's lost conversation. Exit status 1 when any line is red.

    python tools/check_framework_versions.py [--keep DIR] [telegram discord slack aiogram]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: platform -> (distributions to install at their newest, fast test paths)
FRAMEWORKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "telegram": (
        ("python-telegram-bot",),
        ("tests/telegram_adapter", "tests/testing/test_telegram_standin.py"),
    ),
    "discord": (
        ("discord.py",),
        ("tests/discord_adapter", "tests/testing/test_discord_standin.py"),
    ),
    "slack": (
        ("slack-bolt", "slack-sdk"),
        ("tests/slack_adapter", "tests/testing/test_slack_standin.py"),
    ),
    "aiogram": (
        ("aiogram",),
        ("tests/aiogram_adapter", "tests/testing/test_telegram_standin_aiogram.py"),
    ),
}

_CHECK = """
import sys
from importlib import metadata
from restart_guard import _compat
support = _compat.FRAMEWORKS[sys.argv[1]]
found = [f"{r.distribution} {metadata.version(r.distribution)}" for r in support.requirements]
print(", ".join(found))
try:
    _compat.check_framework(sys.argv[1])
except _compat.UnsupportedFrameworkVersion as exc:
    print(exc)
    sys.exit(1)
"""


def _run(args: list[str], log: Path) -> int:
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        return subprocess.run(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode


def check(platform: str, work: Path) -> tuple[str, str, str, float]:
    """(platform, versions installed, result, seconds) for one framework."""
    started = time.monotonic()
    distributions, tests = FRAMEWORKS[platform]
    venv, log = work / f"venv-{platform}", work / f"{platform}.log"
    python = str(venv / "bin" / "python")
    if _run([sys.executable, "-m", "venv", str(venv)], log) != 0:
        return platform, "?", f"venv failed (see {log})", time.monotonic() - started
    # Not through the extra, whose upper bound would hide a new major release.
    install = [python, "-m", "pip", "install", "-q", "--upgrade", "-e", ".[testing]"]
    if _run([*install, *distributions], log) != 0:
        return platform, "?", f"install failed (see {log})", time.monotonic() - started
    probe = subprocess.run(
        [python, "-c", _CHECK, platform], cwd=ROOT, capture_output=True, text=True
    )
    versions, _, problem = probe.stdout.partition("\n")
    if probe.returncode != 0:
        result = "RED: " + (problem.strip() or probe.stderr.strip().splitlines()[-1])
        return platform, versions, result, time.monotonic() - started
    tests_run = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not e2e"]
    if _run([*tests_run, *tests], log) != 0:
        return platform, versions, f"RED: fast tests failed (see {log})", time.monotonic() - started
    summary = [line for line in log.read_text().splitlines() if " passed" in line]
    return platform, versions, "ok " + (summary[-1] if summary else ""), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # No ``choices``: argparse checks an empty ``nargs="*"`` list against them as one value.
    parser.add_argument(
        "platforms", nargs="*", help=f"any of {', '.join(sorted(FRAMEWORKS))} (default: all)"
    )
    parser.add_argument("--keep", type=Path, help="work in (and keep) this directory")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.platforms) - set(FRAMEWORKS))
    if unknown:
        parser.error(f"unknown framework(s) {', '.join(unknown)}; choose from {sorted(FRAMEWORKS)}")
    with tempfile.TemporaryDirectory(prefix="rg-canary-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        rows = [check(platform, work) for platform in args.platforms or sorted(FRAMEWORKS)]
    print(f"{'framework':<10} {'version':<40} {'time':>6}  result")
    for platform, versions, result, seconds in rows:
        print(f"{platform:<10} {versions:<40} {seconds:>5.0f}s  {result}")
    return 0 if all(r.startswith("ok") for _, _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
