"""The Slack stand-in against real slack-bolt apps and slack_sdk clients (no mocks).

Socket Mode with the built-in sync client and the aiohttp client, HTTP mode with
Bolt's own servers, and the Web API's failure answers. Every test waits for an
observable condition with a deadline; none sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient

from restart_guard.testing.slack import (
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER_ID,
    ENV_API,
    SIGNING_SECRET,
    TEAM_ID,
    SlackStandIn,
    api_url_from_env,
    sign_request,
)
from restart_guard.testing.wait import eventually

CHANNEL = "C0GENERAL"


@pytest.fixture
def api() -> Iterator[SlackStandIn]:
    with SlackStandIn.running() as standin:
        yield standin


def sync_app(api: SlackStandIn) -> App:
    """A Bolt app whose message and app_mention listeners answer in the thread."""
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )

    @app.event("message")
    def on_message(event: dict[str, Any], client: WebClient) -> None:
        client.chat_postMessage(
            channel=event["channel"],
            thread_ts=event.get("thread_ts") or event["ts"],
            text=f"echo: {event['text']}",
        )

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], client: WebClient) -> None:
        client.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="you called?")

    return app


@contextlib.contextmanager
def socket_mode(app: App, api: SlackStandIn) -> Iterator[SocketModeHandler]:
    handler = SocketModeHandler(app, api.app_token)
    handler.connect()
    try:
        yield handler
    finally:
        # Before the stand-in stops: a server-side close makes the client reconnect.
        handler.close()


# --------------------------------------------------------------- Socket Mode, sync


def test_sync_app_replies_in_thread_over_socket_mode(api: SlackStandIn) -> None:
    app = sync_app(api)
    # App() validated its token with auth.test at construction.
    assert api.wait_for_call("auth.test", timeout=0)
    with socket_mode(app, api):
        api.wait_for_connection()
        top = api.inject_message(CHANNEL, "hello")
        reply = api.wait_for_sent(lambda m: m.text == "echo: hello")[0]
        assert (reply.chat, reply.thread) == (CHANNEL, top["ts"])
        api.wait_for_ack(top)

        inner = api.inject_message(CHANNEL, "again", thread_ts=top["ts"])
        reply = api.wait_for_sent(lambda m: m.text == "echo: again")[0]
        assert (reply.chat, reply.thread) == (CHANNEL, top["ts"])
        assert reply.params["channel"] == CHANNEL

        mention = api.inject_app_mention("C0OTHER", "status?")
        assert mention["text"] == f"<@{BOT_USER_ID}> status?"
        reply = api.wait_for_sent(lambda m: m.text == "you called?")[0]
        assert (reply.chat, reply.thread) == ("C0OTHER", mention["ts"])

        for event in (top, inner, mention):
            ack = api.wait_for_ack(event)
            assert ack["envelope_id"] == api.envelope_id_of(event)
        assert set(api.acked_envelopes) >= {api.envelope_id_of(e) for e in (top, inner, mention)}
        assert float(top["ts"]) < float(inner["ts"]) < float(mention["ts"])


def test_builtin_client_gets_pongs_and_context_from_payload(api: SlackStandIn) -> None:
    app = sync_app(api)
    seen: list[dict[str, Any]] = []

    @app.event("reaction_added")
    def on_reaction(context: Any, event: dict[str, Any]) -> None:
        seen.append({"team": context.team_id, "enterprise": context.enterprise_id, **event})

    with socket_mode(app, api) as handler:
        api.wait_for_connection()
        # The built-in client pings right after its handshake; our pong sets this.
        session = handler.client.current_session
        assert session is not None
        eventually(lambda: session.last_ping_pong_time is not None, what="a pong")

        envelope_id = api.inject_event(
            {"type": "reaction_added", "user": "U0X", "reaction": "eyes", "event_ts": "1.2"},
            team="T0OTHER",
            enterprise="E0GRID",
        )
        api.wait_for_ack(envelope_id)
        eventually(lambda: seen, what="the reaction listener")
        assert seen[0]["team"] == "T0OTHER"
        assert seen[0]["enterprise"] == "E0GRID"


def test_events_wait_for_a_connection_and_go_round_robin(api: SlackStandIn) -> None:
    early = api.inject_message(CHANNEL, "before anyone listened")
    app = sync_app(api)
    with socket_mode(app, api), socket_mode(app, api):
        assert api.wait_for_connection(count=2) == 2
        api.wait_for_ack(early)
        events = [api.inject_message(CHANNEL, f"m{i}") for i in range(4)]
        for event in events:
            api.wait_for_ack(event)
        api.wait_for_sent(lambda m: m.text.startswith("echo: m"), count=4)
        assert api.total_connections == 2

        # A refresh: both clients get "disconnect", reconnect, and events flow again.
        assert api.disconnect_all() == 2
        assert api.connected_count == 0
        api.wait_for_connection(count=2)
        assert api.total_connections >= 4
        after = api.inject_message(CHANNEL, "after the refresh")
        api.wait_for_ack(after)
        api.wait_for_sent(lambda m: m.text == "echo: after the refresh")


# -------------------------------------------------------------- Socket Mode, async


async def test_async_app_replies_in_thread_over_socket_mode() -> None:
    async with SlackStandIn() as api:
        app = AsyncApp(
            client=AsyncWebClient(token=BOT_TOKEN, base_url=api.api_url),
            signing_secret=SIGNING_SECRET,
        )

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
            await client.chat_postMessage(
                channel=event["channel"], thread_ts=event["ts"], text="on it"
            )

        handler = AsyncSocketModeHandler(app, APP_TOKEN)
        await handler.connect_async()
        try:
            await asyncio.to_thread(api.wait_for_connection)
            with pytest.raises(RuntimeError, match="to_thread"):
                api.wait_for_connection(timeout=0)

            # The aiohttp client's first ping carries "sdk-ping-pong:<time>"; our pong sets this.
            await asyncio.to_thread(
                eventually, lambda: handler.client.last_ping_pong_time is not None
            )
            mention = api.inject_app_mention("C0ASYNC", "deploy", thread_ts="1699999999.000100")
            reply = (await asyncio.to_thread(api.wait_for_sent))[0]
            assert (reply.chat, reply.thread, reply.text) == ("C0ASYNC", mention["ts"], "on it")
            await asyncio.to_thread(api.wait_for_ack, mention)
            # AsyncApp runs auth.test lazily, on its first event.
            assert api.wait_for_call("auth.test", timeout=0)

            # This client may reconnect twice and drop one of the two; what went out
            # on the dropped one unacknowledged is delivered again, so nothing is lost.
            for reason in ("refresh_requested", None):
                api.disconnect_all(reason)
                await asyncio.to_thread(api.wait_for_connection)
                again = api.inject_app_mention("C0ASYNC", f"after {reason}")
                await asyncio.to_thread(api.wait_for_ack, again)
                await asyncio.to_thread(api.wait_for_sent, lambda m, ts=again["ts"]: m.thread == ts)
        finally:
            await handler.close_async()


async def test_stop_closes_websockets_promptly() -> None:
    api = SlackStandIn()
    await api.start()
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=api.api_url))
    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    await handler.connect_async()
    try:
        await asyncio.to_thread(api.wait_for_connection)
        session = handler.client.current_session
        assert session is not None
        started = time.monotonic()
        await api.stop()
        assert time.monotonic() - started < 1.5
        assert session.closed
        assert api.connected_count == 0
    finally:
        # The client tries to reconnect to the stopped stand-in; closing it ends that.
        await handler.close_async()


async def test_socket_mode_protocol_and_redelivery() -> None:
    """A raw websocket client: hello, envelope shape, ack, redelivery of what was not acked."""
    async with SlackStandIn() as api, aiohttp.ClientSession() as session:
        web_client = AsyncWebClient(token=api.bot_token, base_url=api.api_url)

        async def connect() -> aiohttp.ClientWebSocketResponse:
            opened = await web_client.apps_connections_open(app_token=api.app_token)
            ws = await session.ws_connect(opened["url"])
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            assert hello["connection_info"] == {"app_id": api.app_id}
            assert hello["num_connections"] == 1
            return ws

        ws = await connect()
        event = api.inject_message("C0RAW", "raw", thread_ts="1699999999.000001")
        envelope = await ws.receive_json(timeout=5)
        assert envelope["type"] == "events_api"
        assert envelope["envelope_id"] == api.envelope_id_of(event)
        assert (envelope["retry_attempt"], envelope["retry_reason"]) == (0, "")
        assert envelope["accepts_response_payload"] is False
        payload = envelope["payload"]
        assert payload["type"] == "event_callback"
        assert (payload["team_id"], payload["api_app_id"]) == (TEAM_ID, api.app_id)
        assert payload["authorizations"][0]["user_id"] == BOT_USER_ID
        assert payload["event"] == event

        # Dropped before it acked: the envelope comes back on the next connection.
        assert api.disconnect_all("warning") == 1
        assert (await ws.receive_json(timeout=5)) == {
            "type": "disconnect",
            "reason": "warning",
            "debug_info": {"host": "applink-standin"},
        }
        assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        ws = await connect()
        retry = await ws.receive_json(timeout=5)
        assert retry["envelope_id"] == envelope["envelope_id"]
        assert (retry["retry_attempt"], retry["retry_reason"]) == (1, "timeout")
        await ws.send_json({"envelope_id": retry["envelope_id"]})
        ack = await asyncio.to_thread(api.wait_for_ack, event)
        assert ack == {"envelope_id": envelope["envelope_id"]}
        assert api.delivered_envelopes == [envelope["envelope_id"]] * 2
        await ws.close()


# ----------------------------------------------------------------------- HTTP mode


@contextlib.contextmanager
def http_mode(app: App) -> Iterator[str]:
    """App.start() in a thread on a free port; yields the events URL."""
    thread = threading.Thread(
        target=app.start, kwargs={"port": 0, "http_server_logger_enabled": False}, daemon=True
    )
    thread.start()
    # Bolt binds in SlackAppDevelopmentServer.__init__ and keeps it private: read the port there.
    server = eventually(
        lambda: getattr(getattr(app, "_development_server", None), "_server", None),
        what="Bolt's development server",
    )
    try:
        yield f"http://127.0.0.1:{server.server_port}/slack/events"
    finally:
        server.shutdown()
        thread.join(10)


def test_http_mode_app_accepts_signed_events_and_rejects_bad_ones(api: SlackStandIn) -> None:
    app = sync_app(api)
    with http_mode(app) as url:
        bad = api.message_event(CHANNEL, "forged")
        assert api.post_event(url, bad, signing_secret="not-the-secret")[0] == 401
        stale = api.message_event(CHANNEL, "stale")
        assert api.post_event(url, stale, timestamp=int(time.time()) - 3600)[0] == 401

        good = api.message_event(CHANNEL, "signed", channel_type="im")
        status, _ = api.post_event(url, good, retry_num=1, retry_reason="http_timeout")
        assert status == 200
        reply = api.wait_for_sent(lambda m: m.text == "echo: signed")[0]
        assert (reply.chat, reply.thread) == (CHANNEL, good["ts"])
        # A rejected request never reaches a listener, so nothing else was answered.
        assert [m.text for m in api.sent] == ["echo: signed"]


async def test_async_app_http_mode() -> None:
    async with SlackStandIn() as api:
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        @app.event("message")
        async def on_message(event: dict[str, Any], say: Any) -> None:
            await say(f"heard {event['text']}")

        runner = web.AppRunner(app.web_app(), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            url = f"http://127.0.0.1:{port}/slack/events"
            bad = await api.post_event_async(
                url, api.message_event("C0A", "x"), signing_secret="no"
            )
            assert bad[0] == 401
            event = api.message_event("C0A", "over http")
            assert (await api.post_event_async(url, event))[0] == 200
            reply = (await asyncio.to_thread(api.wait_for_sent))[0]
            # say() posts in the channel, not in the thread.
            assert (reply.chat, reply.thread, reply.text) == ("C0A", None, "heard over http")
        finally:
            await runner.cleanup()


def test_sign_request_matches_slack_sdk_verifier() -> None:
    body = '{"type":"event_callback"}'
    headers = sign_request(body, SIGNING_SECRET, timestamp=1_700_000_000)
    verifier = SignatureVerifier(SIGNING_SECRET, clock=_FixedClock(1_700_000_010))
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other", clock=_FixedClock(1_700_000_010)).is_valid_request(
        body, headers
    )


class _FixedClock:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


# --------------------------------------------------------------- Web API failures


@pytest.fixture
def client(api: SlackStandIn) -> WebClient:
    return WebClient(token=api.bot_token, base_url=api.api_url)


@pytest.mark.parametrize(
    "error", ["channel_not_found", "not_in_channel", "is_archived", "account_inactive"]
)
def test_fail_channel_raises_slack_api_error_until_healed(
    api: SlackStandIn, client: WebClient, error: str
) -> None:
    api.fail_channel("C0GONE", error)
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel="C0GONE", text="anyone?")
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == error
    assert client.chat_postMessage(channel=CHANNEL, text="elsewhere")["ok"]
    api.heal_channel("C0GONE")
    assert client.chat_postMessage(channel="C0GONE", text="back")["ok"]
    assert [m.text for m in api.sent] == ["elsewhere", "back"]
    assert len(api.wait_for_call("chat.postMessage", timeout=0, count=4)) == 4


def test_rate_limit_is_a_429_with_retry_after(api: SlackStandIn, client: WebClient) -> None:
    api.rate_limit(channel=CHANNEL, retry_after=7, times=2)
    assert client.chat_postMessage(channel="C0ELSE", text="unaffected")["ok"]
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel=CHANNEL, text="too fast")
        response = raised.value.response
        assert response.status_code == 429
        assert response["error"] == "ratelimited"
        assert response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel=CHANNEL, text="later")["ok"]


async def test_rate_limit_seen_by_async_client() -> None:
    async with SlackStandIn() as api:
        client = AsyncWebClient(token=api.bot_token, base_url=api.api_url)
        api.rate_limit(retry_after=3)
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel=CHANNEL, text="x")
        assert raised.value.response.status_code == 429
        assert raised.value.response.headers["Retry-After"] == "3"
        assert (await client.chat_postMessage(channel=CHANNEL, text="y"))["ok"]


def test_fail_next_and_other_methods(api: SlackStandIn, client: WebClient) -> None:
    api.fail_next("internal_error")
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert raised.value.response["error"] == "internal_error"
    api.fail_next("fatal_error", method="users.info", status=500)
    with pytest.raises(SlackApiError) as raised:
        client.users_info(user="U0X")
    assert (raised.value.response.status_code, raised.value.response["error"]) == (
        500,
        "fatal_error",
    )

    sent = client.chat_postMessage(channel=CHANNEL, text="fine", blocks=[{"type": "divider"}])
    assert sent["channel"] == CHANNEL
    assert sent["message"]["text"] == "fine"
    assert api.sent[-1].params["blocks"] == [{"type": "divider"}]

    assert client.users_info(user="U0X")["user"]["id"] == "U0X"
    assert client.reactions_add(channel=CHANNEL, name="eyes", timestamp=sent["ts"])["ok"]
    api.set_method_result("bots.info", {"bot": {"id": "B1"}})
    assert client.bots_info(bot="B1")["bot"] == {"id": "B1"}
    assert [p["name"] for p in api.wait_for_call("reactions.add", timeout=0)] == ["eyes"]
    assert all("token" not in params for _, params in api.calls)

    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"]) == (TEAM_ID, BOT_USER_ID)


def test_tokens_are_checked(api: SlackStandIn) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=api.api_url)
    with pytest.raises(SlackApiError) as raised:
        wrong.auth_test()
    assert raised.value.response["error"] == "invalid_auth"
    bot = WebClient(token=api.bot_token, base_url=api.api_url)
    with pytest.raises(SlackApiError) as raised:
        bot.apps_connections_open(app_token=api.bot_token)
    assert raised.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as raised:
        WebClient(token=api.app_token, base_url=api.api_url).chat_postMessage(
            channel=CHANNEL, text="x"
        )
    assert raised.value.response["error"] == "not_allowed_token_type"
    url = bot.apps_connections_open(app_token=api.app_token)["url"]
    assert url.startswith(f"ws://127.0.0.1:{api.port}/link/?ticket=")


def test_enterprise_install_reported_by_auth_test() -> None:
    with SlackStandIn.running(enterprise_id="E0GRID") as api:
        app = sync_app(api)
        seen: list[tuple[str | None, str | None]] = []

        @app.event("reaction_added")
        def on_reaction(context: Any) -> None:
            seen.append((context.enterprise_id, context.team_id))

        auth = WebClient(token=api.bot_token, base_url=api.api_url).auth_test()
        assert auth["enterprise_id"] == "E0GRID"
        with socket_mode(app, api):
            api.wait_for_connection()
            api.wait_for_ack(api.inject_event({"type": "reaction_added", "event_ts": "1.1"}))
            eventually(lambda: seen, what="the reaction listener")
        assert seen == [("E0GRID", TEAM_ID)]


# ---------------------------------------------------------------------- subprocess

BOT_SCRIPT = """
    import os
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient
    from restart_guard.testing.slack import api_url_from_env

    app = App(client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=api_url_from_env()))

    @app.event("message")
    def on_message(event, client):
        client.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="pid reply")

    SocketModeHandler(app).start()
