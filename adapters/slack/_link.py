"""Posting notices and replaying events through the app's own Web API client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from typing import Any, TypeVar

from slack_bolt import App
from slack_bolt.async_app import AsyncApp
from slack_bolt.request import BoltRequest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from restart_guard import Conversation, Marker, Notice
from restart_guard._ask import Press
from restart_guard.errors import ConversationGone, RateLimited, ThreadGone

from ._state import NOTICES_PER_SECOND, REPLAY_KEY, BotState, log

__all__ = ["AsyncLink", "SyncLink", "delivery_error"]

T = TypeVar("T")

#: Errors after which nobody can be told: the marker is dropped after one log line.
GONE = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "account_inactive", "token_revoked"}
)
THREAD_GONE = frozenset({"thread_not_found", "invalid_thread_ts"})


def delivery_error(exc: SlackApiError) -> Exception:
    """The resume step's view of a failed ``chat.postMessage`` (``exc`` itself: transient)."""
    response = exc.response
    error = str(response.get("error") or "") if hasattr(response, "get") else ""
    if getattr(response, "status_code", None) == 429 or error == "ratelimited":
        return RateLimited(_retry_after(response), f"Slack answered {error or 'HTTP 429'}")
    if error in GONE:
        return ConversationGone(f"Slack answered {error}")
    if error in THREAD_GONE:
        return ThreadGone(f"Slack answered {error}")
    return exc


def addressed(notice: Notice) -> str:
    """The notice's text, mentioning the askers (``<@U…>``) outside direct messages.

    The notice already goes to the interrupted message's thread (the
    conversation's ``thread`` is its thread root, or the message itself).
    """
    if notice.conversation.chat.startswith("D"):  # a DM has one reader
        return notice.text
    return notice.addressed(_mention)


def _mention(user: str) -> str:
    return f"<@{user}>"


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0


def _replay_body(raw: Any) -> dict[str, Any] | None:
    return raw if isinstance(raw, dict) else None


def _client_for_token(client: Any, cls: type[T], token: str) -> T:
    # Same endpoint, proxy and TLS as the app's client, another workspace's token.
    return cls(  # type: ignore[call-arg]
        token=token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=client.headers,
        logger=getattr(client, "logger", None) or client._logger,  # older slack-sdk: _logger only
    )


@contextlib.contextmanager
def _delivery_errors() -> Iterator[None]:
    """Raise a Slack API error as the delivery error it means (gone, rate limited ...)."""
    try:
        yield
    except SlackApiError as exc:
        mapped = delivery_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _bot_token(bot: Any, conversation: Conversation) -> str:
    """The token of the installation found for ``conversation``'s team (None: uninstalled)."""
    if bot is None or not bot.bot_token:
        raise ConversationGone(f"the app is no longer installed in team {conversation.scope}")
    return str(bot.bot_token)


def _check_replayed(body: dict[str, Any], response: BoltResponse) -> None:
    if response.status != 200:
        log.warning(
            "restart-guard: replayed event %s answered %s", body.get("event_id"), response.status
        )


class _NoQuestions:
    """``replay="ask"`` is not wired to Slack yet: its questions become plain notices.

    ``can_ask = False`` tells the resume step so; these are never called.
    """

    can_ask = False

    async def send_question(self, notice: Notice, token: str) -> str:
        raise NotImplementedError("replay='ask' is not supported on Slack yet")

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        raise NotImplementedError("replay='ask' is not supported on Slack yet")

    async def refuse_press(self, press: Press, text: str) -> None:
        raise NotImplementedError("replay='ask' is not supported on Slack yet")


class SyncLink(_NoQuestions):
    """Notices and replays for an ``App``: the blocking client, off the resume loop."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, app: App, state: BotState) -> None:
        self.app = app
        self.state = state

    async def send_notice(self, notice: Notice) -> None:
        # chat.postMessage has no idempotency key: ``nonce`` is not used.
        post = functools.partial(self._post, notice.conversation, addressed(notice))
        await asyncio.get_running_loop().run_in_executor(None, post)

    def _post(self, conversation: Conversation, text: str) -> None:
        client = self.app.client
        if client.token is None:
            client = _client_for_token(client, WebClient, self._installed_token(conversation))
        with _delivery_errors():
            client.chat_postMessage(
                channel=conversation.chat, thread_ts=conversation.thread, text=text
            )

    def _installed_token(self, conversation: Conversation) -> str:
        store = self.app.installation_store
        bot = None
        if store is not None:
            bot = store.find_bot(enterprise_id=conversation.parent, team_id=conversation.scope)
        return _bot_token(bot, conversation)

    async def replay(self, marker: Marker) -> None:
        loop = asyncio.get_running_loop()
        for raw in marker.payload or ():
            body = _replay_body(raw)
            if body is None:
                continue
            request = BoltRequest(body=body, mode="socket_mode", context={REPLAY_KEY: True})
            response = await loop.run_in_executor(None, self.app.dispatch, request)
            _check_replayed(body, response)


class AsyncLink(_NoQuestions):
    """Notices and replays for an ``AsyncApp``, on the app's own loop."""

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, app: AsyncApp, state: BotState) -> None:
        self.app = app
        self.state = state

    async def send_notice(self, notice: Notice) -> None:
        # chat.postMessage has no idempotency key: ``nonce`` is not used.
        conversation, text = notice.conversation, addressed(notice)
        client = self.app.client
        if client.token is None:
            token = await self._installed_token(conversation)
            client = _client_for_token(client, AsyncWebClient, token)
        with _delivery_errors():
            await client.chat_postMessage(
                channel=conversation.chat, thread_ts=conversation.thread, text=text
            )

    async def _installed_token(self, conversation: Conversation) -> str:
        store = self.app.installation_store
        bot = None
        if store is not None:
            bot = await store.async_find_bot(
                enterprise_id=conversation.parent, team_id=conversation.scope
            )
        return _bot_token(bot, conversation)

    async def replay(self, marker: Marker) -> None:
        for raw in marker.payload or ():
            body = _replay_body(raw)
            if body is None:
                continue
            request = AsyncBoltRequest(body=body, mode="socket_mode", context={REPLAY_KEY: True})
            response = await self.app.async_dispatch(request)
            _check_replayed(body, response)
