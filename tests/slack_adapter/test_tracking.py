"""In-process: which conversation a request belongs to, and how long it stays marked.

Real Bolt apps against the loopback stand-in; requests go through
``app.dispatch`` / ``app.async_dispatch`` exactly as Bolt's adapters pass
them, listeners block on events the test releases.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from restart_guard.adapters import slack as slack_guard
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.async_app import AsyncApp
from slack_bolt.listener.listener_completion_handler import ListenerCompletionHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard import Conversation, DirectoryStore, Marker, Origin
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.wait import eventually

CHANNEL = "C0TRACK"


def message_body(api: SlackStandIn, text: str, thread_ts: str | None = None, **kw: Any) -> dict:  # type: ignore[type-arg]
    return api.event_callback(api.message_event(CHANNEL, text, thread_ts=thread_ts), **kw)


def request(body: dict[str, Any]) -> BoltRequest:
    return BoltRequest(body=body, mode="socket_mode")


def threads(app: App | AsyncApp) -> dict[str | None, int]:
    """In-flight conversations by thread (from the guard's in-memory markers)."""
    state = slack_guard.state_of(app)
    assert state is not None
    assert state.lifecycle.guard is not None
    return {m.conversation.thread: 1 for m in state.lifecycle.guard.markers()}


def in_flight(app: App | AsyncApp) -> int:
    state = slack_guard.state_of(app)
    assert state is not None
    assert state.lifecycle.guard is not None
    return state.lifecycle.guard.in_flight


@pytest.fixture
def gate() -> Iterator[dict[str, threading.Event]]:
    """Events listeners block on, by message text; all released at teardown."""
    events: dict[str, threading.Event] = {}
    yield events
    for event in events.values():
        event.set()


@pytest.fixture
def sync_app(
    api: SlackStandIn, marker_dir: Path, gate: dict[str, threading.Event]
) -> Iterator[App]:
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )

    def hold(text: str) -> None:
        gate.setdefault(text, threading.Event()).wait(10)

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        if event["text"] == "boom":
            raise RuntimeError("the listener failed")
        hold(event["text"])

    @app.event("app_mention")
    def on_mention(ack: Ack) -> None:
        ack()

    app.event("reaction_added")(ack=lambda ack: ack(), lazy=[lambda event: hold("lazy")])
    app = restart_guard.protect(marker_dir=marker_dir)(app)
    yield app
    for event in gate.values():
        event.set()
    slack_guard.shutdown(app)


# ------------------------------------------------------------------ conversation
def test_top_level_message_is_its_own_thread_root(api: SlackStandIn) -> None:
    body = message_body(api, "hi")
    conversation = slack_guard.conversation_of(request(body))
    assert conversation == Conversation("slack", CHANNEL, body["event"]["ts"], api.team_id)


def test_reply_belongs_to_its_thread_and_enterprise_is_kept(api: SlackStandIn) -> None:
    body = message_body(api, "hi", thread_ts="1700000000.000100", enterprise="E0GRID")
    conversation = slack_guard.conversation_of(request(body))
    assert conversation is not None
    assert (conversation.thread, conversation.scope, conversation.parent) == (
        "1700000000.000100",
        api.team_id,
        "E0GRID",
    )
    # The enterprise is informational: the same thread in the same team is one conversation.
    plain = slack_guard.conversation_of(request(message_body(api, "x", "1700000000.000100")))
    assert plain is not None
    assert conversation.key == plain.key


def test_interactions_slash_commands_and_views() -> None:
    button = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "container": {"type": "message", "message_ts": "17.1", "channel_id": "C1"},
        "message": {"ts": "17.1", "text": "pick one"},
        "actions": [],
    }
    assert slack_guard.conversation_of(request(button)) == Conversation("slack", "C1", "17.1", "T1")
    command = {"command": "/ask", "team_id": "T1", "channel_id": "C2", "user_id": "U1"}
    assert slack_guard.conversation_of(request(command)) == Conversation("slack", "C2", None, "T1")
    view = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"}, "view": {}}
    assert slack_guard.conversation_of(request(view)) is None


def test_reaction_threads_under_the_reacted_message(api: SlackStandIn) -> None:
    event = {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "eyes",
        "item": {"type": "message", "channel": CHANNEL, "ts": "17.5"},
        "event_ts": "18.0",
    }
    conversation = slack_guard.conversation_of(request(api.event_callback(event)))
    assert conversation == Conversation("slack", CHANNEL, "17.5", api.team_id)


