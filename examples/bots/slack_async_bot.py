"""A slack-bolt ``AsyncApp`` (Socket Mode) protected by restart-guard.

The asyncio twin of ``slack_bot.py``: it differs from a plain Bolt
``AsyncApp`` only by ``import restart_guard`` and the decorator. Run it with
a real app (Socket Mode on, ``app_mentions:read`` and ``chat:write`` scopes)::

    pip install "restart-guard[slack]"
    SLACK_BOT_TOKEN=xoxb-... SLACK_APP_TOKEN=xapp-... python examples/bots/slack_async_bot.py

or offline against the loopback stand-in (``restart_guard.testing.slack``) by
also setting ``RESTART_GUARD_SLACK_API`` (``SlackStandIn.env()`` sets all three).

Mention the bot with "think": it takes 30 seconds, like a slow LLM call.
"""

import asyncio
import os

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncSay
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard

BOT_TOKEN = os.environ["SLACK_BOT_TOKEN"]
APP_TOKEN = os.environ["SLACK_APP_TOKEN"]
API_URL = os.environ.get("RESTART_GUARD_SLACK_API", "https://slack.com/api/")


async def think(event: dict, say: AsyncSay) -> None:
    thread = event.get("thread_ts") or event["ts"]
    await say(text="Thinking… (30 s)", thread_ts=thread)
    await asyncio.sleep(30)
    await say(text="Here is my answer: 42.", thread_ts=thread)


@restart_guard.protect(drain_timeout=20)
def build_app() -> AsyncApp:
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=API_URL))
    app.event("app_mention")(think)
    return app


async def main() -> None:
    await AsyncSocketModeHandler(build_app(), APP_TOKEN).start_async()


if __name__ == "__main__":
    asyncio.run(main())
