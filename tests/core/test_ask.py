"""``replay="ask"`` in the core: a real Guard and DirectoryStore, a fake platform.

The question is posted instead of the notice, waits in phase ASKED (on
disk, with the notice's message id) for the asker's press, survives a
restart, and expires at ``max_age``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from restart_guard import Guard, Marker, Phase, Resumer, Settings
from restart_guard._ask import (
    ASK_NOTICE,
    CLOSED_ANSWER,
    CONTINUED_NOTICE,
    DISMISSED_NOTICE,
    EXPIRED_NOTICE,
    NOT_YOURS_ANSWER,
    Choice,
    Press,
    parse_press,
    press_data,
    press_from,
    question_token,
)
from restart_guard._marker import Origin
from restart_guard.testing.wait import eventually_async

from .conftest import FakeLink, conv, leave_markers, marker, stored

MakeGuard = Callable[..., Guard]
ASKER = "501"
ASK = Settings(replay="ask")


def interrupted(age: float = 5.0, **changes: object) -> Marker:
    """A turn of user ASKER cut off ``age`` seconds ago, with its update stored."""
    m = marker(-1001, thread="7", age=age, payload=[{"update_id": 1}])
    return m.with_changes(origins=(Origin(message="12", user=ASKER),), **changes)


async def resume(
    make_guard: MakeGuard, marker_dir: Path, m: Marker | None, settings: Settings = ASK
) -> tuple[Guard, Resumer, FakeLink]:
    if m is not None:
        leave_markers(marker_dir, [m])
    guard = make_guard(settings, start=False)
    claimed = guard.start()
    link = FakeLink()
    resumer = Resumer(guard, link)
    resumer.start(claimed)
    assert await resumer.wait(5)
    assert guard.flush()
    return guard, resumer, link


class Asked(NamedTuple):
    """A turn of ASKER's, cut off, and the question posted in its place."""

    marker: Marker
    guard: Guard
    resumer: Resumer
    link: FakeLink


@pytest.fixture
async def asked(make_guard: MakeGuard, marker_dir: Path) -> Asked:
    m = interrupted()
    return Asked(m, *await resume(make_guard, marker_dir, m))


def press(choice: Choice, m: Marker, user: str = ASKER) -> Press:
    return Press(choice, question_token(m), user, handle=f"press-by-{user}")


def on_disk(guard: Guard) -> list[Marker]:
    return list(stored(guard.store).values())


async def test_the_notice_asks_and_the_marker_waits_in_phase_asked(asked: Asked) -> None:
    m, guard, _, link = asked
    assert link.questions == [(conv(-1001, thread="7"), ASK_NOTICE, question_token(m))]
    [waiting] = on_disk(guard)
    assert (waiting.phase, waiting.question, waiting.noticed) == (Phase.ASKED, "q1", True)
    assert waiting.attempts == 0
    assert link.replayed == []


async def test_continue_replays_once_counts_the_attempt_and_edits_the_notice(asked: Asked) -> None:
    m, guard, resumer, link = asked
    attempts_during_replay: list[int] = []
    link.on_replay = lambda _: attempts_during_replay.extend(x.attempts for x in on_disk(guard))
    pressed = press(Choice.CONTINUE, m)
    await resumer.answer(pressed)
    await eventually_async(lambda: len(link.replayed) == 1 and on_disk(guard) == [])
    assert link.closed == [("q1", CONTINUED_NOTICE, pressed)]
    assert attempts_during_replay == [1]  # durable before the turn re-ran
    await resumer.answer(pressed)  # a second press: nothing left to do
    assert link.refused == [(pressed, CLOSED_ANSWER)]
    assert len(link.replayed) == 1


async def test_dismiss_drops_the_marker_and_never_replays(asked: Asked) -> None:
    m, guard, resumer, link = asked
    pressed = press(Choice.DISMISS, m)
    await resumer.answer(pressed)
    assert on_disk(guard) == []
    assert link.closed == [("q1", DISMISSED_NOTICE, pressed)]
    assert link.replayed == []


async def test_another_users_press_is_refused_privately_and_the_question_stays(
    asked: Asked,
) -> None:
    m, guard, resumer, link = asked
    stranger = press(Choice.CONTINUE, m, user="999")
    await resumer.answer(stranger)
    assert link.refused == [(stranger, NOT_YOURS_ANSWER)]
    assert link.closed == []
    assert link.replayed == []
    assert [x.phase for x in on_disk(guard)] == [Phase.ASKED]
    await resumer.answer(press(Choice.DISMISS, m))
    assert on_disk(guard) == []


