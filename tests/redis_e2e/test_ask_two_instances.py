"""``replay="ask"`` with two instances of one Slack bot on one Redis: one question, one replay.

Slack spreads an app's envelopes over its Socket Mode connections (the
stand-in deals them out in turn), so with two instances up a press of the
question's *Continue* can land at either: at the instance that holds the
question (it posted it, or claimed its marker) or at the other one, which
must not act on it. Presses are pressed twice in a row, so one lands at
each; the turn must run again exactly once, and the second press be
answered privately. The second test kills the instance that asked: the
survivor claims the marker when the dead one's lease runs out, and honours
the next press without asking again.

Slack because its instances share one app and one event stream, as in
production (two Telegram pollers of one token cannot); the code under test
— the question's holder in ``Resumer.answer`` and the store's atomic claim —
is the core's, the same for every platform.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("slack_bolt")

from restart_guard._ask import CLOSED_ANSWER
from restart_guard.demo._options import bot_argv
from restart_guard.testing.process import BotProcess
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.wait import eventually

from .conftest import LEASE, RECLAIM_INTERVAL, SharedRedis

pytestmark = [pytest.mark.e2e, pytest.mark.external_service]

#: What the Slack adapter names the store after: nothing, as the bots get --marker-dir.
IDENTITY = ""
CHANNEL = "C0SHARED"
ALICE = "U0ALICE"
ASKED = "whether to pick its turn up again"


@pytest.fixture
def slack_redis(redis_db: SharedRedis) -> Iterator[SharedRedis]:
    """The shared Redis, seen as the Slack demo bot's store."""
    view = SharedRedis(redis_db.server, redis_db.marker_dir, "slack", IDENTITY)
    yield view
    view.close()


class Instances:
    """Slack demo bots with --ask on one stand-in and the shared Redis; all killed at the end."""

    def __init__(self, api: SlackStandIn, redis: SharedRedis, tmp: Path) -> None:
        self.api, self.redis, self.tmp = api, redis, tmp
        self.started: list[BotProcess] = []

    def pair(self) -> list[BotProcess]:
        """Two instances started at the same instant; return once both are connected."""
        connections = self.api.total_connections
        pair = [self._launch() for _ in range(2)]
        eventually(
            lambda: self.api.total_connections >= connections + 2 and self.api.connected_count == 2,
            30,
            lambda: f"both instances to connect: {[b.log()[-500:] for b in pair]}",
        )
        return pair

    def _launch(self) -> BotProcess:
        argv = bot_argv(
            "restart_guard.demo.slack_bot",
            *("--mode", "socket", "--ask", "--store", self.redis.url),
            marker_dir=self.redis.marker_dir,
        )
        env = {
            **self.api.env(),
            "RESTART_GUARD_LEASE": LEASE,
            "RESTART_GUARD_RECLAIM_INTERVAL": RECLAIM_INTERVAL,
        }
        bot = BotProcess.start(argv, env=env, log_path=self.tmp / f"bot-{len(self.started)}.log")
        self.started.append(bot)
        return bot

    def report(self) -> None:
        for bot in self.started:
            print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")


@pytest.fixture
def instances(slack_redis: SharedRedis, tmp_path: Path) -> Iterator[Instances]:
    with SlackStandIn.running(retry_delays=(0.5, 1.0, 2.0)) as api:
        made = Instances(api, slack_redis, tmp_path)
        try:
            yield made
        finally:
            for bot in made.started:
                bot.stop()
            made.report()


def in_thread(api: SlackStandIn, thread: str, words: str) -> list[str]:
    return [m.text for m in api.sent if m.thread == thread and words in m.text]


def interrupt_a_turn(fleet: Instances, pair: list[BotProcess]) -> str:
    """Alice's ``work 5`` runs at one instance; both die mid-turn. Returns the thread."""
    api, redis = fleet.api, fleet.redis
    event = api.inject_message(CHANNEL, "work 5", user=ALICE)
    thread = str(event["ts"])
    api.wait_for_sent(lambda m: m.thread == thread and m.text.startswith("working"), timeout=20)
    api.wait_for_ack(event, timeout=20)  # Slack will not deliver it again
    eventually(lambda: redis.markers(), 20, "the turn's marker in Redis")
    for bot in pair:
        bot.kill()
    return thread


