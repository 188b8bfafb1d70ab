"""discord.py's demo bot against the Discord stand-in, in a thread of a guild channel."""

from __future__ import annotations

import contextlib
from typing import Any

from restart_guard.testing._standin import SentMessage
from restart_guard.testing.discord import CREATE_MESSAGE, DiscordStandIn
from restart_guard.testing.process import BotProcess
from restart_guard.testing.wait import eventually

from .base import Driver, Place, Said

#: Logged by the demo bot's on_ready, which comes after setup_hook: the notices are out.
READY = "demo bot ready"


class DiscordDriver(Driver):
    platform = "discord"
    framework = "discord"
    # gateway: commands.Bot, every event in its own task (turns of one thread run at once);
    # sharded: AutoShardedBot with two shards, the guild on one of them.
    modes = ("gateway", "sharded")
    concurrent_mode = "gateway"
    command_prefix = "!"
    module = "restart_guard.demo.discord_bot"
    ready_log = READY
    deletable_threads = True
    rate_limit_log = None  # discord.py sleeps through a 429 itself
    redelivers = False  # the gateway never sends an event twice
    has_buttons = True
    users = ("4001", "4002")
    api: DiscordStandIn

    def _standin(self) -> contextlib.AbstractContextManager[DiscordStandIn]:
        return DiscordStandIn.running()

    def _places(self) -> tuple[Place, Place, Place]:
        api = self.api
        # A thread is a channel of its own; its marker keeps the parent channel as the chat.
        thread = str(api.thread_id)
        topic = Place(thread, thread, marked_as=(str(api.channel_id), thread))
        chat = Place(str(api.add_channel(api.guild_id, name="work")))
        return topic, chat, Place(str(api.add_channel(api.guild_id, name="other")))

    def _bot_args(self) -> list[str]:
        return ["--shards", "2"] if self.mode == "sharded" else []

    def _bot_env(self) -> dict[str, str]:
        return self.api.env_vars()

    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        bot.wait_for_log(READY, timeout=30)

    def new_place(self, n: int) -> Place:
        return Place(str(self.api.add_channel(self.api.guild_id, name=f"new-{n}")))

    def say(self, place: Place, text: str, user: str | None = None) -> Said:
        user = user or self.users[0]
        message = self.api.inject_message(int(place.chat), text, author_id=int(user))
        return Said(place, message, str(message), user)

    def wait_delivered(self, said: Said) -> None:
        pass  # the gateway has no acknowledgement: a dispatched event is never sent again

    def send_attempts(self, place: Place) -> int:
        calls = self.api.calls
        return sum(1 for m, p in calls if m == CREATE_MESSAGE and p["channel_id"] == place.chat)

    def remove_bot(self, place: Place) -> str:
        self.api.fail_channel(int(place.chat))  # 403 Missing Access
        return "403 Missing Access"

    def delete_chat(self, place: Place) -> str:
        self.api.delete_channel(int(place.chat))
        return "404 Unknown Channel"

    def delete_thread(self, place: Place) -> Place | None:
        self.api.delete_channel(int(place.chat))
        return Place(place.conversation[0])  # the parent channel

    def rate_limit(self, place: Place, times: int) -> None:
        self.api.rate_limit(int(place.chat), retry_after=0.3, times=times)

    def _components(self, message: SentMessage) -> list[dict[str, Any]]:
        assert message.id is not None
        now = self.api.message(int(message.id)) or {}
        return [c for row in now.get("components") or [] for c in row.get("components", [])]

    def buttons(self, message: SentMessage) -> list[str]:
        return [str(c.get("label")) for c in self._components(message)]

    def text_now(self, message: SentMessage) -> str:
        assert message.id is not None
        return str((self.api.message(int(message.id)) or {}).get("content", ""))

    def press(self, message: SentMessage, label: str, user: str) -> int:
        assert message.id is not None
        [custom_id] = [c["custom_id"] for c in self._components(message) if c.get("label") == label]
        self.api.add_user(int(user))  # a member who has not said anything yet
        return self.api.inject_component(custom_id, message_id=int(message.id), user_id=int(user))

    def private_answer(self, pressed: object) -> str:
        [answer] = eventually(
            lambda: [
                m
                for m in self.api.sent
                if m.params.get("interaction_id") == str(pressed) and m.params.get("ephemeral")
            ],
            what="an ephemeral answer to the press",
        )
        return answer.text
