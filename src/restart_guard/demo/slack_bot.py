"""A small slack-bolt bot for the demo and the end-to-end tests.

It talks to whatever Web API ``RESTART_GUARD_SLACK_API`` names (the loopback
stand-in in the demo and the tests; Slack itself when unset), takes its
tokens from Bolt's own variables ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN`` and
``SLACK_SIGNING_SECRET``, and differs from an unguarded bot only by
``restart_guard.protect`` — which ``--unguarded`` leaves out, to show the
failure it prevents.

``--mode`` picks how Bolt runs it: ``socket`` (``App`` +
``SocketModeHandler.start()``), ``async-socket`` (``AsyncApp`` +
``AsyncSocketModeHandler.start_async()``), ``http`` (``App.start()``) or
``async-http`` (``AsyncApp.start()``).

Messages: ``work N`` answers "working on it" in the thread, spends N seconds
(think of an LLM call), then answers "done"; ``crash`` kills the process
with SIGKILL mid-turn (a turn that brings the bot down every time, for the
crash-loop guard); anything else is echoed. ``--lazy`` runs the work as a
lazy listener. Replies go in the message's thread (a top-level message
becomes the thread root).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard.demo._options import guard_from, guard_options

MODES = ("socket", "async-socket", "http", "async-http")
DEFAULT_API = "https://slack.com/api/"


#: ``charge N`` is ``work N`` that must never run twice (a payment): never replayed.
CHARGE = re.compile(r"^charge")


def _api_url() -> str:
    return os.environ.get("RESTART_GUARD_SLACK_API") or DEFAULT_API


def _thread(event: dict[str, Any]) -> str:
    return str(event.get("thread_ts") or event["ts"])


def _seconds(text: str) -> float:
    parts = text.split()
    return float(parts[1]) if len(parts) > 1 else 5.0


def build_app(lazy: bool = False) -> App:
    """The sync bot, unguarded."""
    app = App(
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=_api_url()),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )

    def answer(event: dict[str, Any], client: WebClient) -> None:
        text = str(event.get("text", ""))
        channel, thread = event["channel"], _thread(event)
        if text.startswith(("work", "charge")):
            seconds = _seconds(text)
            client.chat_postMessage(
                channel=channel, thread_ts=thread, text=f"working on it ({seconds:g}s)…"
            )
            time.sleep(seconds)
            client.chat_postMessage(
                channel=channel, thread_ts=thread, text=f"done: {seconds:g}s of work finished"
            )
        elif text == "crash":
            client.chat_postMessage(channel=channel, thread_ts=thread, text="crashing…")
            time.sleep(1.0)  # some work first: the write-ahead covers turns this long
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            client.chat_postMessage(channel=channel, thread_ts=thread, text=f"echo: {text}")

    if lazy:

        def acknowledge(ack: Ack) -> None:
            ack()

        app.event("message")(ack=acknowledge, lazy=[answer])
    else:
        # Bolt runs the first listener that matches: "charge" goes to the no_replay one.
        app.message(CHARGE)(restart_guard.no_replay(answer))
        app.event("message")(answer)
    return app


def build_async_app(lazy: bool = False) -> AsyncApp:
    """The async bot, unguarded."""
    app = AsyncApp(
        client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=_api_url()),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )

    async def answer(event: dict[str, Any], client: AsyncWebClient) -> None:
        text = str(event.get("text", ""))
        channel, thread = event["channel"], _thread(event)
        if text.startswith(("work", "charge")):
            seconds = _seconds(text)
            await client.chat_postMessage(
                channel=channel, thread_ts=thread, text=f"working on it ({seconds:g}s)…"
            )
            await asyncio.sleep(seconds)
            await client.chat_postMessage(
                channel=channel, thread_ts=thread, text=f"done: {seconds:g}s of work finished"
            )
        elif text == "crash":
            await client.chat_postMessage(channel=channel, thread_ts=thread, text="crashing…")
            await asyncio.sleep(1.0)  # some work first: the write-ahead covers turns this long
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            await client.chat_postMessage(channel=channel, thread_ts=thread, text=f"echo: {text}")

    if lazy:

        async def acknowledge(ack: AsyncAck) -> None:
            await ack()

        app.event("message")(ack=acknowledge, lazy=[answer])
    else:
        # Bolt runs the first listener that matches: "charge" goes to the no_replay one.
        app.message(CHARGE)(restart_guard.no_replay(answer))
        app.event("message")(answer)
    return app


async def _serve_async_socket(app: AsyncApp) -> None:
    await AsyncSocketModeHandler(app).start_async()  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> None:
    """Run the bot until SIGTERM/SIGINT."""
    parser = guard_options(__doc__)
    parser.add_argument("--mode", choices=MODES, default="socket")
    parser.add_argument("--port", type=int, default=3000, help="HTTP modes: port to listen on")
    parser.add_argument("--lazy", action="store_true", help="answer in a lazy listener")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("aiohttp.access", "slack_sdk", "slack_bolt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    guard = guard_from(args)
    if args.mode.startswith("async"):
        async_app = guard(build_async_app(args.lazy))
        if args.mode == "async-socket":
            asyncio.run(_serve_async_socket(async_app))
        else:
            async_app.start(port=args.port, host="127.0.0.1")
        return
    app = guard(build_app(args.lazy))
    if args.mode == "socket":
        SocketModeHandler(app).start()  # type: ignore[no-untyped-call]
    else:
        app.start(port=args.port, http_server_logger_enabled=False)


if __name__ == "__main__":
    main()