# ------------------------------------------------------------------ sync runner
def test_several_runs_of_one_thread_keep_one_marker_until_the_last_ends(
    api: SlackStandIn, sync_app: App, gate: dict[str, threading.Event]
) -> None:
    root = api.next_ts()
    first = message_body(api, "first", thread_ts=root)
    second = message_body(api, "second", thread_ts=root)
    other = message_body(api, "other")
    for body in (first, second, other):
        assert sync_app.dispatch(request(body)).status == 200  # acked; listeners run on
    eventually(lambda: in_flight(sync_app) == 3, what="three listener runs")
    assert threads(sync_app) == {root: 1, other["event"]["ts"]: 1}

    gate.setdefault("first", threading.Event()).set()
    eventually(lambda: in_flight(sync_app) == 2, what="the first run to end")
    assert root in threads(sync_app)  # the second run of the thread still runs
    gate.setdefault("second", threading.Event()).set()
    eventually(lambda: root not in threads(sync_app), what="the thread's marker to go")
    assert list(threads(sync_app)) == [other["event"]["ts"]]


def test_a_run_is_marked_from_dispatch_even_while_queued_in_the_pool(
    api: SlackStandIn, sync_app: App, gate: dict[str, threading.Event]
) -> None:
    # Bolt's pool has 5 threads: the sixth listener waits in the queue, acked already.
    bodies = [message_body(api, f"block {i}") for i in range(6)]
    for body in bodies:
        sync_app.dispatch(request(body))
    assert in_flight(sync_app) == 6
    assert bodies[5]["event"]["ts"] in threads(sync_app)
    for i in range(6):
        gate.setdefault(f"block {i}", threading.Event()).set()
    eventually(lambda: in_flight(sync_app) == 0, what="every run to end")
    assert threads(sync_app) == {}


def test_lazy_listener_is_tracked_until_it_returns(
    api: SlackStandIn, sync_app: App, gate: dict[str, threading.Event]
) -> None:
    event = {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "eyes",
        "item": {"type": "message", "channel": CHANNEL, "ts": "17.5"},
        "event_ts": api.next_ts(),
    }
    sync_app.dispatch(request(api.event_callback(event)))
    eventually(lambda: in_flight(sync_app) == 1, what="the ack function to end")
    assert threads(sync_app) == {"17.5": 1}  # the lazy function still runs
    gate.setdefault("lazy", threading.Event()).set()
    eventually(lambda: in_flight(sync_app) == 0, what="the lazy function to end")
    assert threads(sync_app) == {}


def test_failing_listener_ends_its_run(api: SlackStandIn, sync_app: App) -> None:
    sync_app.dispatch(request(message_body(api, "boom")))
    eventually(lambda: in_flight(sync_app) == 0, what="the failed run to end")
    assert threads(sync_app) == {}


def test_completion_handler_set_after_protect_keeps_tracking(
    api: SlackStandIn, sync_app: App, gate: dict[str, threading.Event]
) -> None:
    seen: list[str] = []

    class Recording(ListenerCompletionHandler):
        def handle(self, request: BoltRequest, response: BoltResponse | None) -> None:
            seen.append(request.body["event"]["text"])

    sync_app.listener_runner.listener_completion_handler = Recording()
    gate.setdefault("tracked", threading.Event()).set()
    sync_app.dispatch(request(message_body(api, "tracked")))
    eventually(lambda: seen == ["tracked"], what="the app's own completion handler")
    eventually(lambda: in_flight(sync_app) == 0, what="the run to end")
    assert threads(sync_app) == {}


def test_marker_is_on_disk_when_the_request_is_acknowledged(
    api: SlackStandIn, sync_app: App, marker_dir: Path
) -> None:
    # The ack (dispatch's response) waits for the write-ahead: no window in which
    # Slack holds the event as delivered and the disk holds no marker. How fast the
    # write-ahead is gets measured in bench/, not asserted here.
    slack_guard.startup(sync_app)
    body = message_body(api, "durable")
    sync_app.dispatch(request(body))
    on_disk = [s.marker for s in DirectoryStore(marker_dir).load()]
    assert [m.conversation.thread for m in on_disk] == [body["event"]["ts"]]


def test_after_shutdown_requests_are_refused_so_slack_redelivers(
    api: SlackStandIn, sync_app: App
) -> None:
    sync_app.dispatch(request(message_body(api, "boom")))  # starts the guard
    assert slack_guard.shutdown(sync_app) is True
    response = sync_app.dispatch(request(message_body(api, "late")))
    assert response.status == 503
    slack_guard.startup(sync_app)  # an explicit start-up takes events again
    assert sync_app.dispatch(request(message_body(api, "boom"))).status == 200


def test_unprotect_needs_a_stopped_app_and_protect_again_works(
    api: SlackStandIn, sync_app: App, marker_dir: Path
) -> None:
    slack_guard.startup(sync_app)
    with pytest.raises(RuntimeError, match="stopped app"):
        restart_guard.unprotect(sync_app)
    slack_guard.shutdown(sync_app)
    runner = sync_app.listener_runner
    assert restart_guard.unprotect(sync_app) is sync_app
    assert slack_guard.state_of(sync_app) is None
    assert type(runner).__name__ == "ThreadListenerRunner"
    assert type(runner.listener_completion_handler).__name__ == "DefaultListenerCompletionHandler"
    assert restart_guard.unprotect(sync_app) is sync_app  # idempotent

    restart_guard.protect(marker_dir=marker_dir)(sync_app)
    assert restart_guard.protect(marker_dir=marker_dir)(sync_app) is sync_app
    sync_app.dispatch(request(message_body(api, "boom")))
    eventually(lambda: in_flight(sync_app) == 0, what="the run to end")


