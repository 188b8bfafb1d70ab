"""Bracketing every handler run: events and listeners, app commands, view and modal callbacks.

discord.py runs each kind in a task of its own, created in a different place:

- ``on_*`` events and listeners (prefix commands run inside ``on_message``):
  ``Client.dispatch`` → ``_schedule_event`` → a task running ``_run_event``.
  The guarded client overrides ``_schedule_event`` (see ``_client.py``) and
  calls :func:`schedule_event` here.
- App (slash) and context-menu commands: ``CommandTree._from_interaction``
  starts a task of its own; the tree's class is swapped for a subclass that
  starts that task itself, tracked.
- Component and modal callbacks: ``ViewStore.dispatch_view`` /
  ``dispatch_modal`` create tasks and hand each to ``ViewStore.add_task``;
  the view store's class is swapped for a subclass whose ``add_task``
  tracks them, and the INTERACTION_CREATE parser says which conversation
  they belong to.

Every run is begun synchronously when its task is created (so a stop
request right after it cannot miss it) and ended when the handler's
coroutine ends (for views and modals, whose coroutines are discord.py's,
when the task is done — their ``on_error`` included).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands

from restart_guard import Origin
from restart_guard._ask import Press, is_press_data, press_from
from restart_guard._policy import CURRENT_RUN, is_no_replay

from ._keys import (
    conversation_of,
    conversation_of_event,
    conversation_of_interaction_data,
    origin_of_event,
    origin_of_interaction,
    origin_of_interaction_data,
)
from ._link import replay_payload
from ._state import IN_HANDLER, SWAPPED_CLASS, BotState, Tracked, above, log, state_of

__all__ = [
    "ensure_hooks",
    "remove_hooks",
    "schedule_event",
]

_INTERACTION_CREATE = "INTERACTION_CREATE"
_COMPONENT = 3  # interaction type of a button or select press
_MESSAGE_CREATE = "MESSAGE_CREATE"
# Application command, component, modal submit: a user asked the bot for something.
# (Autocomplete, type 4, is not a request worth a notice.)
_REQUEST_TYPES = frozenset({2, 3, 5})

ScheduleEvent = Callable[..., "asyncio.Task[Any]"]


async def _skipped(*args: Any, **kwargs: Any) -> None:
    """Stands in for a handler that does not run because the bot is stopping."""


def schedule_event(
    client: discord.Client,
    state: BotState,
    schedule: ScheduleEvent,
    coro: Callable[..., Coroutine[Any, Any, Any]],
    event_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> asyncio.Task[Any]:
    """``Client._schedule_event`` with the run bracketed; ``schedule`` is discord.py's own."""
    conversation = conversation_of_event(args, client)
    lifecycle = state.lifecycle
    if not lifecycle.accepting and not state.admits(
        None if conversation is None else conversation.key
    ):
        addressed, ident = _addressed(client, event_name, args)
        state.refuse(conversation, addressed, ident, origin_of_event(args))
        return schedule(_skipped, event_name)
    run = None
    if conversation is not None:
        payload = state.raw_message if event_name == "on_message" else None
        origin = origin_of_event(args)
        if is_no_replay(coro):  # known before it runs: flagged in the write-ahead itself
            origin = dataclasses.replace(origin or Origin(), replayable=False)
        run = lifecycle.begin(conversation, payload, origin)
    if run is None:
        return schedule(coro, event_name, *args, **kwargs)
    return schedule(Tracked(state, run, coro), event_name, *args, **kwargs)


def press_of(data: Any, client: discord.Client) -> Press | None:
    """The restart-guard button press in an INTERACTION_CREATE, or None."""
    if not isinstance(data, dict) or data.get("type") != _COMPONENT:
        return None
    custom_id = (data.get("data") or {}).get("custom_id")
    if not is_press_data(custom_id):
        return None  # before building an Interaction for every component press
    user = (data.get("member") or {}).get("user") or data.get("user") or {}
    interaction = discord.Interaction(data=data, state=client._connection)  # type: ignore[arg-type]
    return press_from(custom_id, user.get("id", ""), interaction)


def _addressed(
    client: discord.Client, event_name: str, args: tuple[Any, ...]
) -> tuple[bool, int | None]:
    """Was this refused event a user talking to the bot (a DM or a mention)?"""
    message = args[0] if args else None
    if event_name != "on_message" or not isinstance(message, discord.Message):
        return False, None
    if message.author.bot:
        return False, message.id
    me = client.user
    mentioned = me is not None and any(user.id == me.id for user in message.mentions)
    return message.guild is None or mentioned, message.id


# Class attribute of a swapped-in subclass: the class it replaced.
_ORIGINAL = "_restart_guard_original"
# (original class, kind) -> the subclass swapped in.
_CLASSES: dict[tuple[type, str], type] = {}


def _tree_from_interaction(self: Any, interaction: discord.Interaction[Any]) -> None:
    # Each app (slash) or context-menu command invocation is one run.
    state = state_of(self.client)
    conversation = None
    if state is not None and interaction.type is discord.InteractionType.application_command:
        conversation = conversation_of(interaction)
    run = None
    if state is not None and conversation is not None:
        run = state.lifecycle.begin(conversation, None, origin_of_interaction(interaction))
    if state is None or run is None:
        above(self)._from_interaction(interaction)
        return
    tracked = Tracked(state, run)
    self.client.loop.create_task(
        _invoke_app_command(self, interaction, tracked), name="CommandTree-invoker"
    )


