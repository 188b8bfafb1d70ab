"""Blue/green: the new instance starts while the old one is still draining, on one Redis.

The old instance's markers are held by its lease: the new one must leave
them alone for as long as the old one lives (it may still finish those
turns), and resume them — through its background re-claim, without a
restart — once the old one is gone without finishing them.

One stand-in serves both instances, as Telegram would: the old instance
stops polling when SIGTERM arrives, before its drain, so the new one can
poll the same token.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import pytest

from restart_guard import Conversation
from restart_guard.stores.base import StoredMarker
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

from .conftest import (
    Bots,
    SharedRedis,
    is_notice,
    notices,
    serve_one,
    sigterm_until_marked,
    start_work,
    where,
)

pytestmark = [pytest.mark.e2e, pytest.mark.external_service]

FORUM, TOPIC, GROUP, OTHER = -1001000000101, 5, -1001000000102, 4242


def held_by_one_live_owner(markers: list[StoredMarker]) -> bool:
    return (
        bool(markers)
        and all(s.held for s in markers)
        and len({s.marker.owner for s in markers}) == 1
    )


def blue_green(
    api: TelegramStandIn, redis_db: SharedRedis, bots: Bots, work: float, drain_timeout: float
) -> tuple[BotProcess, list[Conversation], BotProcess]:
    """An old instance with ``work`` s turns in a topic and a group, draining after its
    SIGTERM (its turns still run), and a new instance started beside it."""
    old = bots.start(api, "--non-blocking", "--drain-timeout", f"{drain_timeout:g}")
    turns = [start_work(api, FORUM, work, TOPIC), start_work(api, GROUP, work)]
    keys = {c.key for c in turns}
    eventually(lambda: redis_db.keys() == keys, 20, "the old instance's markers in Redis")
    sigterm_until_marked(old)
    return old, turns, bots.start(api)


def test_new_instance_leaves_a_draining_instances_markers_until_it_is_killed(
    redis_db: SharedRedis, standins: Callable[[], TelegramStandIn], bots: Bots
) -> None:
    api = standins()
    old, turns, new = blue_green(api, redis_db, bots, work=600, drain_timeout=600)
    keys = {c.key for c in turns}
    serve_one(api, OTHER)  # the new instance serves
    # Its start-up claim and at least four background re-claims ran while the old
    # instance was alive (the claim script is the only script a running bot runs).
    claims = redis_db.claim_scripts_run()
    eventually(lambda: redis_db.claim_scripts_run() >= claims + 4, 20, "four re-claims")
    assert old.process.poll() is None, "the old instance should still be draining"
    assert notices(api) == []
    markers = redis_db.markers()
    assert {s.marker.key for s in markers} == keys
    assert held_by_one_live_owner(markers), markers
    assert {s.marker.phase.value for s in markers} == {"draining"}

    old.kill()  # the service manager's SIGKILL: the turns never finish
    api.wait_for_sent(lambda m: is_notice(m.text), count=2, timeout=20)
    eventually(lambda: not redis_db.markers(), 20, "the resumed markers to be removed")
    assert Counter(notices(api)) == {where(c): 1 for c in turns}
    assert "that became claimable after start-up" in new.log()
    assert not any(m.text.startswith("done") for m in api.sent)

    new.send_signal(signal.SIGTERM)
    assert new.wait_exit(30) == 0
    assert redis_db.leases() == []


def test_an_old_instance_that_finishes_its_drain_leaves_nothing_to_resume(
    redis_db: SharedRedis, standins: Callable[[], TelegramStandIn], bots: Bots
) -> None:
    api = standins()
    old, turns, new = blue_green(api, redis_db, bots, work=5, drain_timeout=60)
    assert old.wait_exit(30) == 0  # drained: both turns finished
    for conversation in turns:
        replies = api.sent_to(conversation.chat, conversation.thread)
        assert replies[-1].text.startswith("done"), replies
    eventually(lambda: not redis_db.markers(), 20, "the old instance's markers to go")
    claims = redis_db.claim_scripts_run()
    eventually(lambda: redis_db.claim_scripts_run() >= claims + 2, 20, "two re-claims")
    serve_one(api, OTHER)
    assert notices(api) == []
    new.send_signal(signal.SIGTERM)
    assert new.wait_exit(30) == 0
