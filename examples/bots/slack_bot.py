"""A slack-bolt app (Socket Mode) protected by restart-guard.

It differs from a plain Bolt app only by ``import restart_guard`` and the
decorator. Run it with a real app (Socket Mode on, ``app_mentions:read`` and
``chat:write`` scopes)::

    pip install "restart-guard[slack]"
    SLACK_BOT_TOKEN=xoxb-... SLACK_APP_TOKEN=xapp-... python examples/bots/slack_bot.py

or offline against the loopback stand-in (``restart_guard.testing.slack``) by
also setting ``RESTART_GUARD_SLACK_API`` to the stand-in's ``api_url``
(``SlackStandIn.env()`` sets all three variables).

Mention the bot with "think": it takes 30 seconds, like a slow LLM call.
Restart the bot meanwhile (Ctrl-C, ``systemctl restart``, ``kill -9``) and it
tells you so in the same thread when it is back.
"""

import os
import time

from slack_bolt import App, Say
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

import restart_guard

BOT_TOKEN = os.environ["SLACK_BOT_TOKEN"]
APP_TOKEN = os.environ["SLACK_APP_TOKEN"]
API_URL = os.environ.get("RESTART_GUARD_SLACK_API", "https://slack.com/api/")


def think(event: dict, say: Say) -> None:
    thread = event.get("thread_ts") or event["ts"]
    say(text="Thinking… (30 s)", thread_ts=thread)
    time.sleep(30)
    say(text="Here is my answer: 42.", thread_ts=thread)


@restart_guard.protect(drain_timeout=20)
def build_app() -> App:
    app = App(client=WebClient(token=BOT_TOKEN, base_url=API_URL))
    app.event("app_mention")(think)
    return app


if __name__ == "__main__":
    SocketModeHandler(build_app(), APP_TOKEN).start()
