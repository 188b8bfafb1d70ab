"""``replay="ask"`` on Slack: a press of a question's button is restart-guard's, never the app's.

A question's buttons carry ``action_id`` ``rg1:<c|d>:<token>`` (see
``restart_guard._ask``). Slack delivers a press as a ``block_actions``
payload — over Socket Mode or to the Request URL — and Bolt passes it
through its middleware chain before any listener. restart-guard's middleware
sits in that chain right after Bolt's own request verification and
authorization (so a forged HTTP press is refused 401 by Bolt, as any
request is) and before every middleware and listener of the app: a press
of restart-guard's buttons is acknowledged at once (an empty 200: the
Socket Mode ack, the HTTP answer) and never goes further. The answer
follows in the background, through the core (``Lifecycle.press``):

- an ``AsyncApp``: a task on the app's loop;
- an ``App``: ``Lifecycle.press_blocking`` in a short-lived thread (Bolt's
  thread that dispatched the request sends the ack meanwhile).

A press that arrives while the app stops is answered 503 before it gets
here (``_install``): unacknowledged, Slack's Socket Mode delivers it again
to the next connection — the restarted process honours it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt import App
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.middleware.authorization.async_authorization import AsyncAuthorization
from slack_bolt.middleware.authorization.authorization import Authorization
from slack_bolt.middleware.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from restart_guard import Conversation
from restart_guard._ask import Press, is_press_data, press_from

from ._state import PLATFORM, BotState, Pressed

__all__ = ["answer_presses", "press_of", "stop_answering_presses"]


def press_of(body: Any) -> Press | None:
    """The press of a restart-guard button in a request body, or None (anything else)."""
    if not isinstance(body, dict) or body.get("type") != "block_actions":
        return None
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else None
    action_id = action.get("action_id") if isinstance(action, dict) else None
    if not is_press_data(action_id):
        return None
    user = body.get("user")
    return press_from(action_id, user.get("id") if isinstance(user, dict) else None, _pressed(body))


def _pressed(body: dict[str, Any]) -> Pressed:
    """Where the pressed message is (its channel, thread and team), and the response_url."""
    container = body.get("container")
    container = container if isinstance(container, dict) else {}
    channel = container.get("channel_id") or _id(body.get("channel"))
    team = _id(body.get("team")) or _id(body.get("user"), "team_id")
    response_url = body.get("response_url")
    conversation: Conversation | None
    try:
        conversation = Conversation(
            PLATFORM, channel, container.get("thread_ts"), team, _id(body.get("enterprise"))
        )
    except (TypeError, ValueError):  # no channel, or ids that are not strings
        conversation = None
    return Pressed(conversation, response_url if isinstance(response_url, str) else None)


def _id(value: Any, key: str = "id") -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _acknowledged() -> BoltResponse:
    return BoltResponse(status=200, body="")


class _AnswerPresses(Middleware):
    """For an ``App``: acknowledge restart-guard's presses; answer them in a thread."""

    def __init__(self, state: BotState) -> None:
        self.state = state

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],
    ) -> BoltResponse | None:
        press = press_of(req.body)
        if press is None:
            return next()
        threading.Thread(
            target=self.state.lifecycle.press_blocking,
            args=(press,),
            name="restart-guard-press",
            daemon=True,
        ).start()
        return _acknowledged()


class _AnswerPressesAsync(AsyncMiddleware):
    """For an ``AsyncApp``: acknowledge restart-guard's presses; answer them in a task."""

    def __init__(self, state: BotState) -> None:
        self.state = state

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        press = press_of(req.body)
        if press is None:
            return await next()
        presses = self.state.presses
        task = asyncio.ensure_future(self.state.lifecycle.press(press))
        presses.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(presses.discard)
        return _acknowledged()


_OURS = (_AnswerPresses, _AnswerPressesAsync)


def _chain(app: App | AsyncApp) -> list[Any]:
    """The app's global middleware, Bolt's own first (built when the app was)."""
    name = "_async_middleware_list" if isinstance(app, AsyncApp) else "_middleware_list"
    chain = getattr(app, name, None)
    if not isinstance(chain, list):
        raise TypeError(
            f"restart_guard cannot find {type(app).__name__}.{name} in this slack-bolt: "
            'replay="ask" presses could reach the app\'s listeners'
        )
    return chain


def answer_presses(app: App | AsyncApp, state: BotState) -> None:
    """Put restart-guard's middleware after Bolt's verification and authorization."""
    chain = _chain(app)
    if any(isinstance(m, _OURS) for m in chain):
        return
    after = [i for i, m in enumerate(chain) if isinstance(m, (Authorization, AsyncAuthorization))]
    ours = _AnswerPressesAsync(state) if isinstance(app, AsyncApp) else _AnswerPresses(state)
    chain.insert(after[-1] + 1 if after else 0, ours)


def stop_answering_presses(app: App | AsyncApp) -> None:
    """Undo :func:`answer_presses`."""
    chain = _chain(app)
    chain[:] = [m for m in chain if not isinstance(m, _OURS)]
