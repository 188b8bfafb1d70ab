"""DiscordStandIn: the loopback Discord a test starts."""

from __future__ import annotations

from ._interactions import _Interactions
from ._model import (
    DEFAULT_BOT_USER_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_THREAD_ID,
    DEFAULT_USER_ID,
)


class DiscordStandIn(_Interactions):
    """Loopback Discord: REST under ``/api/v10`` and the gateway at ``/gateway``.

    Keyword arguments:

    ``bot_user_id``, ``bot_name``
        The bot's user (``GET /users/@me``, READY); the application id is the same.
    ``user_id``
        The default human author of injected messages and interactions.
    ``token``
        When set, REST calls must carry ``Authorization: Bot <token>`` (else
        401) and IDENTIFY/RESUME must carry it (else close code 4004). None
        accepts any token.
    ``default_guild``
        Create the default guild/channel/thread (ids in ``guild_id``,
        ``channel_id``, ``thread_id``). The attributes exist either way.
    ``enforce_intents``
        Filter events and blank message content like Discord does for the
        intents the client identified with.
    ``echo_own_messages``
        Send MESSAGE_CREATE for the bot's own messages back to it, as Discord does.
    ``heartbeat_interval``
        Seconds announced in HELLO.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_name: str = "restart-guard-bot",
        user_id: int = DEFAULT_USER_ID,
        token: str | None = None,
        default_guild: bool = True,
        enforce_intents: bool = True,
        echo_own_messages: bool = True,
        heartbeat_interval: float = 41.25,
    ) -> None:
        super().__init__(
            host,
            port,
            bot_user_id=bot_user_id,
            bot_name=bot_name,
            user_id=user_id,
            token=token,
            enforce_intents=enforce_intents,
            echo_own_messages=echo_own_messages,
            heartbeat_interval=heartbeat_interval,
        )
        self.add_user(bot_user_id, bot_name, bot=True)
        self.add_user(user_id, "tester")
        if default_guild:
            self.add_guild(DEFAULT_GUILD_ID, "restart-guard test guild")
            self.add_channel(DEFAULT_GUILD_ID, DEFAULT_CHANNEL_ID, "general")
            self.add_thread(DEFAULT_CHANNEL_ID, DEFAULT_THREAD_ID, "a thread")
