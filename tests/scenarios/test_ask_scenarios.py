"""``replay="ask"`` with real bot processes: the notice asks, the asker's press decides.

Each test kills the demo bot mid-turn (``--ask``), restarts it, and presses
the notice's buttons as a user would — through the platform's stand-in, so
the press travels the platform's own path (callback query, component
interaction, Block Kit action) to the real framework.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from restart_guard.testing._standin import SentMessage

from .conftest import DRIVERS, _param, _running
from .drivers.base import Driver, Place

pytestmark = pytest.mark.e2e

CONTINUE, DISMISS = "Continue", "Dismiss"


@pytest.fixture(
    params=[_param(d, mode) for d in DRIVERS for mode in (d.button_modes or d.modes[:1])]
)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """Each platform whose driver can press buttons, in each of its ``button_modes``."""
    driver_class, _ = request.param
    if not driver_class.has_buttons:
        pytest.skip(
            f"the {driver_class.name or driver_class.platform} driver cannot press buttons yet"
        )
    yield from _running(request, tmp_path)


def interrupted_question(d: Driver, *args: str) -> tuple[Place, SentMessage]:
    """A turn killed mid-work, the bot back up with ``--ask``: the question and where it is."""
    bot = d.start_bot("--ask", *args)
    place = d.start_work(d.topic, 3)
    bot.kill()
    d.start_bot("--ask", *args)
    question = d.wait_notice(place)
    assert d.buttons(question) == [CONTINUE, DISMISS]
    return place, question


def texts(d: Driver, place: Place) -> list[str]:
    return [m.text for m in d.posted(place)]


def test_continue_reruns_the_turn_once_and_edits_the_question(driver: Driver) -> None:
    d = driver
    place, question = interrupted_question(d)
    assert texts(d, place)[-1] == question.text  # nothing re-ran before the press
    d.press(question, CONTINUE, d.users[0])
    d.api.wait_for_sent(lambda m: place.holds(m) and m.text.startswith("done"))
    assert "Picking it up again" in d.wait_edited(question, "Picking it up again")
    assert d.buttons(question) == []
    d.serve_one()
    assert texts(d, place)[-2:] == ["working on it (3s)…", "done: 3s of work finished"]
    assert sum(t.startswith("working") for t in texts(d, place)) == 2  # once more, not twice
    assert d.markers() == []


def test_dismiss_drops_the_turn_and_edits_the_question(driver: Driver) -> None:
    d = driver
    place, question = interrupted_question(d)
    d.press(question, DISMISS, d.users[0])
    d.wait_edited(question, "Dismissed")
    assert d.buttons(question) == []
    d.serve_one()
    assert sum(t.startswith("working") for t in texts(d, place)) == 1
    assert d.markers() == []


def test_another_users_press_is_refused_privately(driver: Driver) -> None:
    d = driver
    place, question = interrupted_question(d)
    refused = d.press(question, CONTINUE, d.users[1])
    assert "Only the person" in d.private_answer(refused)
    assert d.buttons(question) == [CONTINUE, DISMISS]  # still open for the asker
    assert d.text_now(question) == question.text
    assert d.markers() == [place.conversation]
    d.press(question, DISMISS, d.users[0])
    d.wait_edited(question, "Dismissed")
    assert sum(t.startswith("working") for t in texts(d, place)) == 1


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_restart_between_the_question_and_the_press_still_honours_it(
    driver: Driver, stop: str
) -> None:
    d = driver
    place, question = interrupted_question(d)
    bot = d.bots[-1]
    if stop == "sigterm":
        bot.send_signal(signal.SIGTERM)
        assert bot.wait_exit(30) == 0
    else:
        bot.kill()
    assert d.markers() == [place.conversation]  # the question outlives the process

    d.start_bot("--ask")
    d.serve_one()  # up and serving: start-up recovery is over
    assert d.notices(place) == [question]  # asked once, not again
    d.press(question, CONTINUE, d.users[0])
    d.api.wait_for_sent(lambda m: place.holds(m) and m.text.startswith("done"))
    d.wait_edited(question, "Picking it up again")
    assert sum(t.startswith("working") for t in texts(d, place)) == 2
    assert d.markers() == []


def test_an_unanswered_question_expires(driver: Driver) -> None:
    d = driver
    place, question = interrupted_question(d, "--max-age", "12")
    assert "Nobody answered" in d.wait_edited(question, "Nobody answered")
    assert d.buttons(question) == []
    assert d.markers() == []
    assert sum(t.startswith("working") for t in texts(d, place)) == 1
