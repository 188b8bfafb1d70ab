"""Whom a notice answers (Notice), and which turns may be replayed (no_replay, replay rules)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import restart_guard
from restart_guard import Guard, Marker, Notice, Origin, Resumer, Settings
from restart_guard._policy import CURRENT_RUN, is_no_replay, replay_choice, running
from restart_guard._resume import DEFAULT_NOTICE, DEFAULT_REPLAY_NOTICE

from .conftest import FakeLink, conv, leave_markers, marker, stored

MakeGuard = Callable[..., Guard]


def notice_of(*origins: Origin, where: Any = None, thread: str | None = None) -> Notice:
    m = Marker(conv(1, thread), time.time(), origins=origins)
    return Notice(where or m.conversation, "♻️ resumed", "nonce", m)


def at(user: str) -> str:
    return f"<@{user}>"


# ------------------------------------------------------------------ Notice
def test_a_marker_of_the_previous_version_answers_nothing_and_mentions_nobody() -> None:
    notice = notice_of()
    assert (notice.reply_to, notice.askers, notice.addressed(at)) == (None, (), "♻️ resumed")


def test_the_notice_answers_the_latest_message_and_names_each_asker_once() -> None:
    notice = notice_of(
        Origin("1", "10", "7"),
        Origin("2", "11", "8"),
        Origin("3", "12", "7"),
        Origin("4", None, "9", True),
    )
    assert notice.reply_to == "12"  # the interaction after it has no message of its own
    assert notice.replied_user == "7"
    assert notice.askers == ("7", "8", "9")
    assert notice.addressed(at) == "<@7>, <@8> and <@9> ♻️ resumed"
    assert notice.addressed(at, leave_out="7") == "<@8> and <@9> ♻️ resumed"


def test_more_than_five_askers_are_counted() -> None:
    notice = notice_of(*(Origin(message=str(i), user=f"U{i}") for i in range(8)))
    assert notice.mentions(at) == "<@U0>, <@U1>, <@U2>, <@U3>, <@U4> and 3 others"
    assert notice_of(*(Origin(user=f"U{i}") for i in range(6))).mentions(at).endswith("and 1 other")


def test_a_notice_that_went_elsewhere_replies_to_nothing() -> None:
    origins = (Origin(message="10", user="7"),)
    assert notice_of(*origins, where=conv(2)).reply_to is None  # a migrated chat
    assert notice_of(*origins, where=conv(1), thread="5").reply_to is None  # thread gone
    assert notice_of(*origins, where=conv(1, "5"), thread="5").reply_to == "10"


# ------------------------------------------------------------------ no_replay
def test_no_replay_marks_the_wrapper_and_keeps_the_function_working() -> None:
    def plain(x: int) -> int:
        return x + 1

    async def coro(x: int) -> int:
        return x * 2

    wrapped, wrapped_coro = restart_guard.no_replay(plain), restart_guard.no_replay(coro)
    assert (wrapped(1), asyncio.run(wrapped_coro(2))) == (2, 4)  # no run: nothing to flag
    assert is_no_replay(wrapped)
    assert is_no_replay(wrapped_coro)
    assert not is_no_replay(plain)  # the plain function may be registered elsewhere
    assert asyncio.iscoroutinefunction(wrapped_coro)
    assert wrapped.__name__ == "plain"
    assert wrapped.__wrapped__ is plain
    assert wrapped.__globals__ is plain.__globals__  # discord.py resolves annotations there


def test_no_replay_refuses_what_is_not_a_function() -> None:
    with pytest.raises(TypeError, match="below the framework's decorator"):
        restart_guard.no_replay(object())  # type: ignore[type-var]


@pytest.mark.parametrize("replay", [False, True])
def test_a_no_replay_handler_flags_its_run_durably_before_its_body(
    make_guard: MakeGuard, replay: bool
) -> None:
    guard = make_guard(Settings(replay=replay))
    c = conv(1)
    run = guard.begin(c, {"update_id": 1}, Origin("1", "10", "7"))
    seen: list[Marker] = []

    @restart_guard.no_replay
    def handler() -> None:
        if replay:  # durable before the body: a kill now cannot replay it
            seen.append(stored(guard.store)[c.key])

    with running(run):
        handler()
        handler()  # a second no_replay handler of the turn changes nothing
    assert CURRENT_RUN.get() is None
    [now] = guard.markers()
    assert now.origins == (Origin("1", "10", "7", replayable=False),)
    if replay:
        assert [m.replayable for m in seen] == [False, False]
    guard.end(run)


def test_a_turn_is_replayable_only_if_every_handler_was(make_guard: MakeGuard) -> None:
    guard = make_guard(Settings(replay=True))
    c = conv(1)
    safe = guard.begin(c, {"update_id": 1}, Origin("1", "10", "7"))
    unsafe = guard.begin(c, {"update_id": 1}, Origin("1", "10", "7"))
    guard.forbid_replay(unsafe)
    [now] = guard.markers()
    assert now.origins == (Origin("1", "10", "7", replayable=False),)
    assert not now.replayable
    guard.end(unsafe)
    guard.end(safe)


# ------------------------------------------------------------------ replay rules
def m(payload: object = ({"u": 1},), **changes: Any) -> Marker:
    return marker(1, payload=list(payload) if payload else None).with_changes(**changes)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("option", "given", "choice"),
    [
        (True, m(), True),
        (False, m(), False),
        (True, m(payload=()), False),  # nothing stored to replay
        (True, m(origins=(Origin(replayable=False),)), False),
        (lambda _: "ask", m(), "ask"),
        (lambda got: got.attempts == 0, m(), True),
        (lambda _: True, m(origins=(Origin(replayable=False),)), False),  # no_replay wins
        (lambda _: "yes", m(), False),  # not an answer: the safe one
    ],
)
def test_replay_choice(option: Any, given: Marker, choice: object) -> None:
    assert replay_choice(option, given) == choice


def test_a_failing_replay_rule_means_no_replay(caplog: pytest.LogCaptureFixture) -> None:
    def rule(_: Marker) -> bool:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "restart_guard"):
        assert replay_choice(rule, m()) is False
    assert "replay rule failed" in caplog.text


def test_replay_must_be_a_bool_or_a_callable() -> None:
    with pytest.raises(TypeError, match='replay must be True, False, "ask" or a callable'):
        Settings(replay="always")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the resume step
@pytest.mark.parametrize(
    ("replay", "origins", "text", "replayed"),
    [
        (True, (), DEFAULT_REPLAY_NOTICE, True),
        (True, (Origin(message="1", replayable=False),), DEFAULT_NOTICE, False),
        (lambda got: got.origins[0].user == "7", (Origin(user="7"),), DEFAULT_REPLAY_NOTICE, True),
        (lambda got: got.origins[0].user == "7", (Origin(user="8"),), DEFAULT_NOTICE, False),
    ],
)
async def test_the_resume_step_replays_only_what_policy_allows(
    make_guard: MakeGuard,
    marker_dir: Path,
    replay: Any,
    origins: tuple[Origin, ...],
    text: str,
    replayed: bool,
) -> None:
    left = marker(1, payload=[{"u": 1}]).with_changes(origins=origins)
    leave_markers(marker_dir, [left])
    guard = make_guard(Settings(replay=replay), start=False)
    link = FakeLink()
    resumer = Resumer(guard, link)
    resumer.start(guard.start())
    assert await resumer.wait(5)
    assert [n.text for n in link.notices] == [text]
    assert link.notices[0].marker.origins == origins  # what a notice callable sees too
    assert bool(link.replayed) is replayed
