"""slack-bolt's demo bot against the Slack stand-in, in a thread, in each of Bolt's run modes."""

from __future__ import annotations

import contextlib

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.slack import ButtonPress, SlackStandIn
from restart_guard.testing.wait import eventually

from .base import Driver, Place, Said, free_port

CHANNEL, CHAT, OTHER = "C0WORK", "C0CHAT", "C0OTHER"
SOCKET_MODES = ("socket", "async-socket")
POST = "chat.postMessage"


class SlackDriver(Driver):
    platform = "slack"
    framework = "slack_bolt"
    # Socket Mode with App / AsyncApp, and HTTP mode (signed Events API requests).
    modes = ("socket", "async-socket", "http", "async-http")
    concurrent_mode = "socket"  # sync listeners run in Bolt's thread pool
    module = "restart_guard.demo.slack_bot"
    has_buttons = True
    # Presses reach App and AsyncApp through Bolt's sync and async middleware, over
    # Socket Mode and HTTP: every mode.
    button_modes = modes
    users = ("U0ALICE", "U0BOB")
    api: SlackStandIn
    url: str | None = None  # HTTP modes: the running bot's event endpoint

    def _standin(self) -> contextlib.AbstractContextManager[SlackStandIn]:
        # Slack retries an unacknowledged HTTP event at once, after 1 and after 5 minutes.
        return SlackStandIn.running(retry_delays=(0.5, 1.0, 2.0))

    def _places(self) -> tuple[Place, Place, Place]:
        # A thread a user writes in; in a plain channel the message starts its own thread.
        return Place(CHANNEL, self.api.next_ts()), Place(CHAT), Place(OTHER)

    def _bot_args(self) -> list[str]:
        if self.mode in SOCKET_MODES:
            return ["--mode", self.mode]
        if self.url is None:  # one Request URL across restarts, as configured on Slack
            self.url = f"http://127.0.0.1:{free_port()}/slack/events"
        port = self.url.split(":")[2].split("/")[0]
        return ["--mode", self.mode, "--port", port]

    def _bot_env(self) -> dict[str, str]:
        return self.api.env()

    def _before_start(self) -> int:
        return self.api.total_connections

    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        # Start-up recovery (the notices) comes before the connection / the port.
        if self.mode in SOCKET_MODES:

            def connected() -> bool:
                if bot.process.poll() is not None:
                    raise RuntimeError(f"the bot exited while starting:\n{bot.log()}")
                return self.api.total_connections > before  # type: ignore[operator]

            eventually(connected, timeout=30, what="a Socket Mode connection")
        else:
            # App.start() binds before it logs; aiohttp prints this once it listens.
            ready = "Running on http" if self.mode == "async-http" else "Bolt app is running"
            bot.wait_for_log(ready, timeout=30)

    def new_place(self, n: int) -> Place:
        return Place(f"C0NEW{n}")  # a message there starts its own thread (see say())

    def say(self, place: Place, text: str, user: str | None = None) -> Said:
        user = user or self.users[0]
        if self.url is None:
            event = self.api.inject_message(place.chat, text, thread_ts=place.thread, user=user)
        else:
            event = self.api.message_event(place.chat, text, thread_ts=place.thread, user=user)
            event["event_id"] = self.api.deliver_event(self.url, event)  # retried until acked
        thread = place.thread or str(event["ts"])
        return Said(Place(place.chat, thread), event, str(event["ts"]), user)

    def reply_target(self, said: Said) -> str | None:
        # Slack answers in the thread: its root, the message itself when it started it.
        return said.place.thread

    def wait_delivered(self, said: Said) -> None:
        if self.url is None:
            self.api.wait_for_ack(said.handle)
        else:
            self.api.wait_for_http_ack(said.handle["event_id"])

    def hold_acks(self) -> None:
        self.api.hold_acks()

    def release_acks(self) -> None:
        self.api.release_acks()

    def send_attempts(self, place: Place) -> int:
        return sum(1 for m, p in self.api.calls if m == POST and p.get("channel") == place.chat)

    def remove_bot(self, place: Place) -> str:
        self.api.fail_channel(place.chat, "not_in_channel")
        return "not_in_channel"

    def delete_chat(self, place: Place) -> str:
        self.api.fail_channel(place.chat, "channel_not_found")
        return "channel_not_found"

    def rate_limit(self, place: Place, times: int) -> None:
        self.api.rate_limit(place.chat, retry_after=1, times=times)

    # Buttons: Block Kit in the message; a press is a block_actions payload over
    # Socket Mode, or POSTed to the same Request URL as the events in HTTP mode.
    def buttons(self, message: SentMessage) -> list[str]:
        assert message.id is not None
        return [label for label, _ in self.api.buttons(message.chat, message.id)]

    def text_now(self, message: SentMessage) -> str:
        assert message.id is not None
        now = self.api.message(message.chat, message.id)
        assert now is not None
        return str(now["text"])

    def press(self, message: SentMessage, label: str, user: str) -> ButtonPress:
        assert message.id is not None
        [action_id] = [a for t, a in self.api.buttons(message.chat, message.id) if t == label]
        self.api.join(message.chat, user)  # a member of the channel, who can be told privately
        return self.api.press_button(
            message.chat, message.id, action_id, user=user, app_url=self.url
        )

    def private_answer(self, pressed: object) -> str:
        assert isinstance(pressed, ButtonPress)
        answer = self.api.wait_for_ephemeral(
            lambda e: (e.user, e.channel) == (pressed.user, pressed.channel) and e.at >= pressed.at
        )
        return answer.text