async def test_the_question_survives_a_restart_and_the_press_is_honoured_after_it(
    asked: Asked, make_guard: MakeGuard, marker_dir: Path
) -> None:
    m, guard, resumer, _link = asked
    await resumer.cancel()  # the bot stops with the question open
    guard.close()
    [left] = [s.marker for s in guard.store.load()]
    assert (left.phase, left.question) == (Phase.ASKED, "q1")

    guard2, resumer2, link2 = await resume(make_guard, marker_dir, None)
    assert link2.sent == []  # asked once: no second notice
    [held] = on_disk(guard2)
    assert (held.phase, held.question, held.owner) == (Phase.ASKED, "q1", guard2.owner)
    await resumer2.answer(press(Choice.CONTINUE, m))
    await eventually_async(
        lambda: len(link2.replayed) == 1,
        what=lambda: repr((link2.replayed, link2.closed, link2.refused)),
    )
    await eventually_async(lambda: on_disk(guard2) == [], what=lambda: repr(on_disk(guard2)))
    assert [c[:2] for c in link2.closed] == [("q1", CONTINUED_NOTICE)]


async def test_an_unanswered_question_expires_at_max_age(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    m = interrupted(age=0.0)
    guard, resumer, link = await resume(
        make_guard, marker_dir, m, Settings(replay="ask", max_age=1)
    )
    assert link.questions
    await eventually_async(lambda: link.closed == [("q1", EXPIRED_NOTICE, None)], timeout=5)
    await eventually_async(lambda: on_disk(guard) == [])
    await resumer.answer(press(Choice.CONTINUE, m))
    assert link.replayed == []
    assert link.refused[-1][1] == CLOSED_ANSWER


async def test_a_question_that_expired_while_the_bot_was_down_is_closed_at_start(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    m = interrupted(age=120.0, phase=Phase.ASKED, question="77", noticed=True)
    guard, _, link = await resume(make_guard, marker_dir, m, Settings(replay="ask", max_age=60))
    assert link.sent == []
    assert link.closed == [("77", EXPIRED_NOTICE, None)]
    assert on_disk(guard) == []


async def test_without_a_stored_update_there_is_nothing_to_ask(
    make_guard: MakeGuard, marker_dir: Path
) -> None:
    m = interrupted().with_changes(payload=None)
    guard, _, link = await resume(make_guard, marker_dir, m)
    assert link.questions == []
    assert len(link.sent) == 1
    assert on_disk(guard) == []


async def test_two_presses_at_once_act_once(asked: Asked) -> None:
    m, guard, resumer, link = asked
    await asyncio.gather(
        resumer.answer(press(Choice.CONTINUE, m)), resumer.answer(press(Choice.DISMISS, m))
    )
    await eventually_async(lambda: on_disk(guard) == [])
    assert len(link.closed) == 1
    assert len(link.refused) == 1
    assert len(link.replayed) == (1 if link.closed[0][1] == CONTINUED_NOTICE else 0)


def test_button_data_round_trips_and_fits_telegram() -> None:
    token = question_token(interrupted())
    for choice in Choice:
        data = press_data(choice, token)
        assert len(data.encode()) <= 64
        assert parse_press(data) == (choice, token)
    for garbage in ("rg1:x:" + token, "rg1:c:../../etc", "rg1:c:" + token + "0", "hello", 5):
        assert parse_press(garbage) is None


def test_press_from_keeps_every_rg1_button_from_the_bot() -> None:
    token = question_token(interrupted())
    press = press_from(press_data(Choice.CONTINUE, token), 1001, "handle")
    assert press == Press(Choice.CONTINUE, token, "1001", "handle")
    # Malformed, but restart-guard's: answered as a question that is not open.
    assert press_from("rg1:x", None) == Press(Choice.DISMISS, "", "")
    assert press_from("approve", "U1") is None
    assert press_from(None, "U1") is None


def test_replay_accepts_ask_only() -> None:
    assert Settings(replay="ask").replay == "ask"
    with pytest.raises(TypeError, match="replay"):
        Settings(replay="sometimes")  # type: ignore[arg-type]


async def test_a_link_that_cannot_ask_gets_the_plain_notice(
    make_guard: MakeGuard, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = interrupted()
    leave_markers(marker_dir, [m])
    guard = make_guard(ASK, start=False)
    link = FakeLink()
    link.can_ask = False  # type: ignore[attr-defined]
    resumer = Resumer(guard, link)
    resumer.start(guard.start())
    assert await resumer.wait(5)
    assert guard.flush()
    assert link.questions == []
    assert len(link.sent) == 1
    assert link.replayed == []
    assert on_disk(guard) == []
    assert 'replay="ask" is not supported' in caplog.text
