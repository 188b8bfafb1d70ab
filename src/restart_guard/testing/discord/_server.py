"""DiscordStandIn: the loopback Discord a test starts."""

from __future__ import annotations

from ._interactions import _Interactions


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
