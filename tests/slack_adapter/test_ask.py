"""``replay="ask"`` on Slack, in-process: the question's buttons are restart-guard's alone.

Real Bolt apps (``App`` over Socket Mode, ``AsyncApp`` over HTTP on an aiohttp
runner) against the stand-in, each with a global middleware and an action
listener that match everything: a press of restart-guard's buttons must reach
neither, whoever presses and whatever the button's data, while the app's own
buttons still reach its listener. The end-to-end scenarios (a killed bot, a
restarted one) are in ``tests/scenarios/test_ask_scenarios.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from restart_guard.adapters import slack as slack_guard
from restart_guard.adapters.slack._press import _OURS, press_of
from restart_guard.adapters.slack._state import Pressed
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard import Conversation, DirectoryStore, Marker, Origin
from restart_guard._ask import CLOSED_ANSWER, NOT_YOURS_ANSWER, Choice, press_data
from restart_guard.testing.slack import SlackStandIn
from restart_guard.testing.wait import eventually
from scenarios.drivers.slack import free_port

CHANNEL, THREAD = "C0ASK", "1700000000.000100"
ALICE, BOB = "U0ALICE", "U0BOB"


def interrupted_turn(api: SlackStandIn, marker_dir: Path) -> Conversation:
    """A dead process's marker: Alice's ``work`` in a thread of CHANNEL, with its event body."""
    conversation = Conversation("slack", CHANNEL, THREAD, api.team_id)
    event = api.message_event(CHANNEL, "work", user=ALICE, ts=THREAD)
    body = {k: v for k, v in api.event_callback(event).items() if k != "token"}
    dead = DirectoryStore(marker_dir)
    dead.open("elsewhere:1:dead")
    dead.commit(
        [
            Marker(
                conversation,
                started_at=time.time(),
                payload=[body],
                origins=(Origin(body["event_id"], THREAD, ALICE),),
            )
        ],
        [],
    )
    dead.close()
    return conversation


class Spy:
    """What reached the app's own code: its global middleware and its action listener."""

    def __init__(self) -> None:
        self.middleware: list[str] = []
        self.actions: list[str] = []
        self.messages: list[str] = []

    def saw_a_press(self) -> bool:
        return "block_actions" in self.middleware or bool(self.actions)


def sync_app(api: SlackStandIn, spy: Spy) -> App:
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )

    @app.middleware
    def everything(body: dict[str, Any], next: Any) -> None:
        spy.middleware.append(str(body.get("type")))
        next()

    @app.action(re.compile(".*"))
    def any_button(ack: Any, action: dict[str, Any]) -> None:
        ack()
        spy.actions.append(action["action_id"])

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        spy.messages.append(event["text"])

    return app


@contextlib.contextmanager
def asked_over_socket_mode(api: SlackStandIn, marker_dir: Path) -> Iterator[tuple[App, Spy, str]]:
    """A protected ``App`` that asked about Alice's interrupted turn: the app, its spy, the
    question's ts."""
    spy = Spy()
    app = restart_guard.protect(marker_dir=marker_dir, replay="ask")(sync_app(api, spy))
    interrupted_turn(api, marker_dir)
    handler = SocketModeHandler(app, api.app_token)
    handler.connect()  # start-up first: the question is posted before the connection opens
    try:
        api.wait_for_connection()
        yield app, spy, the_question(api)
    finally:
        handler.close()
        slack_guard.shutdown(app)


def the_question(api: SlackStandIn) -> str:
    [question] = api.wait_for_sent(lambda m: m.chat == CHANNEL and "restarted" in m.text)
    assert question.thread == THREAD
    assert f"<@{ALICE}>" in question.text
    assert question.id is not None
    assert api.buttons(CHANNEL, question.id) == [
        ("Continue", f"rg1:c:{action_token(api, question.id)}"),
        ("Dismiss", f"rg1:d:{action_token(api, question.id)}"),
    ]
    return question.id


def action_token(api: SlackStandIn, ts: str) -> str:
    return api.buttons(CHANNEL, ts)[0][1].split(":")[2]


def press(api: SlackStandIn, ts: str, label: str, user: str, app_url: str | None = None) -> Any:
    [action_id] = [a for t, a in api.buttons(CHANNEL, ts) if t == label]
    return api.press_button(CHANNEL, ts, action_id, user=user, app_url=app_url)


def post_one_button(app: App, action_id: str) -> str:
    """A message of the app with one button; its ts."""
    button = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": "?"}}
    blocks = [{"type": "actions", "elements": [button]}]
    return str(app.client.chat_postMessage(channel=CHANNEL, text="?", blocks=blocks)["ts"])


def test_presses_never_reach_the_apps_middleware_or_listeners(
    api: SlackStandIn, marker_dir: Path
) -> None:
    api.join(CHANNEL, ALICE, BOB)
    with asked_over_socket_mode(api, marker_dir) as (app, spy, ts):
        refused = press(api, ts, "Continue", BOB)
        api.wait_for_ack(refused.envelope_id)  # acked like any interaction
        answer = api.wait_for_ephemeral(lambda e: e.user == BOB)
        assert (answer.text, answer.via, answer.thread) == (
            NOT_YOURS_ANSWER,
            "chat.postEphemeral",
            THREAD,
        )
        # Malformed data with restart-guard's prefix, and a question not open here: ours too.
        for action_id in ("rg1:x", press_data(Choice.CONTINUE, "0123456789abcdef")):
            stray = post_one_button(app, action_id)
            pressed = api.press_button(CHANNEL, stray, action_id, user=ALICE)
            api.wait_for_ack(pressed.envelope_id)
            closed = api.wait_for_ephemeral(lambda e, p=pressed: e.user == ALICE and e.at >= p.at)
            assert closed.text == CLOSED_ANSWER

        continued = press(api, ts, "Continue", ALICE)
        api.wait_for_ack(continued.envelope_id)
        api.wait_for_message(CHANNEL, ts, lambda m: "Picking it up again" in m["text"])
        assert api.buttons(CHANNEL, ts) == []
        eventually(lambda: spy.messages == ["work"], what="the turn replayed once")

        # The app's own buttons are still the app's.
        own = post_one_button(app, "approve")
        api.wait_for_ack(api.press_button(CHANNEL, own, "approve", user=BOB).envelope_id)
        eventually(lambda: spy.actions == ["approve"], what="the app's own listener")
    assert spy.middleware.count("block_actions") == 1  # the app's button, nothing else
    assert DirectoryStore(marker_dir).load() == []


