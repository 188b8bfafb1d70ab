"""An interrupted turn runs exactly once after a restart: replayed, or redelivered, never both.

Per platform path (Telegram polling and webhook, Slack Socket Mode and HTTP,
Discord), the bot is SIGKILLed mid-turn at a controlled instant — (a) the
update handed out and its marker durable, the platform's acknowledgement
held back (``hold_acks``: Telegram's confirming offset or webhook answer,
Slack's envelope ack or HTTP 200 never arrive), or (b) after the platform
has the acknowledgement — then restarted, with replay on and off. Counted:
how many times the handler started and finished after the restart, and
the notices. See ``restart_guard._redelivery`` for which copy wins.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing.markers import wait_for_markers

from .conftest import DRIVERS
from .drivers.base import NOTICE, Driver, Place

pytestmark = pytest.mark.e2e

#: (driver, mode) of every platform path, and whether it can redeliver.
PATHS = [
    pytest.param((d, mode), id=f"{d.name or d.platform}-{mode}")
    for d in DRIVERS
    for mode in d.modes
    if mode not in ("non-blocking", "async-socket", "async-http")  # same path as their twins
]
WORK = 3


@pytest.fixture(params=PATHS)
def path_driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    driver_class, mode = request.param
    pytest.importorskip(driver_class.framework)
    with driver_class(mode, tmp_path).running() as driver:
        yield driver


def texts(d: Driver, place: Place, start: str) -> list[str]:
    return [m.text for m in d.posted(place) if m.text.startswith(start)]


@pytest.mark.parametrize("replay", [False, True], ids=["no-replay", "replay"])
@pytest.mark.parametrize("acked", [False, True], ids=["killed-before-ack", "killed-after-ack"])
def test_interrupted_turn_runs_exactly_once_after_a_restart(
    path_driver: Driver, acked: bool, replay: bool
) -> None:
    d = path_driver
    if not (acked or d.redelivers):
        pytest.skip(f"{d.platform} has no acknowledgement: a dispatched event is gone")
    args = ("--replay",) if replay else ()
    bot = d.start_bot(*args)
    if not acked:
        d.hold_acks()
    said = d.say(d.topic, d.command("work", WORK))
    place = said.place
    d.api.wait_for_sent(lambda m: place.holds(m) and m.text.startswith("working"))
    if acked:
        d.wait_delivered(said)
    wait_for_markers(d.marker_dir, d._marks(place))  # durable: both records of the turn exist
    assert bot.kill() == -signal.SIGKILL

    # Released, the platform redelivers what the dead process never acknowledged.
    if not acked and d.release_before_restart:
        d.release_acks()
    second = d.start_bot(*args)
    if not acked and not d.release_before_restart:
        d.release_acks()
    reruns = replay or not acked  # replayed by restart-guard, or redelivered by the platform
    if reruns:
        d.api.wait_for_sent(lambda m: place.holds(m) and m.text.startswith("done"), timeout=60)
    else:
        d.wait_notice(place)
    if d.redelivers:
        d.wait_delivered(said)  # the platform will not deliver it again: no copy is still coming
    d.serve_one()
    second.send_signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0  # the drain finishes every run that started

    started = len(texts(d, place, "working")) - 1  # the first one was the killed run
    finished = len(texts(d, place, "done"))
    notices = [m.text for m in d.notices(place)]
    print(
        f"MATRIX {d.name or d.platform}-{d.mode} acked={acked} replay={replay}: "
        f"started={started} finished={finished} notices={len(notices)}"
    )
    assert (started, finished) == ((1, 1) if reruns else (0, 0))
    if replay:
        assert len(notices) == 1
        assert "Picking it up again" in notices[0]
    elif acked:
        assert len(notices) == 1
        assert "send it again" in notices[0]
    elif d.peeks_pending:
        assert notices == []  # the redelivered turn answers; no "please send it again"
    else:
        # No way to look at the platform's pending copy before the notice went out.
        assert len(notices) <= 1
    assert all(NOTICE in n for n in notices)
    assert d.markers() == []
