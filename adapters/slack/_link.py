"""Notices, ``replay="ask"`` questions and replays through the app's own Web API client."""

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
from slack_sdk.webhook import WebhookClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from restart_guard import Conversation, Marker, Notice
from restart_guard._ask import PRESS_PREFIX, Choice, Press, press_data
from restart_guard.errors import ConversationGone, RateLimited, ThreadGone

from ._state import NOTICES_PER_SECOND, REPLAY_KEY, BotState, Pressed, log

__all__ = ["AsyncLink", "SyncLink", "delivery_error", "question_blocks"]

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


class _Link:
    """Notices, questions and the answers to presses: one call each, the client's way.

    A subclass says how one Web API call is made (:meth:`_call`): a sync
    ``App`` with its blocking client off the resume loop, an ``AsyncApp`` on
    its own loop; with the app's token, or the installation's for an OAuth
    app. The calls themselves are written once, here.
    """

    notices_per_second = NOTICES_PER_SECOND

    def __init__(self, state: BotState) -> None:
        self.state = state

    async def _call(self, conversation: Conversation, method: str, **params: Any) -> Any:
        """``client.<method>(**params)`` for ``conversation``'s team; Slack's errors mapped."""
        raise NotImplementedError

    async def send_notice(self, notice: Notice) -> None:
        # chat.postMessage has no idempotency key: ``nonce`` is not used.
        conversation = notice.conversation
        await self._call(
            conversation,
            "chat_postMessage",
            channel=conversation.chat,
            thread_ts=conversation.thread,
            text=addressed(notice),
        )

    async def send_question(self, notice: Notice, token: str) -> str:
        """The notice with Block Kit *Continue* / *Dismiss* buttons; its ``ts``."""
        conversation, text = notice.conversation, addressed(notice)
        answer = await self._call(
            conversation,
            "chat_postMessage",
            channel=conversation.chat,
            thread_ts=conversation.thread,
            text=text,  # what notifications show; the blocks are what the channel shows
            blocks=question_blocks(text, token),
        )
        return str(answer["ts"])

    async def close_question(
        self, conversation: Conversation, question: str, text: str, press: Press | None
    ) -> None:
        """``chat.update`` with the new text; ``blocks=[]`` takes the buttons off."""
        await self._call(
            conversation,
            "chat_update",
            channel=conversation.chat,
            ts=question,
            text=text,
            blocks=[],
        )

    async def refuse_press(self, press: Press, text: str) -> None:
        """``chat.postEphemeral`` to the presser; its ``response_url`` if Slack refuses that."""
        pressed = press.handle if isinstance(press.handle, Pressed) else Pressed(None)
        where = pressed.conversation
        if where is not None:
            try:
                await self._call(
                    where,
                    "chat_postEphemeral",
                    channel=where.chat,
                    user=press.user,
                    text=text,
                    thread_ts=where.thread,
                )
                return
            except (SlackApiError, ConversationGone) as exc:
                # Not a member (a public channel shows its buttons to everyone): the
                # response_url of the press reaches whoever pressed.
                if not pressed.response_url:
                    raise
                log.info("restart-guard: chat.postEphemeral failed (%s); answering the press", exc)
        if pressed.response_url:
            await self._respond(pressed.response_url, text)

    async def _respond(self, response_url: str, text: str) -> None:
        raise NotImplementedError


def question_blocks(text: str, token: str) -> list[dict[str, Any]]:
    """The question's Block Kit: its text, then an actions block with the two buttons."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": f"{PRESS_PREFIX}{token}",
            "elements": [
                {
                    "type": "button",
                    "action_id": press_data(choice, token),
                    "text": {"type": "plain_text", "text": choice.label},
                    **({"style": "primary"} if choice is Choice.CONTINUE else {}),
                }
                for choice in (Choice.CONTINUE, Choice.DISMISS)
            ],
        },
    ]


class SyncLink(_Link):
    """Notices and replays for an ``App``: the blocking client, off the resume loop."""

    def __init__(self, app: App, state: BotState) -> None:
        super().__init__(state)
        self.app = app

    async def _call(self, conversation: Conversation, method: str, **params: Any) -> Any:
        call = functools.partial(self._call_blocking, conversation, method, params)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _call_blocking(
        self, conversation: Conversation, method: str, params: dict[str, Any]
    ) -> Any:
        client = self.app.client
        if client.token is None:
            client = _client_for_token(client, WebClient, self._installed_token(conversation))
        with _delivery_errors():
            return getattr(client, method)(**params)

    def _installed_token(self, conversation: Conversation) -> str:
        store = self.app.installation_store
        bot = None
        if store is not None:
            bot = store.find_bot(enterprise_id=conversation.parent, team_id=conversation.scope)
        return _bot_token(bot, conversation)

    async def _respond(self, response_url: str, text: str) -> None:
        hook = WebhookClient(response_url, proxy=self.app.client.proxy)
        send = functools.partial(hook.send, text=text, response_type="ephemeral")
        await asyncio.get_running_loop().run_in_executor(None, send)

    async def replay(self, marker: Marker) -> None:
        loop = asyncio.get_running_loop()
        for raw in marker.payload or ():
            body = _replay_body(raw)
            if body is None:
                continue
            request = BoltRequest(body=body, mode="socket_mode", context={REPLAY_KEY: True})
            response = await loop.run_in_executor(None, self.app.dispatch, request)
            _check_replayed(body, response)


class AsyncLink(_Link):
    """Notices and replays for an ``AsyncApp``, on the app's own loop."""

    def __init__(self, app: AsyncApp, state: BotState) -> None:
        super().__init__(state)
        self.app = app

    async def _call(self, conversation: Conversation, method: str, **params: Any) -> Any:
        client = self.app.client
        if client.token is None:
            token = await self._installed_token(conversation)
            client = _client_for_token(client, AsyncWebClient, token)
        with _delivery_errors():
            return await getattr(client, method)(**params)

    async def _installed_token(self, conversation: Conversation) -> str:
        store = self.app.installation_store
        bot = None
        if store is not None:
            bot = await store.async_find_bot(
                enterprise_id=conversation.parent, team_id=conversation.scope
            )
        return _bot_token(bot, conversation)

    async def _respond(self, response_url: str, text: str) -> None:
        await AsyncWebhookClient(response_url, proxy=self.app.client.proxy).send(
            text=text, response_type="ephemeral"
        )

    async def replay(self, marker: Marker) -> None:
        for raw in marker.payload or ():
            body = _replay_body(raw)
            if body is None:
                continue
            request = AsyncBoltRequest(body=body, mode="socket_mode", context={REPLAY_KEY: True})
            response = await self.app.async_dispatch(request)
            _check_replayed(body, response)