def test_a_presser_outside_the_channel_is_answered_through_the_response_url(
    api: SlackStandIn, marker_dir: Path
) -> None:
    with asked_over_socket_mode(api, marker_dir) as (_, spy, ts):
        refused = press(api, ts, "Dismiss", BOB)  # Bob reads the public channel, is not in it
        answer = api.wait_for_ephemeral(lambda e: e.user == BOB)
        assert (answer.text, answer.via, answer.trigger_id) == (
            NOT_YOURS_ANSWER,
            "response_url",
            refused.trigger_id,
        )
        assert api.buttons(CHANNEL, ts) == [
            ("Continue", "rg1:c:" + action_token(api, ts)),
            ("Dismiss", "rg1:d:" + action_token(api, ts)),
        ]
        assert not spy.saw_a_press()


async def test_async_app_over_http_refuses_forged_presses_and_honours_the_askers(
    marker_dir: Path,
) -> None:
    async with SlackStandIn() as api:
        spy = Spy()
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        @app.middleware
        async def everything(body: dict[str, Any], next: Any) -> None:
            spy.middleware.append(str(body.get("type")))
            await next()

        @app.action(re.compile(".*"))
        async def any_button(ack: Any, action: dict[str, Any]) -> None:
            await ack()
            spy.actions.append(action["action_id"])

        app = restart_guard.protect(marker_dir=marker_dir, replay="ask")(app)
        interrupted_turn(api, marker_dir)
        runner = web.AppRunner(app.web_app(), handle_signals=False)
        await runner.setup()  # on_startup: the question, before the site listens
        site = web.TCPSite(runner, "127.0.0.1", port := free_port())
        await site.start()
        url = f"http://127.0.0.1:{port}/slack/events"
        try:
            ts = await asyncio.to_thread(the_question, api)
            [action_id] = [a for t, a in api.buttons(CHANNEL, ts) if t == "Dismiss"]

            def forge() -> Any:
                return api.press_button(
                    CHANNEL, ts, action_id, user=ALICE, app_url=url, signing_secret="forged"
                )

            assert (await asyncio.to_thread(forge)).status == 401  # Bolt's verification
            started = time.monotonic()
            pressed = await asyncio.to_thread(press, api, ts, "Dismiss", ALICE, url)
            assert pressed.status == 200
            print(f"HTTP press answered in {time.monotonic() - started:.3f}s")
            await asyncio.to_thread(
                api.wait_for_message, CHANNEL, ts, lambda m: "Dismissed" in m["text"]
            )
            assert api.buttons(CHANNEL, ts) == []
        finally:
            await runner.cleanup()
        assert not spy.saw_a_press()
        assert DirectoryStore(marker_dir).load() == []


def test_unprotect_takes_the_press_middleware_out_and_protect_puts_one_back(
    api: SlackStandIn,
) -> None:
    app = sync_app(api, Spy())

    def ours() -> int:
        return sum(isinstance(m, _OURS) for m in app._middleware_list)

    for _ in range(2):
        app = restart_guard.protect(replay="ask", marker_dir="unused")(app)
        assert ours() == 1
        # Right after Bolt's authorization, before the app's own middleware.
        names = [type(m).__name__ for m in app._middleware_list]
        ours_at = names.index("_AnswerPresses")
        assert names[ours_at - 1] == "SingleTeamAuthorization"
        assert names.index("CustomMiddleware") > ours_at
        app = restart_guard.unprotect(app)
        assert ours() == 0


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"type": "block_actions"},
        {"type": "block_actions", "actions": "rg1:c:0123456789abcdef"},
        {"type": "block_actions", "actions": [None]},
        {"type": "block_actions", "actions": [{"action_id": 7}]},
        {"type": "block_actions", "actions": [{"action_id": "approve"}]},
        {"type": "view_submission", "actions": [{"action_id": "rg1:c:0123456789abcdef"}]},
    ],
)
def test_bodies_without_a_restart_guard_button_are_the_apps(body: Any) -> None:
    assert press_of(body) is None


def test_a_press_with_odd_ids_is_still_restart_guards_and_answerable() -> None:
    odd = {
        "type": "block_actions",
        "user": {"id": 42},  # not a string: no asker can match it
        "channel": ["C0"],
        "actions": [{"action_id": "rg1:c:0123456789abcdef"}, {"action_id": "approve"}],
        "response_url": "https://hooks.slack.com/actions/T/1/x",
    }
    pressed = press_of(odd)
    assert pressed is not None
    assert (pressed.choice, pressed.token, pressed.user) == (
        Choice.CONTINUE,
        "0123456789abcdef",
        "42",
    )
    assert pressed.handle == Pressed(None, "https://hooks.slack.com/actions/T/1/x")
