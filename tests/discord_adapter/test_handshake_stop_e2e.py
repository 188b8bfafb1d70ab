"""A stop that lands while discord.py is in its gateway handshake ends like any other stop.

discord.py's ``Client.close()`` closes the HTTP session, and with it a gateway
socket still in its handshake (``DiscordWebSocket.from_client``, waiting for
HELLO); ``Client.connect()`` then takes the dropped socket for a reconnect and
reads ``self.ws.sequence`` of a websocket it never had (AttributeError: the
bot exits 1 with a traceback). The stand-in holds HELLO — a slow gateway — so
the SIGTERM lands inside the handshake every time, and each test counts what
a stop must get right: the exit code, the notices (none lost, none twice) and
the markers left.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard import Conversation, DirectoryStore, Marker
from restart_guard.testing.wait import eventually
from scenarios.drivers.base import Place
from scenarios.drivers.discord import DiscordDriver

pytestmark = pytest.mark.e2e

GATEWAY_CONNECT = "GATEWAY CONNECT"


@pytest.fixture(params=DiscordDriver.modes)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DiscordDriver]:
    """The demo bot as ``commands.Bot`` and as ``AutoShardedBot`` (a socket per shard)."""
    with DiscordDriver(request.param, tmp_path).running() as driver:
        yield driver


def leave_markers(driver: DiscordDriver, places: list[Place]) -> None:
    """Markers a SIGKILLed process left in ``places`` (the first is the oldest)."""
    now = time.time()
    guild = str(driver.api.guild_id)
    markers = [
        Marker(
            Conversation("discord", place.chat, None, guild),
            started_at=now - 60 + n,
            owner="elsewhere:1:dead",
            updated_at=now - 60 + n,
        )
        for n, place in enumerate(places)
    ]
    store = DirectoryStore(driver.marker_dir)
    store.open("elsewhere:1:dead")
    store.commit(markers, [])
    store.close()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR records of this process: the stand-in's server (a bot's are in its own log)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_sigterm_during_the_first_handshake_exits_0_and_repeats_no_notice(
    driver: DiscordDriver, caplog: pytest.LogCaptureFixture
) -> None:
    api = driver.api
    told = [driver.new_place(n) for n in range(2)]
    stuck = driver.new_place(2)
    leave_markers(driver, [stuck, *told])
    # 503 on every post: its notice waits in backoff, unfinished when the SIGTERM lands.
    api.fail_channel(int(stuck.chat), 503, 0, "503: Service Unavailable")
    api.hold_handshakes()
    bot = driver.start_bot(wait_ready=False)
    for place in told:
        driver.wait_notice(place)
    api.wait_for_call(GATEWAY_CONNECT, timeout=60)  # the bot waits for HELLO now

    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(60) == 0
    assert "Traceback" not in bot.log()
    assert driver.markers() == [stuck.conversation]  # the unfinished notice stays marked
    assert errors_logged(caplog) == []

    api.restore_channel(int(stuck.chat))
    api.release_handshakes()
    driver.start_bot()
    driver.wait_notice(stuck)
    eventually(lambda: not driver.markers(), 30, "the markers to be cleared")
    assert [len(driver.notices(p)) for p in (stuck, *told)] == [1, 1, 1]


def test_a_sigterm_during_a_resume_handshake_keeps_the_turn_marked(
    driver: DiscordDriver, caplog: pytest.LogCaptureFixture
) -> None:
    api = driver.api
    bot = driver.start_bot("--drain-timeout", "1")
    place = driver.start_work(driver.chat, 60)
    connected = sum(1 for method, _ in api.calls if method == GATEWAY_CONNECT)  # one per shard
    api.hold_handshakes()
    api.disconnect_clients(4000)  # discord.py reconnects to RESUME: held before HELLO
    api.wait_for_call(GATEWAY_CONNECT, timeout=60, count=connected + 1)

    bot.send_signal(signal.SIGTERM)
    assert bot.wait_exit(60) == 0
    assert "Traceback" not in bot.log()
    assert "drain timed out" in bot.log()
    assert driver.markers() == [place.conversation]  # the turn cut off stays marked
    assert errors_logged(caplog) == []

    api.release_handshakes()
    driver.start_bot()
    driver.wait_notice(place)
    eventually(lambda: not driver.markers(), 30, "the marker to be cleared")
    assert len(driver.notices(place)) == 1
