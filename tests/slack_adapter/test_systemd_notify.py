"""Type=notify: READY=1 once start-up recovery is done, STOPPING=1 when the drain begins."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing.process import BotProcess
from restart_guard.testing.slack import SlackStandIn


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)  # the deadline for each datagram
        yield sock, path


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["socket", "async-socket"])
def test_slack_bot_notifies_systemd(
    api: SlackStandIn,
    marker_dir: Path,
    tmp_path: Path,
    notify_socket: tuple[socket.socket, str],
    mode: str,
) -> None:
    sock, path = notify_socket
    argv = [sys.executable, "-m", "restart_guard.demo.slack_bot", "--mode", mode]
    argv += ["--marker-dir", str(marker_dir)]
    bot = BotProcess.start(
        argv, env={**api.env(), "NOTIFY_SOCKET": path}, log_path=tmp_path / "bot.log"
    )
    try:
        assert sock.recv(4096) == b"READY=1", bot.log()
        api.wait_for_connection(timeout=30)
        bot.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1", bot.log()
        assert bot.wait_exit(30) == 0, bot.log()
    finally:
        bot.stop()
