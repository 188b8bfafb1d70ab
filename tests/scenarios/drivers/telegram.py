"""python-telegram-bot's demo bot against the Telegram stand-in, in a forum topic."""

from __future__ import annotations

import contextlib
import time

import pytest

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from restart_guard.testing.wait import eventually

from .base import Driver, Place, Said
from .slack import free_port

FORUM, TOPIC = "-1001000000001", "7"
GROUP = "-1001000000003"
OTHER = "-1001000000002"
SEND = "sendMessage"
#: Logged by python-telegram-bot once polling runs, after start-up recovery.
READY = "Application started"


class TelegramDriver(Driver):
    platform = "telegram"
    framework = "telegram"
    # blocking: handlers one at a time (the default); non-blocking: CommandHandler(block=False);
    # webhook: run_webhook, updates POSTed by the stand-in until the bot answers 2xx.
    modes = ("blocking", "non-blocking", "webhook")
    concurrent_mode = "non-blocking"
    command_prefix = "/"
    module = "restart_guard.demo.telegram_bot"
    ready_log = READY
    deletable_threads = True
    has_buttons = True
    users = ("1001", "1002")
    api: TelegramStandIn
    port: int | None = None
    #: What the framework's webhook server needs beyond the framework (an extra of it).
    webhook_needs: str | None = "tornado"  # python-telegram-bot[webhooks]

    @property
    def peeks_pending(self) -> bool:
        # getUpdates without an offset shows the pending updates; Telegram refuses
        # it (409) while a webhook is set.
        return self.mode != "webhook"

    @property
    def release_before_restart(self) -> bool:
        return self.mode != "webhook"  # a held confirming getUpdates blocks the next poll

    def _standin(self) -> contextlib.AbstractContextManager[TelegramStandIn]:
        if self.mode == "webhook" and self.webhook_needs is not None:
            pytest.importorskip(self.webhook_needs)
        return TelegramStandIn.running(webhook_retry_delay=0.2)

    def _places(self) -> tuple[Place, Place, Place]:
        return Place(FORUM, TOPIC), Place(GROUP), Place(OTHER)

    def _bot_args(self) -> list[str]:
        mode = ["--non-blocking"] if self.mode == "non-blocking" else []
        if self.mode == "webhook":
            self.port = self.port or free_port()  # the same URL across restarts, as in production
            mode = ["--webhook-port", str(self.port)]
        return ["--api-url", self.api.base_url, "--token", self.api.token, *mode]

    def _before_start(self) -> tuple[float, int]:
        hooks = sum(1 for m, _ in self.api.calls if m == "setWebhook")
        return time.monotonic(), hooks

    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        # Polling starts only after start-up recovery: the notices come first.
        assert isinstance(before, tuple)
        started, hooks = before
        bot.wait_for_log(READY, timeout=30)
        if self.mode == "webhook":
            # run_webhook sets the webhook once its server listens.
            self.api.wait_for_call("setWebhook", timeout=30, count=hooks + 1)
        else:
            self.api.wait_for_poll(timeout=30, since=started)

    def new_place(self, n: int) -> Place:
        return Place(str(-1002000000000 - n))

    def say(self, place: Place, text: str, user: str | None = None) -> Said:
        thread = None if place.thread is None else int(place.thread)
        user = user or self.users[0]
        update_id = self.api.inject_message(
            int(place.chat), text, message_thread_id=thread, user_id=int(user)
        )
        return Said(place, update_id, str(self.api.message_id_of(update_id)), user)

    def wait_delivered(self, said: Said) -> None:
        self.api.wait_until_confirmed(said.handle)

    def hold_acks(self) -> None:
        self.api.hold_confirmations()

    def release_acks(self) -> None:
        self.api.release_confirmations()

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
