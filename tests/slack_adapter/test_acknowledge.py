"""In-process: Bolt's acknowledgement of an event waits until its marker is durable.

``app.dispatch`` / ``app.async_dispatch`` return the response Bolt's
Socket Mode handler sends as the envelope ack and its HTTP servers as the
200. Real Bolt apps; the marker store is a real DirectoryStore behind a
gate that holds the writer inside its batch.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from restart_guard.adapters import slack as slack_guard
from slack_bolt import App, BoltRequest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from held_runs import HeldStore
from restart_guard import DirectoryStore, StoredMarker
from restart_guard.testing.slack import SlackStandIn

CHANNEL = "C0ACK"
Acked = tuple[BoltResponse, list[StoredMarker]]
#: The scenario: the marker's batch stays unwritten this long (a slow disk).
HOLD = 0.3


def build(api: SlackStandIn, store: HeldStore, asynchronous: bool) -> App | AsyncApp:
    listening = threading.Event()  # never set: the listener stays in flight
    app: App | AsyncApp
    if asynchronous:
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        async def on_async(event: dict[str, Any]) -> None:
            await asyncio.to_thread(listening.wait, 2)

        app.event("message")(on_async)
    else:
        app = App(
            client=WebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        def on_sync(event: dict[str, Any]) -> None:
            listening.wait(2)

        app.event("message")(on_sync)
    return restart_guard.protect(store=store)(app)


def dispatch(app: App | AsyncApp, body: dict[str, Any], marker_dir: Path) -> Acked:
    """Bolt's response, and the markers on disk the moment it was returned."""
    if isinstance(app, AsyncApp):

        async def acked() -> Acked:
            response = await app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
            return response, await asyncio.to_thread(DirectoryStore(marker_dir).load)

        return asyncio.run(acked())
    response = app.dispatch(BoltRequest(body=body, mode="socket_mode"))
    return response, DirectoryStore(marker_dir).load()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["App", "AsyncApp"])
def test_the_ack_waits_for_the_marker(
    api: SlackStandIn, tmp_path: Path, asynchronous: bool
) -> None:
    store = HeldStore(tmp_path / "m")
    app = build(api, store, asynchronous)
    body = api.event_callback(api.message_event(CHANNEL, "hi"))
    acks: list[Acked] = []
    dispatcher = threading.Thread(target=lambda: acks.append(dispatch(app, body, tmp_path / "m")))
    dispatcher.start()
    try:
        assert store.entered.wait(10)  # the marker's batch is held
        dispatcher.join(HOLD)
        assert not acks  # no ack while the marker is not on disk: Slack would retry
        store.release.set()
        dispatcher.join(10)
        [(ack, on_disk)] = acks
        assert ack.status == 200
        assert [m.marker.conversation.chat for m in on_disk] == [CHANNEL]
    finally:
        store.release.set()
        dispatcher.join(10)
        if isinstance(app, AsyncApp):
            asyncio.run(slack_guard.shutdown_async(app))
        else:
            slack_guard.shutdown(app)
