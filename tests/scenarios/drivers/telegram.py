"""python-telegram-bot's demo bot against the Telegram stand-in, in a forum topic."""

from __future__ import annotations

import contextlib
import time

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

from .base import Driver, Place, Said

FORUM, TOPIC = "-1001000000001", "7"
GROUP = "-1001000000003"
OTHER = "-1001000000002"
SEND = "sendMessage"
#: Logged by python-telegram-bot once polling runs, after start-up recovery.
READY = "Application started"


class TelegramDriver(Driver):
    platform = "telegram"
    framework = "telegram"
    # blocking: handlers one at a time (the default); non-blocking: CommandHandler(block=False).
    modes = ("blocking", "non-blocking")
    concurrent_mode = "non-blocking"
    command_prefix = "/"
    module = "restart_guard.demo.telegram_bot"
    ready_log = READY
    deletable_threads = True
    has_buttons = True
    users = ("1001", "1002")
    api: TelegramStandIn

    def _standin(self) -> contextlib.AbstractContextManager[TelegramStandIn]:
        return TelegramStandIn.running()

    def _places(self) -> tuple[Place, Place, Place]:
        return Place(FORUM, TOPIC), Place(GROUP), Place(OTHER)

    def _bot_args(self) -> list[str]:
        mode = ["--non-blocking"] if self.mode == "non-blocking" else []
        return ["--api-url", self.api.base_url, "--token", self.api.token, *mode]

    def _before_start(self) -> float:
        return time.monotonic()

    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        # Polling starts only after start-up recovery: the notices come first.
        assert isinstance(before, float)
        bot.wait_for_log(READY, timeout=30)
        self.api.wait_for_poll(timeout=30, since=before)

    def new_place(self, n: int) -> Place:
        return Place(str(-1002000000000 - n))

    def say(self, place: Place, text: str, user: str | None = None) -> Said:
        thread = None if place.thread is None else int(place.thread)
        user = user or self.users[0]
        update_id = self.api.inject_message(
            int(place.chat), text, message_thread_id=thread, user_id=int(user)
        )
        message = str(self.api.last_message_id(place.chat))  # says nothing else meanwhile
        return Said(place, update_id, message, user)

    def wait_delivered(self, said: Said) -> None:
        self.api.wait_until_confirmed(said.handle)

    def send_attempts(self, place: Place) -> int:
        return sum(
            1 for m, p in self.api.calls if m == SEND and str(p.get("chat_id")) == place.chat
        )

    def remove_bot(self, place: Place) -> str:
        self.api.kick_bot(place.chat)
        return "Forbidden: bot was kicked"

    def delete_chat(self, place: Place) -> str:
        self.api.forget_chat(place.chat)
        return "chat not found"

    def delete_thread(self, place: Place) -> Place | None:
        assert place.thread is not None
        self.api.delete_topic(place.chat, place.thread)
        return Place(place.chat)

    def rate_limit(self, place: Place, times: int) -> None:
        self.api.rate_limit(place.chat, retry_after=1, times=times)

    def buttons(self, message: SentMessage) -> list[str]:
        assert message.id is not None
        return [text for text, _ in self.api.buttons(message.chat, int(message.id))]

    def text_now(self, message: SentMessage) -> str:
        assert message.id is not None
        now = self.api.message(message.chat, int(message.id))
        assert now is not None
        return str(now["text"])

    def press(self, message: SentMessage, label: str, user: str) -> str:
        assert message.id is not None
        [data] = [d for t, d in self.api.buttons(message.chat, int(message.id)) if t == label]
        return self.api.press_button(message.chat, int(message.id), data, user_id=int(user))

    def private_answer(self, pressed: object) -> str:
        answer = eventually(lambda: self.api.callback_answer(str(pressed)), what="the answer")
        assert answer.get("show_alert") is True  # an alert only the presser sees
        return str(answer["text"])
