"""The resume step: a real Guard and DirectoryStore, a fake platform that records notices."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from restart_guard import (
    ConversationGone,
    ConversationMoved,
    DirectoryStore,
    Guard,
    Marker,
    RateLimited,
    Resumer,
    Run,
    Settings,
    ThreadGone,
)
from restart_guard import _resume as resume_module
from restart_guard._platform_link import NONCE_LENGTH
from restart_guard._resume import DEFAULT_GIVEUP_NOTICE, DEFAULT_NOTICE, DEFAULT_REPLAY_NOTICE
from restart_guard.testing.wait import eventually_async

from .conftest import FakeLink, conv, entries, leave_markers, marker, stored

MakeGuard = Callable[..., Guard]


class Scenario:
    """Markers left by a dead process, then a new guard claiming and resuming them."""

    def __init__(self, make_guard: MakeGuard, marker_dir: Path) -> None:
        self.make_guard = make_guard
        self.marker_dir = marker_dir
        self.link = FakeLink()
        self.guard: Guard | None = None
        self.resumer: Resumer | None = None

    async def start(self, markers: Sequence[Marker], settings: Settings | None = None) -> Resumer:
        leave_markers(self.marker_dir, markers)
        self.guard = self.make_guard(settings, start=False)
        claimed = self.guard.start()
        assert {m.key for m in claimed} == {m.key for m in markers}
        self.resumer = Resumer(self.guard, self.link)
        self.resumer.start(claimed)
        return self.resumer

    async def run(self, markers: Sequence[Marker], settings: Settings | None = None) -> Resumer:
        resumer = await self.start(markers, settings)
        assert await resumer.wait(5), "resume step did not finish"
        assert self.guard is not None
        assert self.guard.flush()
        return resumer

    def on_disk(self) -> dict[str, Marker]:
        assert self.guard is not None
        return stored(self.guard.store)


@pytest.fixture
def scenario(make_guard: MakeGuard, marker_dir: Path) -> Scenario:
    return Scenario(make_guard, marker_dir)


# ------------------------------------------------------------------ notices
async def test_notice_goes_to_the_original_chat_and_thread(
    scenario: Scenario, marker_dir: Path
) -> None:
    m = marker(-1001, thread="7")
    resumer = await scenario.run([m])
    assert scenario.link.sent == [(conv(-1001, thread="7"), DEFAULT_NOTICE)]
    assert (resumer.delivered, resumer.dropped) == (1, 0)
    assert scenario.on_disk() == {}
    assert scenario.guard is not None
    scenario.guard.close()
    assert entries(marker_dir) == []


async def test_one_notice_per_conversation_oldest_first(scenario: Scenario) -> None:
    markers = [marker(1, age=5), marker(2, age=50), marker(3, age=20)]
    await scenario.run(markers)
    assert [c.chat for c, _ in scenario.link.sent] == ["2", "3", "1"]


async def test_notices_are_paced_at_the_platform_rate(scenario: Scenario) -> None:
    scenario.link.notices_per_second = 20.0
    await scenario.run([marker(n) for n in range(4)])
    stamps = scenario.link.sent_at
    assert len(stamps) == 4
    assert stamps[-1] - stamps[0] >= 3 * 0.05 * 0.9


async def test_custom_text_notice(scenario: Scenario) -> None:
    await scenario.run([marker(1)], Settings(notice="Back online."))
    assert scenario.link.sent == [(conv(1), "Back online.")]


async def test_notice_none_posts_nothing_but_removes_the_marker(scenario: Scenario) -> None:
    resumer = await scenario.run([marker(1)], Settings(notice=None))
    assert scenario.link.calls == []
    assert scenario.on_disk() == {}
    assert resumer.delivered == 1


async def test_callable_notice_gets_the_marker(scenario: Scenario) -> None:
    seen: list[Marker] = []

    def notice(m: Marker) -> str | None:
        seen.append(m)
        return None if m.conversation.chat == "2" else f"resumed {m.conversation.chat}"

    await scenario.run([marker(1), marker(2, age=1)], Settings(notice=notice))
    assert scenario.link.sent == [(conv(1), "resumed 1")]
    assert {m.conversation.chat for m in seen} == {"1", "2"}
    assert scenario.on_disk() == {}


async def test_failing_notice_callable_falls_back_to_the_default(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    def notice(m: Marker) -> str:
        raise RuntimeError("template bug")

    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        await scenario.run([marker(1)], Settings(notice=notice))
    assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert "notice callable failed" in caplog.text


# ------------------------------------------------------------------ dropping
async def test_older_than_max_age_is_dropped_with_a_log_line(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="restart_guard"):
        resumer = await scenario.run([marker(1, age=100), marker(2, age=1)], Settings(max_age=10))
    assert scenario.link.sent == [(conv(2), DEFAULT_NOTICE)]
    assert resumer.dropped == 1
    assert scenario.on_disk() == {}
    [line] = [r.getMessage() for r in caplog.records if "max_age" in r.getMessage()]
    assert "telegram chat 1" in line
    assert "older than max_age=10s" in line


async def test_past_max_attempts_one_giveup_notice_and_no_replay(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[Marker] = []

    async def on_resume(m: Marker) -> None:
        called.append(m)

    stuck = marker(1, attempts=3, payload=[{"update_id": 5}])
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        resumer = await scenario.run(
            [stuck], Settings(max_attempts=3, replay=True, on_resume=on_resume)
        )
    assert scenario.link.sent == [(conv(1), DEFAULT_GIVEUP_NOTICE.format(attempts=3))]
    assert "3 restarts in a row" in scenario.link.sent[0][1]
    assert scenario.link.replayed == []
    assert called == []
    assert resumer.dropped == 1
    assert scenario.on_disk() == {}
    assert "gave up on telegram chat 1 after 3" in caplog.text


async def test_below_max_attempts_is_resumed(scenario: Scenario) -> None:
    await scenario.run([marker(1, attempts=2, payload=[{"u": 1}])], Settings(replay=True))
    assert scenario.link.sent == [(conv(1), DEFAULT_REPLAY_NOTICE)]
    assert len(scenario.link.replayed) == 1


async def test_custom_giveup_notice_fills_in_attempts(scenario: Scenario) -> None:
    await scenario.run(
        [marker(1, attempts=4)],
        Settings(max_attempts=4, giveup_notice="Stopped after {attempts} restarts."),
    )
    assert scenario.link.sent == [(conv(1), "Stopped after 4 restarts.")]


async def test_giveup_notice_none_is_silent(scenario: Scenario) -> None:
    resumer = await scenario.run([marker(1, attempts=5)], Settings(giveup_notice=None))
    assert scenario.link.calls == []
    assert resumer.dropped == 1
    assert scenario.on_disk() == {}


async def test_conversation_gone_is_dropped_after_one_try(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    scenario.link.failures = [ConversationGone("forbidden: bot was kicked")]
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        resumer = await scenario.run([marker(1)])
    assert scenario.link.calls == [conv(1)]
    assert scenario.link.sent == []
    assert resumer.dropped == 1
    assert scenario.on_disk() == {}
    assert "dropped telegram chat 1: forbidden: bot was kicked" in caplog.text


async def test_thread_gone_posts_once_in_the_main_thread(scenario: Scenario) -> None:
    scenario.link.failures = [ThreadGone("message thread not found")]
    await scenario.run([marker(1, thread="7")])
    assert scenario.link.calls == [conv(1, thread="7"), conv(1)]
    assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert scenario.on_disk() == {}


async def test_thread_gone_without_a_thread_is_dropped(scenario: Scenario) -> None:
    scenario.link.failures = [ThreadGone("odd"), ThreadGone("odd")]
    resumer = await scenario.run([marker(1)])
    assert scenario.link.calls == [conv(1)]
    assert resumer.dropped == 1


# ------------------------------------------------------------------ retrying
async def test_rate_limited_is_retried_and_the_marker_kept_until_delivered(
    scenario: Scenario,
) -> None:
    m = marker(1)
    kept: list[bool] = []
    scenario.link.failures = [RateLimited(0.05), RateLimited(0.05)]
    scenario.link.on_send = lambda c: kept.append(m.key in scenario.on_disk())
    started = time.monotonic()
    await scenario.run([m])
    assert time.monotonic() - started >= 0.09  # retry_after honoured
    assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert kept == [True, True, True]
    assert scenario.on_disk() == {}


async def test_transient_errors_are_retried_with_backoff(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(resume_module, "_BACKOFF_FIRST", 0.01)
    m = marker(1)
    kept: list[bool] = []
    scenario.link.failures = [OSError("network down"), ConnectionResetError(), TimeoutError()]
    scenario.link.on_send = lambda c: kept.append(m.key in scenario.on_disk())
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        resumer = await scenario.run([m])
    assert len(scenario.link.calls) == 4
    assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert kept == [True] * 4
    assert resumer.delivered == 1
    assert scenario.on_disk() == {}
    assert "marker kept" in caplog.text


# ------------------------------------------------------------------ on_resume and replay
async def test_on_resume_gets_the_marker_after_the_attempt_is_durable(scenario: Scenario) -> None:
    m = marker(1, attempts=1, thread="4")
    seen: list[tuple[Marker, int | None]] = []

    async def on_resume(got: Marker) -> None:
        on_disk = scenario.on_disk().get(got.key)
        seen.append((got, None if on_disk is None else on_disk.attempts))

    await scenario.run([m], Settings(on_resume=on_resume))
    [(got, durable_attempts)] = seen
    assert got.key == m.key
    assert got.conversation == m.conversation
    assert durable_attempts == m.attempts + 1
    assert scenario.link.sent == [(m.conversation, DEFAULT_NOTICE)]  # notice first
    assert scenario.on_disk() == {}


async def test_failing_on_resume_still_clears_the_marker(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_resume(got: Marker) -> None:
        raise RuntimeError("user callback bug")

    with caplog.at_level(logging.ERROR, logger="restart_guard"):
        resumer = await scenario.run([marker(1)], Settings(on_resume=on_resume))
    assert "on_resume failed for telegram chat 1" in caplog.text
    assert resumer.delivered == 1
    assert scenario.on_disk() == {}


@pytest.mark.parametrize(
    ("replay", "payload", "replayed"),
    [
        (True, [{"update_id": 7, "message": {"text": "hi"}}], True),
        (True, None, False),
        (True, [], False),
        (False, [{"update_id": 7, "message": {"text": "hi"}}], False),
    ],
)
async def test_replay_only_when_on_and_a_payload_exists(
    scenario: Scenario, replay: bool, payload: list[object] | None, replayed: bool
) -> None:
    m = marker(1, payload=payload)
    durable_attempts: list[int] = []
    scenario.link.on_replay = lambda got: durable_attempts.append(
        scenario.on_disk()[got.key].attempts
    )
    await scenario.run([m], Settings(replay=replay))
    assert [r.key for r in scenario.link.replayed] == ([m.key] if replayed else [])
    if replayed:
        assert scenario.link.replayed[0].payload == payload
        assert durable_attempts == [1]  # counted before the turn re-ran
        assert scenario.link.sent == [(conv(1), DEFAULT_REPLAY_NOTICE)]
    else:
        assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert scenario.on_disk() == {}


async def test_replayed_handler_run_keeps_the_marker_until_it_ends(scenario: Scenario) -> None:
    m = marker(1, payload=[{"update_id": 7}])
    handler_runs: list[Run] = []

    def feed(got: Marker) -> None:  # what an adapter does: the update re-enters the bot
        assert scenario.guard is not None
        handler_runs.append(scenario.guard.begin(got.conversation, got.payload))

    scenario.link.on_replay = feed
    await scenario.run([m], Settings(replay=True))
    assert m.key in scenario.on_disk()  # the replayed turn is still running
    assert scenario.on_disk()[m.key].attempts == 1
    assert scenario.guard is not None
    scenario.guard.end(handler_runs[0])
    assert scenario.guard.flush()
    assert scenario.on_disk() == {}


# ------------------------------------------------------------------ cancel
async def test_cancel_cuts_off_a_send_that_outlasts_the_grace_and_keeps_every_marker(
    scenario: Scenario, marker_dir: Path
) -> None:
    markers = [marker(1, age=10, attempts=1), marker(2, age=5)]
    scenario.link.gate = asyncio.Event()  # the platform never answers
    resumer = await scenario.start(markers)
    await eventually_async(lambda: scenario.link.calls, what="first notice attempt")
    await resumer.cancel(grace=0.05)
    assert scenario.guard is not None
    assert scenario.guard.flush()
    assert set(scenario.on_disk()) == {m.key for m in markers}
    assert resumer.delivered == 0
    scenario.guard.close()
    nxt = DirectoryStore(marker_dir)
    nxt.open("next")
    claimed = {c.key: c for c in nxt.claim()}
    nxt.close()
    assert set(claimed) == {m.key for m in markers}
    assert claimed[markers[0].key].attempts == 1  # no attempt was counted for a notice


async def test_nothing_to_resume(scenario: Scenario, make_guard: MakeGuard) -> None:
    guard = make_guard()
    resumer = Resumer(guard, FakeLink())
    assert resumer.start([]) is None
    assert await resumer.wait(0.01) is True
    await resumer.cancel()


async def test_cancel_lets_the_send_in_flight_finish_and_records_it(scenario: Scenario) -> None:
    markers = [marker(1, age=10), marker(2, age=5)]
    scenario.link.gate = asyncio.Event()
    resumer = await scenario.start(markers)
    await eventually_async(lambda: scenario.link.calls, what="first notice in flight")
    cancelling = asyncio.ensure_future(resumer.cancel())
    await asyncio.sleep(0)  # cancel() has begun: no new send may start from here
    scenario.link.gate.set()  # the platform answers the one in flight
    await asyncio.wait_for(cancelling, 5)
    assert scenario.link.sent == [(conv(1), DEFAULT_NOTICE)]
    assert scenario.link.calls == [conv(1)]  # the second notice was never started
    assert scenario.guard is not None
    # Recorded by cancel() itself, not left to a later batch: gone from the disk now.
    assert set(scenario.on_disk()) == {markers[1].key}


# ------------------------------------------------------------------ one notice
async def test_a_delivered_notice_is_durable_before_the_next_send(scenario: Scenario) -> None:
    first, second = marker(1, age=10), marker(2, age=5)
    on_disk_at_second_send: list[set[str]] = []
    scenario.link.on_send = lambda c: (
        on_disk_at_second_send.append(set(scenario.on_disk())) if c.chat == "2" else None
    )
    await scenario.run([first, second])
    assert on_disk_at_second_send == [{second.key}]  # the first one's removal hit the disk


async def test_a_notice_followed_by_a_replay_is_recorded_as_noticed_before_the_next_send(
    scenario: Scenario,
) -> None:
    first = marker(1, age=10, payload=[{"update_id": 7}])
    second = marker(2, age=5)
    seen: list[Marker] = []
    scenario.link.on_send = lambda c: (
        seen.append(scenario.on_disk()[first.key]) if c.chat == "2" else None
    )
    handler_runs: list[Run] = []

    def feed(got: Marker) -> None:  # the replayed turn keeps running
        assert scenario.guard is not None
        handler_runs.append(scenario.guard.begin(got.conversation, got.payload))

    scenario.link.on_replay = feed
    await scenario.run([first, second], Settings(replay=True))
    [durable] = seen
    assert (durable.noticed, durable.attempts) == (True, 1)
    assert scenario.on_disk()[first.key].noticed


async def test_a_marker_noticed_before_a_restart_is_replayed_without_a_second_notice(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    m = marker(1, attempts=1, payload=[{"update_id": 7}]).with_changes(noticed=True)
    with caplog.at_level(logging.INFO, logger="restart_guard"):
        resumer = await scenario.run([m], Settings(replay=True))
    assert scenario.link.calls == []
    assert [r.key for r in scenario.link.replayed] == [m.key]
    assert resumer.delivered == 1
    assert "not posting its notice again" in caplog.text


async def test_a_noticed_marker_with_nothing_to_replay_is_cleared_silently(
    scenario: Scenario,
) -> None:
    await scenario.run([marker(1).with_changes(noticed=True)])
    assert scenario.link.calls == []
    assert scenario.on_disk() == {}


async def test_a_noticed_marker_past_max_attempts_still_gets_the_giveup_notice(
    scenario: Scenario,
) -> None:
    m = marker(1, attempts=3, payload=[{"update_id": 7}]).with_changes(noticed=True)
    resumer = await scenario.run([m], Settings(replay=True, max_attempts=3))
    assert scenario.link.sent == [(conv(1), DEFAULT_GIVEUP_NOTICE.replace("{attempts}", "3"))]
    assert scenario.link.replayed == []
    assert resumer.gave_up == 1
    assert scenario.on_disk() == {}


def test_the_nonce_is_stable_for_a_notice_and_new_for_another() -> None:
    m = marker(1, attempts=1)
    nonce = resume_module.notice_nonce(m)
    assert nonce == resume_module.notice_nonce(m.with_changes(owner="x", updated_at=1.0))
    assert len(nonce) <= NONCE_LENGTH
    others = {
        resume_module.notice_nonce(m, giving_up=True),
        resume_module.notice_nonce(m.with_changes(attempts=2)),
        resume_module.notice_nonce(m.with_changes(started_at=m.started_at + 1)),
        resume_module.notice_nonce(marker(2, attempts=1)),
    }
    assert nonce not in others
    assert len(others) == 4


async def test_a_retried_notice_carries_the_nonce_of_its_first_try(scenario: Scenario) -> None:
    scenario.link.failures = [RateLimited(0.01)]
    m = marker(1)
    await scenario.run([m])
    assert scenario.link.nonces == [resume_module.notice_nonce(m)] * 2


# ------------------------------------------------------------------ one bad conversation
@pytest.mark.parametrize(
    "error", [RateLimited(30.0), OSError("502 Bad Gateway")], ids=["rate-limited", "transient"]
)
async def test_a_conversation_in_backoff_does_not_hold_up_the_others(
    scenario: Scenario, error: Exception
) -> None:
    stuck = marker(1, age=30)  # the oldest: first in line
    others = [marker(2, age=20), marker(3, age=10)]
    scenario.link.refuse["1"] = error
    resumer = await scenario.start([stuck, *others])
    await eventually_async(
        lambda: len(scenario.link.sent) == 2, what="the notices behind the stuck one"
    )
    assert [c.chat for c, _ in scenario.link.sent] == ["2", "3"]
    assert scenario.guard is not None
    assert scenario.guard.flush()
    assert set(scenario.on_disk()) == {stuck.key}  # kept, still being retried
    await resumer.cancel(grace=0.05)


async def test_a_moved_conversation_takes_its_marker_and_notice_to_the_new_chat(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    m = marker(-5, payload=[{"update_id": 7}])
    scenario.link.failures = [ConversationMoved("-1009")]
    on_disk_at_turn: list[dict[str, Marker]] = []

    async def on_resume(got: Marker) -> None:
        on_disk_at_turn.append(scenario.on_disk())

    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        await scenario.run([m], Settings(on_resume=on_resume))
    assert scenario.link.calls == [conv(-5), conv(-1009)]
    assert scenario.link.sent == [(conv(-1009), DEFAULT_NOTICE)]
    [durable] = on_disk_at_turn
    assert list(durable) == [conv(-1009).key]  # moved: the old chat's marker is gone
    assert durable[conv(-1009).key].noticed
    assert scenario.on_disk() == {}
    assert "telegram chat -5 moved to chat -1009" in caplog.text


async def test_a_conversation_that_keeps_moving_is_dropped(scenario: Scenario) -> None:
    scenario.link.failures = [ConversationMoved(str(-n)) for n in range(10, 20)]
    resumer = await scenario.run([marker(-5)])
    assert len(scenario.link.calls) == 4
    assert resumer.dropped == 1
    assert scenario.on_disk() == {}
