"""Real marker directories made by real guarded bots, and the real ``restart-guard`` command.

``fleet`` (once per module) runs three bots of the operator's layout —
``$RESTART_GUARD_DIR`` with one subfolder per bot — against loopback
Telegram stand-ins:

- ``killed``: replay on, a turn running in a forum topic and one queued
  behind it in a private chat, then SIGKILL: two ``in_flight`` markers with
  stored updates;
- ``drained``: one turn in flight, SIGTERM with a 0.5 s drain: the drain
  times out and one ``draining`` (pre-drain) marker stays;
- ``running``: one turn in flight and still running: a *held* marker.

Tests that change markers work on copies of the dead bots' folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from restart_guard.stores.directory import DirectoryStore
from restart_guard.testing.process import BotProcess
from restart_guard.testing.wait import eventually

pytest.importorskip("telegram")

from restart_guard.testing.telegram import TelegramStandIn

BOT = Path(__file__).with_name("guarded_bot.py")
FORUM, TOPIC, PRIVATE, DRAINED_CHAT, RUNNING_CHAT = -1001000000001, 7, 42, -1001000000077, 55
SECRET = "SECRET-words-of-the-user"
TOKENS = {"killed": "111:AAA", "drained": "222:BBB", "running": "333:CCC"}


def folder_of(token: str) -> str:
    """The bot's subfolder name, as ``default_marker_dir`` derives it from the bot id."""
    bot_id = token.split(":", 1)[0]
    return "telegram-" + hashlib.sha256(f"telegram:{bot_id}".encode()).hexdigest()[:12]


def cli_command() -> list[str]:
    """The installed ``restart-guard`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("restart-guard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "restart_guard.cli"]


@dataclass
class Result:
    """What one run of the command did."""

    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    user: int | None = None,
) -> Result:
    """Run ``restart-guard ARGS`` in a subprocess; the environment has no RESTART_GUARD_*."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RESTART_GUARD_")}
    done = subprocess.run(
        [*cli_command(), *args],
        env={**base, **(env or {})},
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        user=user,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Bots:
    """Start guarded bots (each on its own stand-in) and clean them up."""

    tmp: Path
    stack: contextlib.ExitStack
    started: list[BotProcess] = field(default_factory=list)
    apis: dict[str, TelegramStandIn] = field(default_factory=dict)

    def api(self, token: str) -> TelegramStandIn:
        if token not in self.apis:
            self.apis[token] = self.stack.enter_context(TelegramStandIn.running(token=token))
        return self.apis[token]

    def start(self, token: str, env: dict[str, str], *args: str) -> BotProcess:
        api = self.api(token)
        argv = [sys.executable, str(BOT), "--api-url", api.base_url, "--token", token, *args]
        since = time.monotonic()
        bot = BotProcess.start(argv, env=env, log_path=self.tmp / f"bot-{len(self.started)}.log")
        self.started.append(bot)
        bot.wait_for_log("Application started", timeout=30)
        api.wait_for_poll(timeout=30, since=since)
        return bot

    def close(self) -> None:
        for bot in self.started:
            bot.stop()
        for bot in self.started:
            print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")


def start_work(api: TelegramStandIn, chat: int, text: str, thread: int | None = None) -> None:
    """Start a /work turn; return once it runs and Telegram will not redeliver it."""
    update_id = api.inject_message(chat, text, message_thread_id=thread)
    api.wait_for_sent(lambda m: m.chat == str(chat) and m.text.startswith("working"))
    api.wait_until_confirmed(update_id)


@pytest.fixture
def bots(tmp_path: Path) -> Iterator[Bots]:
    with contextlib.ExitStack() as stack:
        fleet = Bots(tmp_path, stack)
        try:
            yield fleet
        finally:
            fleet.close()


@dataclass
class Fleet:
    """The module's marker directories (see the module docstring)."""

    base: Path
    bots: Bots
    running: BotProcess

    def folder(self, name: str) -> Path:
        return self.base / folder_of(TOKENS[name])

    def copy_dead(self, to: Path) -> Path:
        """A new base directory with copies of the dead bots' folders."""
        for name in ("killed", "drained"):
            shutil.copytree(self.folder(name), to / folder_of(TOKENS[name]))
        return to


def wait_for_markers(folder: Path, count: int) -> None:
    """Until the bot's write-ahead batches have made ``count`` markers durable."""
    eventually(
        lambda: len(DirectoryStore(folder).load()) == count, what=f"{count} marker(s) in {folder}"
    )


def make_dead_markers(bots: Bots, base: Path) -> None:
    """Run the ``killed`` and ``drained`` bots (see the module docstring)."""
    env = {"RESTART_GUARD_DIR": str(base)}
    # Blocking, because only a blocking handler's marker keeps the stored update.
    killed = bots.start(TOKENS["killed"], env, "--replay", "--blocking")
    api = bots.api(TOKENS["killed"])
    start_work(api, FORUM, f"/work 600 {SECRET}", TOPIC)
    # Queued behind the first: in flight (and marked) from the moment it is fetched.
    api.wait_until_confirmed(api.inject_message(PRIVATE, "/work 600"))
    wait_for_markers(base / folder_of(TOKENS["killed"]), 2)
    killed.kill()
    drained = bots.start(TOKENS["drained"], env, "--drain-timeout", "0.5")
    start_work(bots.api(TOKENS["drained"]), DRAINED_CHAT, "/work 600")
    drained.send_signal(signal.SIGTERM)
    drained.wait_for_log("drain timed out")
    drained.wait_exit(30)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    base = tmp / "state"
    with contextlib.ExitStack() as stack:
        bots = Bots(tmp, stack)
        try:
            make_dead_markers(bots, base)
            running = bots.start(TOKENS["running"], {"RESTART_GUARD_DIR": str(base)})
            start_work(bots.api(TOKENS["running"]), RUNNING_CHAT, "/work 600")
            wait_for_markers(base / folder_of(TOKENS["running"]), 1)
            yield Fleet(base, bots, running)
        finally:
            bots.close()


def marker_rows(result: Result) -> list[dict[str, Any]]:
    """The markers of a ``status --json`` result."""
    rows: list[dict[str, Any]] = result.json()["markers"]
    return rows


def status_json(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run ``restart-guard status --json ARGS`` and return its markers."""
    result = run_cli("status", "--json", *args, env=env)
    assert result.status == 0, result
    return marker_rows(result)


def chats(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(chat, thread) of each marker, sorted."""
    return sorted((r["chat"], r["thread"]) for r in rows)