async def _invoke_app_command(
    tree: Any, interaction: discord.Interaction[Any], tracked: Tracked
) -> None:
    # CommandTree._from_interaction's own task body (discord.py 2.0–2.7): the
    # tree does not hand out its task, so it is started here to be tracked.
    IN_HANDLER.set(True)
    CURRENT_RUN.set(tracked.run)
    cut_off = False
    try:
        await tree._call(interaction)
    except app_commands.AppCommandError as error:
        await tree._dispatch_error(interaction, error)
    except asyncio.CancelledError:
        cut_off = True
        raise
    finally:
        tracked.end(cut_off)


def _view_store_add_task(self: Any, task: asyncio.Task[None]) -> None:
    # Every view, dynamic item and modal callback task passes through here,
    # synchronously inside the INTERACTION_CREATE parser that says whose it is.
    above(self).add_task(task)
    state = state_of(self._state._get_client())
    if state is None or state.interaction is None:
        return
    run = state.lifecycle.begin(state.interaction, None, state.interaction_origin)
    if run is not None:
        Tracked(state, run).attach(task)


_OVERRIDES: dict[str, dict[str, Any]] = {
    "tree": {"_from_interaction": _tree_from_interaction},
    "views": {"add_task": _view_store_add_task},
}


def _swap(obj: Any, kind: str) -> None:
    """Swap ``obj``'s class for a subclass with the overrides of ``kind`` (made once per class).

    The subclass has the original as its only base, so the swap works for any
    user subclass of ``CommandTree`` (a mixin base could change the instance
    layout CPython checks on ``__class__`` assignment).
    """
    original = type(obj)
    if SWAPPED_CLASS in original.__dict__:
        return
    cls = _CLASSES.get((original, kind))
    if cls is None:
        namespace = {
            **_OVERRIDES[kind],
            _ORIGINAL: original,
            "__module__": original.__module__,
            "__qualname__": original.__qualname__,
        }
        cls = _CLASSES[original, kind] = type(original.__name__, (original,), namespace)
        setattr(cls, SWAPPED_CLASS, cls)
    obj.__class__ = cls


def _unswap(obj: Any) -> None:
    original = type(obj).__dict__.get(_ORIGINAL)
    if original is not None:
        obj.__class__ = original


def _ensure_interaction_hooks(client: discord.Client) -> None:
    # The tree may be created after protect(), and Client.clear() makes a new view store.
    connection = client._connection
    tree = connection._command_tree
    if tree is not None and SWAPPED_CLASS not in type(tree).__dict__:
        if hasattr(tree, "_call") and hasattr(tree, "_dispatch_error"):
            _swap(tree, "tree")
        else:  # pragma: no cover - a future discord.py
            log.warning(
                "restart-guard: this discord.py's CommandTree has no _call/_dispatch_error; "
                "app commands are not tracked"
            )
    if SWAPPED_CLASS not in type(connection._view_store).__dict__:
        _swap(connection._view_store, "views")


def ensure_hooks(client: discord.Client, state: BotState) -> None:
    """Hook the command tree, the view store and the gateway parsers. Idempotent."""
    _ensure_interaction_hooks(client)
    parsers = client._connection.parsers
    if _INTERACTION_CREATE not in state.parsers:
        original_interaction = parsers[_INTERACTION_CREATE]
        state.parsers[_INTERACTION_CREATE] = original_interaction

        def interaction_create(data: Any) -> None:
            _ensure_interaction_hooks(client)
            press = press_of(data, client)
            if press is not None:  # a replay="ask" button: never the bot's views or events
                task = asyncio.ensure_future(state.lifecycle.press(press))
                state.presses.add(task)
                task.add_done_callback(state.presses.discard)
                return
            conversation = None
            lifecycle = state.lifecycle
            if lifecycle.guard is not None or not lifecycle.accepting:
                conversation = conversation_of_interaction_data(data)
            if not state.admits(None if conversation is None else conversation.key):
                ident = data.get("id")
                state.refuse(
                    conversation,
                    data.get("type") in _REQUEST_TYPES,
                    int(ident) if ident is not None else None,
                    origin_of_interaction_data(data),
                )
                return
            state.interaction = conversation
            state.interaction_origin = origin_of_interaction_data(data)
            try:
                original_interaction(data)
            finally:
                state.interaction = None
                state.interaction_origin = None

        parsers[_INTERACTION_CREATE] = interaction_create
    if state.lifecycle.settings.replay and _MESSAGE_CREATE not in state.parsers:
        original_message = parsers[_MESSAGE_CREATE]
        state.parsers[_MESSAGE_CREATE] = original_message

        def message_create(data: Any) -> None:
            # Only with replay on: the raw event is what a marker stores to replay
            # (not the bot's own messages, which Discord echoes back to it).
            me = client.user
            author = data.get("author") or {}
            own = me is not None and author.get("id") == str(me.id)
            if state.lifecycle.guard is not None and not own:
                state.raw_message = replay_payload(data)
            try:
                original_message(data)
            finally:
                state.raw_message = None

        parsers[_MESSAGE_CREATE] = message_create


def remove_hooks(client: discord.Client, state: BotState) -> None:
    """Undo :func:`ensure_hooks`."""
    connection = client._connection
    connection.parsers.update(state.parsers)
    state.parsers.clear()
    if connection._command_tree is not None:
        _unswap(connection._command_tree)
    _unswap(connection._view_store)