def the_question(fleet: Instances, thread: str) -> str:
    api = fleet.api
    [question] = api.wait_for_sent(lambda m: m.thread == thread and "restarted" in m.text, 30)
    assert question.id is not None
    assert [label for label, _ in api.buttons(CHANNEL, question.id)] == ["Continue", "Dismiss"]
    return question.id


def asker(pair: list[BotProcess]) -> BotProcess:
    """The one instance that asked (it logs so just after Slack took the question)."""
    [bot] = eventually(
        lambda: [bot for bot in pair if ASKED in bot.log()], 10, "an instance to log its question"
    )
    return bot  # and only one: the notice was posted once (see ran_once_more)


def continue_button(api: SlackStandIn, question: str) -> str:
    [action_id] = [a for label, a in api.buttons(CHANNEL, question) if label == "Continue"]
    return action_id


def ran_once_more(fleet: Instances, thread: str) -> None:
    """The turn re-ran to its end exactly once; nothing of it is left in Redis."""
    api = fleet.api
    api.wait_for_sent(lambda m: m.thread == thread and m.text.startswith("done"), timeout=30)
    eventually(lambda: not fleet.redis.markers(), 20, "Redis to hold no marker")
    assert len(in_thread(api, thread, "working on it")) == 2  # the interrupted run, the replay
    assert len(in_thread(api, thread, "done:")) == 1
    assert len(in_thread(api, thread, "restarted")) == 1  # asked once, by one instance


@pytest.mark.parametrize("restart", ["after the leases ran out", "at once"])
def test_presses_at_both_instances_replay_the_turn_once(instances: Instances, restart: str) -> None:
    api = instances.api
    for _ in range(2):
        thread = interrupt_a_turn(instances, instances.pair())
        if restart == "after the leases ran out":
            # Both new instances find the marker claimable in their start-up claim.
            eventually(lambda: not instances.redis.leases(), 10, "the dead instances' leases")
        pair = instances.pair()  # at once: a background re-claim takes the marker later
        question = the_question(instances, thread)
        asker(pair)

        action_id = continue_button(api, question)
        since = time.time()
        answered = lambda e, since=since: e.user == ALICE and e.at >= since  # noqa: E731
        presses = [api.press_button(CHANNEL, question, action_id, user=ALICE) for _ in range(2)]
        for press in presses:  # one at each instance, each acked at once
            api.wait_for_ack(press.envelope_id)
        api.wait_for_message(CHANNEL, question, lambda m: "Picking it up again" in m["text"])
        refusal = api.wait_for_ephemeral(answered)
        assert refusal.text == CLOSED_ANSWER
        ran_once_more(instances, thread)
        assert len([e for e in api.ephemerals if answered(e)]) == 1
        for bot in pair:
            bot.kill()


def test_the_survivor_takes_over_the_question_of_an_instance_that_died(
    instances: Instances,
) -> None:
    api = instances.api
    thread = interrupt_a_turn(instances, instances.pair())
    eventually(lambda: not instances.redis.leases(), 10, "the dead instances' leases")
    pair = instances.pair()
    question = the_question(instances, thread)
    holder = asker(pair)
    [survivor] = [bot for bot in pair if bot is not holder]
    holder.kill()
    # Its lease runs out; the survivor's background re-claim takes the open question.
    survivor.wait_for_log("became claimable after start-up", timeout=30)

    press = api.press_button(CHANNEL, question, continue_button(api, question), user=ALICE)
    api.wait_for_ack(press.envelope_id)
    api.wait_for_message(CHANNEL, question, lambda m: "Picking it up again" in m["text"])
    ran_once_more(instances, thread)
    assert "continued by user U0ALICE" in survivor.log()
    assert api.buttons(CHANNEL, question) == []
