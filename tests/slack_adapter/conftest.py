"""Fixtures: a Slack stand-in in a thread and real bot processes pointed at it."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from restart_guard import DirectoryStore
from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.wait import eventually

SOCKET_MODES = ("socket", "async-socket")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Bot:
    """A demo bot process and how to reach it."""

    process: BotProcess
    mode: str
    url: str | None  # HTTP modes: the app's event endpoint

    def send(
        self, api: SlackStandIn, channel: str, text: str, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A user posts ``text``: over Socket Mode, or as a signed Events API request."""
        if self.url is None:
            return api.inject_message(channel, text, thread_ts=thread_ts)
        event = api.message_event(channel, text, thread_ts=thread_ts)
        status, body = api.post_event(self.url, event)
        assert status == 200, (status, body)
        return event

    def acked(self, api: SlackStandIn, event: dict[str, Any]) -> None:
        """Slack considers ``event`` delivered: it will never send it again."""
        if self.url is None:
            api.wait_for_ack(event)
        # HTTP: post_event returned Bolt's 200 already.

    def terminate_then_kill(self, grace: float = 1.0) -> int:
        return self.process.terminate_then_kill(after_log="marked before the drain", grace=grace)

    def stop_gracefully(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait_exit(30)


StartBot = Callable[..., Bot]


def _exited(process: BotProcess) -> bool:
    return process.process.poll() is not None


@pytest.fixture
def api() -> Iterator[SlackStandIn]:
    with SlackStandIn.running() as standin:
        yield standin


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    return tmp_path / "markers"


@pytest.fixture
def start_bot(api: SlackStandIn, marker_dir: Path, tmp_path: Path) -> Iterator[StartBot]:
    """Start the demo bot (restart_guard.demo.slack_bot) as a real subprocess."""
    started: list[BotProcess] = []

    def start(*args: str, mode: str = "socket", wait_ready: bool = True) -> Bot:
        port = None if mode in SOCKET_MODES else free_port()
        argv = [
            sys.executable,
            "-m",
            "restart_guard.demo.slack_bot",
            "--mode",
            mode,
            "--marker-dir",
            str(marker_dir),
            *(["--port", str(port)] if port else []),
            *args,
        ]
        connections = api.total_connections
        process = BotProcess.start(
            argv, env=api.env(), log_path=tmp_path / f"bot-{len(started) + 1}.log"
        )
        started.append(process)
        url = None if port is None else f"http://127.0.0.1:{port}/slack/events"
        if wait_ready:
            # Start-up recovery (the notices) comes before the connection / the port.
            if port is None:
                eventually(
                    lambda: api.total_connections > connections or _exited(process),
                    timeout=30,
                    what="a Socket Mode connection",
                )
                if _exited(process):
                    raise RuntimeError(f"the bot exited while starting:\n{process.log()}")
            else:
                # App.start() binds before it logs; aiohttp prints this once it listens.
                ready = "Running on http" if mode == "async-http" else "Bolt app is running"
                process.wait_for_log(ready, timeout=30)
        return Bot(process, mode, url)

    yield start
    for process in started:
        process.stop()
    for process in started:
        # Shown by pytest only when the test fails.
        log = process.log()
        print(f"===== {process.log_path.name} (exit {process.process.returncode}) =====\n{log}")


def notices(api: SlackStandIn, channel: str, thread: str | None = None) -> list[str]:
    """Resume notices posted in a channel (and thread)."""
    return [
        m.text
        for m in api.sent_to(channel, thread)
        if "restarted" in m.text or "could not finish" in m.text
    ]


def is_notice(channel: str, thread: str | None = None) -> Callable[[SentMessage], bool]:
    def check(m: SentMessage) -> bool:
        return (
            m.chat == channel and (thread is None or m.thread == thread) and "restarted" in m.text
        )

    return check


def markers_in(path: Path) -> list[str]:
    return [s.marker.conversation.chat for s in DirectoryStore(path).load()]