def test_replayed_event_delivered_again_is_acked_not_run_twice(
    api: SlackStandIn, marker_dir: Path
) -> None:
    body = message_body(api, "replay me")
    conversation = slack_guard.conversation_of(request(body))
    assert conversation is not None
    dead = DirectoryStore(marker_dir)  # a process that died mid-listener
    dead.open("elsewhere:1:dead")
    origin = Origin(delivery=body["event_id"])  # the event Slack retries
    marker = Marker(conversation, started_at=time.time(), payload=[body], origins=(origin,))
    dead.commit([marker], [])
    dead.close()  # the journal stays: it holds a marker

    runs: list[str] = []
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        runs.append(event["text"])

    app = restart_guard.protect(marker_dir=marker_dir, replay=True)(app)
    try:
        slack_guard.startup(app)
        api.wait_for_sent(lambda m: "Picking it up again" in m.text)
        eventually(lambda: runs == ["replay me"], what="the replayed run")
        # Slack redelivers the envelope the dead process never acked.
        assert app.dispatch(request(body)).status == 200
        eventually(lambda: in_flight(app) == 0, what="runs to end")
        assert runs == ["replay me"]
    finally:
        slack_guard.shutdown(app)
    assert DirectoryStore(marker_dir).load() == []


# ------------------------------------------------------------------ async runner
async def test_async_listeners_and_lazy_listeners_are_tracked(marker_dir: Path) -> None:
    async with SlackStandIn() as api:
        release = asyncio.Event()
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        @app.event("message")
        async def on_message() -> None:
            await release.wait()

        async def acknowledge(ack: Any) -> None:
            await ack()

        async def later() -> None:
            await release.wait()

        app.event("reaction_added")(ack=acknowledge, lazy=[later])
        app = restart_guard.protect(marker_dir=marker_dir)(app)
        await slack_guard.startup_async(app)
        try:
            root = api.next_ts()
            for text in ("one", "two"):
                body = api.event_callback(api.message_event(CHANNEL, text, thread_ts=root))
                response = await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
                assert response.status == 200
            reaction = {
                "type": "reaction_added",
                "user": "U1",
                "reaction": "eyes",
                "item": {"type": "message", "channel": "C0LAZY", "ts": "17.5"},
                "event_ts": api.next_ts(),
            }
            await app.async_dispatch(
                AsyncBoltRequest(body=api.event_callback(reaction), mode="socket_mode")
            )
            await asyncio.sleep(0)  # let the listener tasks start
            assert in_flight(app) == 3
            assert set(threads(app)) == {root, "17.5"}
            release.set()
            state = slack_guard.state_of(app)
            assert state is not None
            assert state.lifecycle.guard is not None
            assert await state.lifecycle.guard.wait_idle(5)
            assert threads(app) == {}
        finally:
            assert await slack_guard.shutdown_async(app) is True


async def test_async_drain_timeout_keeps_the_cut_off_conversation(marker_dir: Path) -> None:
    async with SlackStandIn() as api:
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        @app.event("message")
        async def on_message() -> None:
            await asyncio.sleep(60)

        app = restart_guard.protect(marker_dir=marker_dir, drain_timeout=0.2)(app)
        body = api.event_callback(api.message_event(CHANNEL, "slow"))
        await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        await asyncio.sleep(0)
        assert await slack_guard.shutdown_async(app) is False
        # What an event loop's shutdown does to the task: cancel it.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        [stored] = DirectoryStore(marker_dir).load()
        assert stored.marker.conversation.thread == body["event"]["ts"]


def test_startup_and_shutdown_check_the_kind_of_app(api: SlackStandIn, sync_app: App) -> None:
    with pytest.raises(TypeError, match="startup_async"):
        asyncio.run(slack_guard.startup_async(sync_app))  # type: ignore[arg-type]
    plain = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )
    with pytest.raises(TypeError, match="protected"):
        slack_guard.shutdown(plain)


def test_sync_app_reclaims_markers_of_a_replica_that_dies_later(
    api: SlackStandIn, sync_app: App, marker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTART_GUARD_RECLAIM_INTERVAL", "0.05")
    replica = DirectoryStore(marker_dir)  # another replica, alive at our start-up
    replica.open("replica")
    where = Conversation("slack", CHANNEL, "1700000000.000100", api.team_id)
    replica.commit([Marker(where, time.time(), owner="replica")], [])
    slack_guard.startup(sync_app)
    replica.close()  # the replica dies with the conversation in flight
    [notice] = api.wait_for_sent(lambda m: m.chat == CHANNEL and "restarted" in m.text)
    assert notice.thread == "1700000000.000100"
