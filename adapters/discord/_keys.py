"""Where a Discord event belongs: guild, channel, thread — the conversation key.

Layout (documented for operators and for the ``ThreadGone`` fallback):

- a message or interaction in a **thread**: ``scope`` = guild id, ``chat`` =
  the thread's parent channel id, ``thread`` = the thread's own channel id,
  ``parent`` = the parent channel id. A notice goes to the thread; if the
  thread was deleted, ``without_thread()`` sends it to the parent channel.
- in a **guild channel**: ``scope`` = guild id, ``chat`` = channel id.
- in a **DM** (or group DM): ``scope`` None, ``chat`` = the DM channel id.

Only events a user caused with a message or an interaction are tracked: a
run whose arguments include a ``Message``, ``Interaction``, command
``Context``, ``Reaction`` or a raw message-update / reaction / poll-vote
payload. Member joins, presences, guild and channel updates have nobody to
tell and are not tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import discord
from discord.ext.commands import Context

from restart_guard import Conversation, Origin

from ._state import PLATFORM

__all__ = [
    "conversation_of",
    "conversation_of_event",
    "conversation_of_interaction_data",
    "origin_of_event",
    "origin_of_interaction",
    "origin_of_interaction_data",
]

_THREAD_TYPES = frozenset({10, 11, 12})  # news, public and private thread
_PRIVATE_TYPES = frozenset({1, 3})  # DM, group DM

# (channel id, parent id, guild id) -> Conversation: building one hashes its
# identity, and a busy bot sees the same few channels over and over.
_CACHE: dict[tuple[int, int | None, int | None], Conversation] = {}
_CACHE_MAX = 4096


def _conversation(channel_id: int, parent_id: int | None, guild_id: int | None) -> Conversation:
    cache_key = (channel_id, parent_id, guild_id)
    found = _CACHE.get(cache_key)
    if found is not None:
        return found
    scope = None if guild_id is None else str(guild_id)
    if parent_id is not None:
        parent = str(parent_id)
        found = Conversation(PLATFORM, parent, str(channel_id), scope, parent)
    else:
        found = Conversation(PLATFORM, str(channel_id), None, scope)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[cache_key] = found
    return found


def _of_channel(channel: Any, guild_id: int | None) -> Conversation | None:
    if channel is None:
        return None
    if isinstance(channel, discord.Thread):
        return _conversation(channel.id, channel.parent_id, channel.guild.id)
    if isinstance(channel, (discord.DMChannel, discord.GroupChannel)):
        return _conversation(channel.id, None, None)
    if guild_id is None:
        guild = getattr(channel, "guild", None)
        guild_id = guild.id if guild is not None else getattr(channel, "guild_id", None)
    channel_id = getattr(channel, "id", None)
    if not isinstance(channel_id, int):
        return None
    # A PartialMessageable of an uncached thread has no parent id: keyed by itself.
    return _conversation(channel_id, None, guild_id)


def _of_message(message: discord.Message) -> Conversation | None:
    guild = message.guild
    return _of_channel(message.channel, guild.id if guild is not None else None)


def _of_interaction(interaction: discord.Interaction[Any]) -> Conversation | None:
    channel = interaction.channel
    if channel is not None:
        return _of_channel(channel, interaction.guild_id)
    if interaction.channel_id is None:
        return None
    return _conversation(interaction.channel_id, None, interaction.guild_id)


def _of_context(ctx: Context[Any]) -> Conversation | None:
    return _of_message(ctx.message)


def _of_reaction(reaction: discord.Reaction) -> Conversation | None:
    return _of_message(reaction.message)


def _of_raw_update(payload: discord.RawMessageUpdateEvent) -> Conversation | None:
    return _of_message(payload.message)


def _of_raw_channel(payload: Any, client: discord.Client | None) -> Conversation | None:
    channel = client.get_channel(payload.channel_id) if client is not None else None
    if channel is not None:
        return _of_channel(channel, payload.guild_id)
    return _conversation(payload.channel_id, None, payload.guild_id)


_Extractor = Callable[[Any, "discord.Client | None"], "Conversation | None"]

_BASE_EXTRACTORS: tuple[tuple[type, _Extractor], ...] = (
    (discord.Message, lambda o, c: _of_message(o)),
    (discord.Interaction, lambda o, c: _of_interaction(o)),
    (Context, lambda o, c: _of_context(o)),
    (discord.Reaction, lambda o, c: _of_reaction(o)),
    (discord.RawMessageUpdateEvent, lambda o, c: _of_raw_update(o)),
    (discord.RawReactionActionEvent, _of_raw_channel),
)
# Poll votes arrived in discord.py 2.4; on 2.3 there is no such event to track.
_POLL_VOTE: type | None = getattr(discord, "RawPollVoteActionEvent", None)
if _POLL_VOTE is not None:
    _BASE_EXTRACTORS += ((_POLL_VOTE, _of_raw_channel),)
# Exact type -> extractor (None: not a conversation), filled in as types are met,
# so the common case is one dict lookup.
_BY_TYPE: dict[type, _Extractor | None] = dict(_BASE_EXTRACTORS)


def _extractor(kind: type) -> _Extractor | None:
    try:
        return _BY_TYPE[kind]
    except KeyError:
        found = next((f for base, f in _BASE_EXTRACTORS if issubclass(kind, base)), None)
        _BY_TYPE[kind] = found
        return found


def conversation_of(obj: object, client: discord.Client | None = None) -> Conversation | None:
    """Where a reply to ``obj`` belongs, or None if it is not part of a conversation.

    ``obj`` is a ``Message``, ``Interaction``, command ``Context``,
    ``Reaction`` or a raw message-update / reaction / poll-vote payload.
    ``client`` (optional) resolves a raw payload's thread to its parent.
    """
    extract = _extractor(type(obj))
    return None if extract is None else extract(obj, client)


def conversation_of_event(args: Sequence[Any], client: discord.Client) -> Conversation | None:
    """The conversation of an event from its arguments (the first two that can tell)."""
    for arg in args[:2]:
        extract = _extractor(type(arg))
        if extract is not None:
            found = extract(arg, client)
            if found is not None:
                return found
    return None


def conversation_of_interaction_data(data: dict[str, Any]) -> Conversation | None:
    """The conversation of a raw INTERACTION_CREATE payload (same key as its Interaction)."""
    raw_channel = data.get("channel") or {}
    raw_id = raw_channel.get("id") or data.get("channel_id")
    if raw_id is None:
        return None
    kind = raw_channel.get("type")
    guild_id = None if kind in _PRIVATE_TYPES else data.get("guild_id")
    parent = raw_channel.get("parent_id") if kind in _THREAD_TYPES else None
    return _conversation(
        int(raw_id),
        int(parent) if parent is not None else None,
        int(guild_id) if guild_id is not None else None,
    )


# ------------------------------------------------------------------ origins
def _of_author(message: discord.Message) -> Origin:
    return Origin(None, str(message.id), str(message.author.id))


def origin_of_interaction(interaction: discord.Interaction[Any]) -> Origin:
    """A slash command, context menu, component or modal: mention its user (the token expires)."""
    return Origin(None, None, str(interaction.user.id), interaction=True)


def origin_of_event(args: Sequence[Any]) -> Origin | None:
    """The ids a notice needs to answer the event with these arguments (ids only).

    A message (or a command's) is replied to; an interaction mentions its
    user; a reaction mentions who reacted (the message is not theirs).
    """
    first = args[0] if args else None
    if isinstance(first, discord.Message):
        return _of_author(first)
    if isinstance(first, Context):
        return _of_author(first.message)
    if isinstance(first, discord.Interaction):
        return origin_of_interaction(first)
    if isinstance(first, discord.Reaction) and len(args) > 1:
        user = getattr(args[1], "id", None)
        return Origin(user=str(user)) if isinstance(user, int) else None
    if isinstance(first, discord.RawReactionActionEvent):
        return Origin(user=str(first.user_id))
    return None


def origin_of_interaction_data(data: dict[str, Any]) -> Origin:
    """The origin of a raw INTERACTION_CREATE payload (its views' and modals' runs)."""
    user = (data.get("member") or {}).get("user") or data.get("user") or {}
    ident = user.get("id")
    return Origin(None, None, None if ident is None else str(ident), interaction=True)
