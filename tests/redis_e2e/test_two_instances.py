"""Two instances of one bot share one Redis; both die mid-handler; both restart at once.

Each interrupted conversation must get exactly one notice: the claim is
atomic across processes, so whichever instance claims a marker is the only
one that resumes it. Telegram allows one poller per token, so each process
polls a stand-in of its own (same token, so same bot identity and same
Redis namespace); a notice may land in either stand-in, and the union of
both is what is checked.

One test runs the whole cycle 20 times. The processes a repetition restarts
are the ones the next repetition kills, so a repetition costs one restart
(about a second) plus at most one lease (1 s). Repetitions alternate
between restarting once the dead processes' leases are gone (both new
instances race in their start-up claim) and restarting at once (the leases
run out while both new instances are up, and they race in their
background re-claims).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from restart_guard import Conversation
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

from .conftest import Bots, SharedRedis, notices, wait_ready, where

pytestmark = [pytest.mark.e2e, pytest.mark.external_service]

REPETITIONS = 20
PER_INSTANCE = 3


def conversations_for(repetition: int, instance: int, rng: random.Random) -> list[Conversation]:
    """A private chat, a group and a forum topic, unique to this repetition and instance."""
    base = repetition * 100 + instance * 10
    topic = rng.randint(2, 9999)
    return [
        Conversation("telegram", str(10_000 + base + 1)),
        Conversation("telegram", str(-1_001_000_000_000 - base - 2)),
        Conversation("telegram", str(-1_001_000_000_000 - base - 3), str(topic)),
    ]


def launch_pair(bots: Bots, apis: list[TelegramStandIn]) -> list[BotProcess]:
    """Start one instance per stand-in at the same instant; return once both poll."""
    since = time.monotonic()
    pair = [bots.launch(api, "--non-blocking") for api in apis]
    for bot, api in zip(pair, apis, strict=True):
        wait_ready(bot, api, since)
    return pair


def start_turns(
    apis: list[TelegramStandIn], work: list[tuple[int, Conversation]], redis_db: SharedRedis
) -> None:
    """Start /work in every conversation; return once each runs and its marker is in Redis."""
    injected = []
    for instance, conversation in work:
        thread = None if conversation.thread is None else int(conversation.thread)
        update_id = apis[instance].inject_message(
            int(conversation.chat), "/work 60", message_thread_id=thread
        )
        injected.append((instance, conversation, update_id))
    for instance, conversation, update_id in injected:
        apis[instance].wait_for_sent(
            lambda m, chat=conversation.chat: m.chat == chat and m.text.startswith("working"),
            timeout=20,
        )
        # Confirmed: Telegram will not deliver it again to the restarted instance.
        apis[instance].wait_until_confirmed(update_id, timeout=20)
    want = {c.key for _, c in work}
    # Durable before the kill: the guarantee starts where the write-ahead landed.
    eventually(lambda: redis_db.keys() >= want, 20, "every marker to be written ahead to Redis")


def test_two_instances_killed_mid_handler_resume_every_conversation_exactly_once(
    redis_db: SharedRedis, standins: Callable[[], TelegramStandIn], bots: Bots
) -> None:
    apis = [standins(), standins()]
    pair = launch_pair(bots, apis)
    durations = []
    for repetition in range(REPETITIONS):
        started = time.monotonic()
        rng = random.Random(repetition)
        for api in apis:
            api.clear()
        work = [
            (instance, conversation)
            for instance in range(2)
            for conversation in conversations_for(repetition, instance, rng)
        ]
        rng.shuffle(work)
        start_turns(apis, work, redis_db)

        for index in rng.sample(range(2), 2):
            pair[index].kill()  # SIGKILL mid-handler: no drain, no pre-mark
        if repetition % 2 == 0:
            # Both new instances find every marker claimable in their start-up claim.
            eventually(lambda: not redis_db.leases(), 10, "the dead instances' leases to end")
        pair = launch_pair(bots, apis)

        expected = {where(c): 1 for _, c in work}
        count = len(expected)
        eventually(lambda: len(notices(*apis)) >= count, 20, f"{count} notices")  # noqa: B023
        # Every claimed marker resumed and removed: no further notice can come.
        eventually(lambda: not redis_db.markers(), 20, "Redis to hold no marker")
        got = Counter(notices(*apis))
        assert got == expected, (
            f"repetition {repetition}: notices per conversation {dict(got)}, "
            f"expected one each in {sorted(expected)}"
        )
        assert redis_db.local_keys() == set(), f"repetition {repetition}"
        durations.append(time.monotonic() - started)
    print("seconds per repetition:", " ".join(f"{d:.2f}" for d in durations))
    assert len(durations) == REPETITIONS
