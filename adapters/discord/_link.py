"""Posting notices over HTTP and replaying stored messages: the adapter's PlatformLink."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from restart_guard import Conversation, Marker, Notice
from restart_guard._ask import Choice, Press, press_data
from restart_guard.errors import ConversationGone, RateLimited, ThreadGone

from ._state import NOTICES_PER_SECOND

__all__ = ["Link", "delivery_error", "replay_payload"]

log = logging.getLogger("restart_guard")

# Unknown Channel; archived thread; locked thread: the thread cannot take the
# notice, its parent channel may.
_THREAD_GONE_CODES = frozenset({10003, 50083, 160005})
#: The payload event name under which a raw MESSAGE_CREATE is stored for replay.
_MESSAGE_CREATE = "MESSAGE_CREATE"


def replay_payload(data: dict[str, Any]) -> dict[str, Any]:
    """What a marker stores to replay a message: the gateway event, as Discord sent it.

    A shallow copy: discord.py may add keys to the dict it parsed later on,
    while the writer thread encodes this one.
    """
    return {"t": _MESSAGE_CREATE, "d": dict(data)}


def delivery_error(exc: discord.HTTPException, conversation: Conversation) -> Exception:
    """Map a failed post to the error the resume step understands.

    404 or an archived/locked thread → :class:`ThreadGone` (the notice goes to
    the parent channel); 403 Missing Access / Missing Permissions / cannot
    DM this user and other 4xx → :class:`ConversationGone`, because retrying
    cannot help (a 403 on a private thread is not retried in its parent: that
    would announce a private conversation in a public channel); a 429 that
    discord.py gave up on → :class:`RateLimited`. 401 and 5xx come back
    unchanged: transient, retried with backoff and the marker kept.
    """
    status, code = exc.status, exc.code
    detail = f"{status} {exc.text or type(exc).__name__} (code {code})"
    if status == 429:
        return RateLimited(_retry_after(exc), f"rate limited: {detail}")
    if status == 401 or status >= 500:
        return exc
    if conversation.thread is not None and (status == 404 or code in _THREAD_GONE_CODES):
        return ThreadGone(detail)
    return ConversationGone(detail)


def _retry_after(exc: discord.HTTPException) -> float:
    response: Any = exc.response
    headers = getattr(response, "headers", None) or {}
    try:
        return max(float(headers.get("Retry-After", 1.0)), 0.5)
    except (TypeError, ValueError):
        return 1.0


def _mention(user: str) -> str:
    return f"<@{user}>" if user.isdigit() else ""


class Link:
    """Posts notices through the client's own HTTP session; replays through its parser."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        #: Set when a replay waits for the gateway: ``setup_hook`` must return
        #: then, or the gateway it waits for would never connect.
        self.gateway_wanted = asyncio.Event()

    async def send_notice(self, notice: Notice) -> None:
        """Post the notice in the conversation's thread or channel (works before the gateway).

        It replies to the interrupted message (``fail_if_not_exists=False``: a
        deleted one does not block it), which notifies its author; other
        askers, and the users of interrupted slash commands and components
        (whose tokens have expired), are mentioned — in a server, where a
        channel has more than one reader. Only they are pinged: never
        ``@everyone`` or a role, whatever the text says.

        With ``nonce`` discord.py (2.5 and later) also sends ``enforce_nonce``:
        Discord then answers a repeat of this notice (re-sent after a kill)
        with the message it already created, for a few minutes.
        """
        await self._send(notice)

    async def send_question(self, notice: Notice, token: str) -> str:
        """The notice with two buttons (message components); presses never reach a View."""
        view = discord.ui.View(timeout=None)
        for choice, style in zip(
            Choice, (discord.ButtonStyle.primary, discord.ButtonStyle.secondary), strict=True
        ):
            view.add_item(
                discord.ui.Button(
                    label=choice.label, style=style, custom_id=press_data(choice, token)
                )
            )
        view.stop()  # finished: discord.py does not keep it in its view store
        message = await self._send(notice, view)
        return str(message.id)

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        """The press's own UPDATE_MESSAGE response (type 7), else an edit of the message."""
        if press is not None:
            try:
                await press.handle.response.edit_message(content=text, view=None)
                return
            except discord.HTTPException as exc:  # expired (3 s) or answered: edit instead
                log.info("restart-guard: answering a press failed (%s); editing instead", exc)
        channel = self._channel(conversation)[0]
        await channel.get_partial_message(int(question)).edit(content=text, view=None)

    async def refuse_press(self, press: Press, text: str) -> None:
        """An ephemeral response (type 4, flags 64): only the presser sees it."""
        await press.handle.response.send_message(text, ephemeral=True)

    def _channel(self, conversation: Conversation) -> tuple[discord.PartialMessageable, int | None]:
        """The conversation's thread or channel, and its guild id."""
        guild_id = int(conversation.scope) if conversation.scope is not None else None
        if conversation.thread is not None:
            target, kind = int(conversation.thread), discord.ChannelType.public_thread
        else:
            target = int(conversation.chat)
            kind = discord.ChannelType.text if guild_id is not None else discord.ChannelType.private
        channel = self.client.get_partial_messageable(target, guild_id=guild_id, type=kind)
        return channel, guild_id

    async def _send(self, notice: Notice, view: discord.ui.View | None = None) -> discord.Message:
        conversation, nonce = notice.conversation, notice.nonce
        channel, guild_id = self._channel(conversation)
        reference = None
        if notice.reply_to is not None and notice.reply_to.isdigit():
            reference = discord.MessageReference(
                message_id=int(notice.reply_to),
                channel_id=channel.id,
                guild_id=guild_id,
                fail_if_not_exists=False,
            )
        mentioned: list[str] = []
        text = notice.text
        if guild_id is not None:
            leave_out = notice.replied_user if reference is not None else None
            text = notice.addressed(_mention, leave_out=leave_out)
            mentioned = [u for u in notice.askers if u != leave_out and u.isdigit()]
        allowed = discord.AllowedMentions(
            everyone=False,
            roles=False,
            users=[discord.Object(int(u)) for u in mentioned],
            replied_user=True,
        )
        extra: dict[str, Any] = {"allowed_mentions": allowed}
        if reference is not None:
            extra["reference"] = reference
        if view is not None:
            extra["view"] = view
        try:
            return await channel.send(text, nonce=nonce, **extra)
        except discord.RateLimited as exc:  # only with Client(max_ratelimit_timeout=...)
            raise RateLimited(exc.retry_after, str(exc)) from exc
        except discord.HTTPException as exc:
            error = delivery_error(exc, conversation)
            if error is exc:
                raise
            raise error from exc

    async def replay(self, marker: Marker) -> None:
        """Parse the stored MESSAGE_CREATE events again, once the gateway is ready.

        The message runs through the client's own gateway parser, so
        ``on_message``, listeners and prefix commands see it as before; its
        handler runs join the resumed conversation, which keeps the attempt
        count until they finish.
        """
        events = [
            p["d"]
            for p in marker.payload or ()
            if isinstance(p, dict)
            and p.get("t") == _MESSAGE_CREATE
            and isinstance(p.get("d"), dict)
        ]
        if not events:
            return
        if not self.client.is_ready():
            # Channels and members come from the gateway's cache.
            self.gateway_wanted.set()
            await self.client.wait_until_ready()
        parse = self.client._connection.parsers[_MESSAGE_CREATE]
        for data in events:
            parse(data)
