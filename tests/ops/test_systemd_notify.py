"""``Type=notify``: a real bot sends READY=1 after start-up recovery and STOPPING=1 at the drain."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard._systemd import notify, notify_ready

from .conftest import PRIVATE, TOKENS, Bots, Fleet

pytestmark = pytest.mark.e2e


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket like systemd's, at a short path (sun_path holds 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="rg-notify-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory)


def test_ready_after_recovery_and_stopping_when_the_drain_begins(
    fleet: Fleet, bots: Bots, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    base = fleet.copy_dead(tmp_path / "state")
    api = bots.api(TOKENS["killed"])
    bot = bots.start(TOKENS["killed"], {"RESTART_GUARD_DIR": str(base), "NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1"
    # Start-up recovery came first: the interrupted conversations were told before READY.
    assert {m.chat for m in api.sent if "restarted" in m.text} == {str(PRIVATE), "-1001000000001"}
    bot.send_signal(signal.SIGTERM)
    assert sock.recv(4096) == b"STOPPING=1"
    assert bot.wait_exit(30) == 0


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify_ready() is False


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"restart-guard-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("STATUS=draining", "STOPPING=1") is True
        assert sock.recv(100) == b"STATUS=draining\nSTOPPING=1"


def test_a_socket_nobody_listens_on_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify_ready() is False
    assert "could not notify systemd (READY=1)" in caplog.text
