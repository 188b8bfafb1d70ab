"""The framework internals each adapter hooks, checked by ``protect()`` before importing it.

Data only, importing no framework: the check must be able to speak before an
adapter's own imports fail on a release that moved something. One module for
all adapters because a module inside ``adapters/discord/`` would import that
package (and so the adapter) first. When an adapter starts to override, wrap
or call another framework internal, add it here: ``tests/core/test_compat.py``
checks every entry against the installed frameworks.
"""

from __future__ import annotations

from restart_guard._compat import HookPoint

__all__ = ["HOOKS"]

_S = ("self",)

TELEGRAM = (
    HookPoint("telegram.ext._application:Application", "class", why="the class subclassed"),
    HookPoint("telegram.ext._application:Application.initialize", "coroutine", _S),
    HookPoint("telegram.ext._application:Application.process_update", "coroutine", (*_S, "update")),
    HookPoint(
        "telegram.ext._application:Application.create_task",
        "function",
        (*_S, "coroutine", "update", "name"),
    ),
    HookPoint("telegram.ext._application:Application.stop", "coroutine", _S),
    HookPoint("telegram.ext._application:Application.shutdown", "coroutine", _S),
    HookPoint("telegram.ext._application:Application.update_queue", "attribute"),
    HookPoint(
        "telegram.ext._application:Application._raise_system_exit",
        "function",
        (),  # a staticmethod, called as self._raise_system_exit(): the override is a method
        why="run_polling's signal handler: a second signal during the drain stops now",
    ),
    HookPoint(
        "telegram:Bot.get_updates",
        "coroutine",
        _S,
        why="the offset that confirms fetched updates waits for their markers",
    ),
    HookPoint("telegram:Update.de_json", "function", ("cls", "data", "bot"), why="replay"),
)

_TREE = "discord.app_commands.tree:CommandTree"
DISCORD = (
    HookPoint("discord.client:Client._schedule_event", "function", (*_S, "coro", "event_name")),
    HookPoint("discord.client:Client.setup_hook", "coroutine", _S),
    HookPoint("discord.client:Client.login", "coroutine", (*_S, "token")),
    HookPoint("discord.client:Client.close", "coroutine", _S),
    HookPoint(
        "discord.client:Client.connect",
        "coroutine",
        _S,
        why="a stop during the gateway handshake cancels connect() before close()",
    ),
    HookPoint(
        "discord.shard:AutoShardedClient.shards",
        "attribute",
        why="shards launched so far: a stop before all are up cancels connect() before close()",
    ),
    HookPoint(
        "discord.gateway:DiscordWebSocket.open",
        "attribute",
        why="an open gateway socket: connect() is past its handshake, close() ends it cleanly",
    ),
    HookPoint("discord.client:Client.get_partial_messageable", "function", (*_S, "id")),
    HookPoint("discord.state:ConnectionState.parse_interaction_create", "function", (*_S, "data")),
    HookPoint("discord.state:ConnectionState.parse_message_create", "function", (*_S, "data")),
    HookPoint(f"{_TREE}._from_interaction", "function", (*_S, "interaction")),
    HookPoint(f"{_TREE}._call", "coroutine", (*_S, "interaction")),
    HookPoint(f"{_TREE}._dispatch_error", "coroutine", (*_S, "interaction", "error")),
    HookPoint(
        "discord.interactions:Interaction.__init__",
        "function",
        (*_S, "data", "state"),
        why='a replay="ask" button press is answered through an Interaction built from its data',
    ),
    HookPoint(
        "discord.ui.view:ViewStore.add_task",
        "function",
        (*_S, "task"),
        why="every view and modal callback task passes through it (discord.py 2.6+)",
    ),
)