"""


def test_bot_in_a_subprocess_configured_by_env(api: SlackStandIn) -> None:
    env = {**os.environ, **api.env()}
    assert env[ENV_API] == api.api_url
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BOT_SCRIPT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            api.wait_for_connection(timeout=20)
        except TimeoutError:
            proc.kill()
            raise AssertionError(proc.communicate()[1].decode()) from None
        event = api.inject_message(CHANNEL, "in another process")
        reply = api.wait_for_sent(lambda m: m.text == "pid reply")[0]
        assert reply.thread == event["ts"]
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_api_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_API, raising=False)
    assert api_url_from_env() == "https://slack.com/api/"
    monkeypatch.setenv(ENV_API, "http://127.0.0.1:1/api/")
    assert api_url_from_env() == "http://127.0.0.1:1/api/"


# ------------------------------------------------------------ buttons and edits

QUESTION_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Ship it?"}},
    {
        "type": "actions",
        "block_id": "choice",
        "elements": [
            {
                "type": "button",
                "action_id": "yes",
                "value": "y",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Yes"},
            },
            {"type": "button", "action_id": "no", "text": {"type": "plain_text", "text": "No"}},
        ],
    },
]


def test_block_kit_is_checked_and_chat_update_keeps_or_removes_blocks(
    api: SlackStandIn, client: WebClient
) -> None:
    posted = client.chat_postMessage(
        channel=CHANNEL, thread_ts="1699999999.000001", text="Ship it?", blocks=QUESTION_BLOCKS
    )
    ts = posted["ts"]
    assert api.sent[-1].id == ts
    assert api.buttons(CHANNEL, ts) == [("Yes", "yes"), ("No", "no")]

    twice = [{**QUESTION_BLOCKS[1], "elements": [QUESTION_BLOCKS[1]["elements"][0]] * 2}]
    long_label = [
        {
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}}],
        }
    ]
    for bad in (twice, long_label, [{"type": "actions", "elements": []}]):
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel=CHANNEL, text="bad", blocks=bad)
        assert raised.value.response["error"] == "invalid_blocks"

    # Without blocks, chat.update changes the text and keeps the buttons, as Slack does.
    assert client.chat_update(channel=CHANNEL, ts=ts, text="Still?")["ts"] == ts
    assert api.buttons(CHANNEL, ts) == [("Yes", "yes"), ("No", "no")]
    # An empty list takes them off.
    updated = client.chat_update(channel=CHANNEL, ts=ts, text="Shipped", blocks=[])
    assert updated["message"]["text"] == "Shipped"
    assert api.buttons(CHANNEL, ts) == []
    now = api.message(CHANNEL, ts)
    assert now is not None
    assert (now["text"], now["thread_ts"], "blocks" in now) == (
        "Shipped",
        "1699999999.000001",
        False,
    )
    assert now["edited"]["user"] == BOT_USER_ID


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("unknown", "message_not_found"),
        ("users", "cant_update_message"),
        ("gone", "channel_not_found"),
    ],
)
def test_chat_update_errors_are_slacks(
    api: SlackStandIn, client: WebClient, target: str, error: str
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="mine")["ts"]
    if target == "unknown":
        ts = "1600000000.000001"
    elif target == "users":
        ts = api.inject_message(CHANNEL, "a user's message")["ts"]  # delivered: it exists now
    else:
        api.fail_channel(CHANNEL, "channel_not_found")
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel=CHANNEL, ts=ts, text="edited")
    assert raised.value.response["error"] == error


def test_ephemeral_messages_reach_members_only(api: SlackStandIn, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postEphemeral(channel=CHANNEL, user="U0STRANGER", text="psst")
    assert raised.value.response["error"] == "user_not_in_channel"
    api.inject_message(CHANNEL, "hi", user="U0AUTHOR")  # who posts in a channel is in it
    api.join(CHANNEL, "U0JOINED")
    for user in ("U0AUTHOR", "U0JOINED"):
        answer = client.chat_postEphemeral(
            channel=CHANNEL, user=user, text=f"psst {user}", thread_ts="1.2"
        )
        assert answer["message_ts"]
    assert [(e.user, e.text, e.thread, e.via) for e in api.ephemerals] == [
        ("U0AUTHOR", "psst U0AUTHOR", "1.2", "chat.postEphemeral"),
        ("U0JOINED", "psst U0JOINED", "1.2", "chat.postEphemeral"),
    ]
    assert [m.text for m in api.sent] == []  # nobody else saw anything


def buttons_app(api: SlackStandIn, seen: list[dict[str, Any]]) -> App:
    """A Bolt app whose button listener records the body and answers like a real bot would."""
    app = App(
        client=WebClient(token=api.bot_token, base_url=api.api_url),
        signing_secret=api.signing_secret,
    )

    @app.action("yes")
    def on_yes(ack: Any, body: dict[str, Any], client: WebClient, respond: Any) -> None:
        ack()
        seen.append(body)
        container = body["container"]
        client.chat_update(
            channel=container["channel_id"], ts=container["message_ts"], text="Yes it is", blocks=[]
        )
        respond(text="noted", response_type="ephemeral", replace_original=False)

    return app


def test_a_press_over_socket_mode_is_a_block_actions_payload(api: SlackStandIn) -> None:
    seen: list[dict[str, Any]] = []
    app = buttons_app(api, seen)
    ts = app.client.chat_postMessage(
        channel=CHANNEL, thread_ts="1699999999.000002", text="Ship it?", blocks=QUESTION_BLOCKS
    )["ts"]
    with socket_mode(app, api):
        api.wait_for_connection()
        press = api.press_button(CHANNEL, ts, "yes", user="U0PRESSER")
        assert api.wait_for_ack(press.envelope_id)["envelope_id"] == press.envelope_id
        eventually(lambda: seen, what="the action listener")
        body = seen[0]
        assert body["type"] == "block_actions"
        assert (body["user"]["id"], body["team"]["id"], body["api_app_id"]) == (
            "U0PRESSER",
            TEAM_ID,
            api.app_id,
        )
        assert body["container"] == {
            "type": "message",
            "message_ts": ts,
            "channel_id": CHANNEL,
            "is_ephemeral": False,
            "thread_ts": "1699999999.000002",
        }
        assert body["channel"]["id"] == CHANNEL
        assert body["message"]["ts"] == ts
        assert body["message"]["blocks"] == QUESTION_BLOCKS
        [action] = body["actions"]
        assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
            "yes",
            "choice",
            "y",
            "button",
        )
        assert action["text"]["text"] == "Yes"
        assert body["trigger_id"] == press.trigger_id
        assert body["response_url"].startswith(f"{api.url}/actions/{TEAM_ID}/")

        # The listener took the buttons off (chat.update) and answered via response_url.
        api.wait_for_message(CHANNEL, ts, lambda m: m["text"] == "Yes it is")
        assert api.buttons(CHANNEL, ts) == []
        noted = api.wait_for_ephemeral(lambda e: e.trigger_id == press.trigger_id)
        assert (noted.user, noted.text, noted.via, noted.thread) == (
            "U0PRESSER",
            "noted",
            "response_url",
            "1699999999.000002",
        )
        with pytest.raises(ValueError, match="no button"):  # gone from the message now
            api.press_button(CHANNEL, ts, "no")


async def test_an_unacknowledged_press_comes_again_on_the_next_connection() -> None:
    async with SlackStandIn() as api, aiohttp.ClientSession() as session:
        web_client = AsyncWebClient(token=api.bot_token, base_url=api.api_url)
        ts = (await web_client.chat_postMessage(channel=CHANNEL, text="?", blocks=QUESTION_BLOCKS))[
            "ts"
        ]

        async def connect() -> aiohttp.ClientWebSocketResponse:
            opened = await web_client.apps_connections_open(app_token=api.app_token)
            ws = await session.ws_connect(opened["url"])
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            return ws

        ws = await connect()
        press = api.press_button(CHANNEL, ts, "no")
        envelope = await ws.receive_json(timeout=5)
        assert (envelope["type"], envelope["envelope_id"]) == ("interactive", press.envelope_id)
        assert envelope["payload"]["actions"][0]["action_id"] == "no"
        api.disconnect_all("warning")
        await ws.close()
        ws = await connect()
        again = await ws.receive_json(timeout=5)
        assert (again["envelope_id"], again["retry_attempt"]) == (press.envelope_id, 1)
        await ws.send_json({"envelope_id": press.envelope_id})
        await asyncio.to_thread(api.wait_for_ack, press.envelope_id)
        await ws.close()


def test_a_press_over_http_is_signed_form_data_and_never_retried(api: SlackStandIn) -> None:
    seen: list[dict[str, Any]] = []
    app = buttons_app(api, seen)
    ts = app.client.chat_postMessage(channel=CHANNEL, text="Ship it?", blocks=QUESTION_BLOCKS)["ts"]
    with http_mode(app) as url:
        forged = api.press_button(CHANNEL, ts, "yes", app_url=url, signing_secret="wrong")
        assert forged.status == 401
        assert seen == []
        press = api.press_button(CHANNEL, ts, "yes", app_url=url)
        assert press.status == 200
        assert seen[0]["trigger_id"] == press.trigger_id
        api.wait_for_message(CHANNEL, ts, lambda m: "blocks" not in m)
        assert [p.status for p in api.presses] == [401, 200]  # one POST each: no retries

    # The app is gone: Slack tells the user it did not answer, and does not retry.
    gone = api.message(CHANNEL, ts)
    assert gone is not None
    ts2 = app.client.chat_postMessage(channel=CHANNEL, text="?", blocks=QUESTION_BLOCKS)["ts"]
    assert api.press_button(CHANNEL, ts2, "no", app_url=url).status == 0


def test_response_url_replaces_or_deletes_and_is_used_five_times_at_most(
    api: SlackStandIn, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="?", blocks=QUESTION_BLOCKS)["ts"]
    press = api.press_button(CHANNEL, ts, "yes")  # nobody listens: only its response_url is used
    hook = WebhookClient(press.response_url)
    assert hook.send(text="in place", replace_original=True).status_code == 200
    replaced = api.message(CHANNEL, ts)
    assert replaced is not None
    assert (replaced["text"], "blocks" in replaced) == ("in place", False)
    assert hook.send(text="for all", response_type="in_channel").status_code == 200
    assert api.sent[-1].text == "for all"
    assert hook.send(text="just you").status_code == 200
    assert api.ephemerals[-1].text == "just you"
    assert hook.send(delete_original=True).status_code == 200
    assert api.message(CHANNEL, ts) is None
    assert hook.send(text="fifth").status_code == 200
    sixth = hook.send(text="sixth")
    assert (sixth.status_code, json.loads(sixth.body)["error"]) == (404, "used_url")