_RUN = (*_S, "request", "response", "listener_name", "listener", "starting_time")
_LAZY = (*_S, "function", "request")
SLACK = (
    HookPoint("slack_bolt.listener.thread_runner:ThreadListenerRunner.run", "function", _RUN),
    HookPoint("slack_bolt.listener.asyncio_runner:AsyncioListenerRunner.run", "coroutine", _RUN),
    HookPoint(
        "slack_bolt.listener.thread_runner:ThreadListenerRunner.__init__",
        "function",
        why="listener_completion_handler and lazy_listener_runner are instance attributes",
    ),
    HookPoint("slack_bolt.lazy_listener.runner:LazyListenerRunner.start", "function", _LAZY),
    HookPoint("slack_bolt.lazy_listener.runner:LazyListenerRunner.run", "function", _LAZY),
    HookPoint(
        "slack_bolt.lazy_listener.async_runner:AsyncLazyListenerRunner.start", "function", _LAZY
    ),
    HookPoint(
        "slack_bolt.lazy_listener.async_runner:AsyncLazyListenerRunner.run", "coroutine", _LAZY
    ),
    HookPoint(
        "slack_bolt.listener.listener_completion_handler:ListenerCompletionHandler.handle",
        "function",
        (*_S, "request", "response"),
    ),
    HookPoint(
        "slack_bolt.listener.async_listener_completion_handler:"
        "AsyncListenerCompletionHandler.handle",
        "coroutine",
        (*_S, "request", "response"),
    ),
    HookPoint(
        "slack_bolt.adapter.socket_mode.base_handler:BaseSocketModeHandler.connect",
        "function",
        _S,
    ),
    HookPoint(
        "slack_bolt.adapter.socket_mode.async_base_handler:AsyncBaseSocketModeHandler.connect_async",
        "coroutine",
        _S,
    ),
    HookPoint("slack_bolt.app.app:App.dispatch", "function", (*_S, "req")),
    HookPoint("slack_bolt.app.app:App.start", "function", (*_S, "port", "path")),
    HookPoint("slack_bolt.app.async_app:AsyncApp.async_dispatch", "coroutine", (*_S, "req")),
    HookPoint("slack_bolt.app.async_app:AsyncApp.server", "function", (*_S, "port", "path")),
    HookPoint("slack_bolt.app.async_app:AsyncApp.start", "function", (*_S, "port", "path")),
)

_DP = "aiogram.dispatcher.dispatcher:Dispatcher"
AIOGRAM = (
    HookPoint(_DP, "class", why="the class subclassed"),
    HookPoint(f"{_DP}.emit_startup", "coroutine", _S),
    HookPoint(f"{_DP}.emit_shutdown", "coroutine", _S),
    HookPoint(
        f"{_DP}._listen_updates",
        "function",  # an async generator (classmethod): called, then iterated
        ("cls", "bot"),
        why="an update is in flight from the moment polling takes it",
    ),
    HookPoint(f"{_DP}.feed_update", "coroutine", (*_S, "bot", "update")),
    HookPoint(f"{_DP}.silent_call_request", "coroutine", ("cls", "bot", "result"), why="replay"),
    HookPoint(
        f"{_DP}._signal_stop_polling",
        "function",
        (*_S, "sig"),
        why="start_polling's signal handler: the first signal pre-marks, a second stops now",
    ),
    HookPoint(f"{_DP}.stop_polling", "coroutine", _S),
    HookPoint(
        "aiogram.client.session.middlewares.manager:RequestMiddlewareManager.register",
        "function",
        (*_S, "middleware"),
        why="a session middleware holds getUpdates until the updates it confirms are marked",
    ),
    HookPoint("aiogram.types:Update.model_validate", "function", why="replay"),
    HookPoint(
        "aiogram.webhook.aiohttp_server:BaseRequestHandler._handle_request_background",
        "coroutine",
        (*_S, "bot", "request"),
        why="a webhook's 200 waits until the update's marker is durable",
    ),
    HookPoint(
        "aiogram.webhook.aiohttp_server:BaseRequestHandler._handle_close",
        "coroutine",
        _S,
        why="how the request handlers of a dispatcher are found on the aiohttp app",
    ),
)

HOOKS = {"telegram": TELEGRAM, "discord": DISCORD, "slack": SLACK, "aiogram": AIOGRAM}
