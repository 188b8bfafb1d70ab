"""In-process: notices through real slack_sdk clients, and aiohttp-hosted apps.

Errors come from the stand-in as Slack sends them; ``delivery_error`` must
turn each into what the resume step acts on.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web
from restart_guard.adapters import slack as slack_guard
from restart_guard.adapters.slack._link import delivery_error
from slack_bolt import App
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import FileInstallationStore, Installation
from slack_sdk.web.async_client import AsyncWebClient

import restart_guard
from restart_guard import Conversation, DirectoryStore, Marker
from restart_guard.errors import ConversationGone, RateLimited
from restart_guard.testing.slack import SlackStandIn
from scenarios.drivers.slack import free_port


def failure(api: SlackStandIn) -> SlackApiError:
    client = WebClient(token=api.bot_token, base_url=api.api_url)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C0GONE", text="hello")
    return info.value


@pytest.mark.parametrize(
    "error", ["channel_not_found", "not_in_channel", "is_archived", "account_inactive"]
)
def test_lasting_errors_mean_the_conversation_is_gone(api: SlackStandIn, error: str) -> None:
    api.fail_channel("C0GONE", error)
    mapped = delivery_error(failure(api))
    assert isinstance(mapped, ConversationGone)
    assert error in str(mapped)


def test_rate_limit_carries_retry_after(api: SlackStandIn) -> None:
    api.rate_limit("C0GONE", retry_after=7)
    mapped = delivery_error(failure(api))
    assert isinstance(mapped, RateLimited)
    assert mapped.retry_after == 7.0


async def test_rate_limit_seen_by_the_async_client() -> None:
    async with SlackStandIn() as api:
        api.rate_limit("C0GONE", retry_after=3)
        client = AsyncWebClient(token=api.bot_token, base_url=api.api_url)
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(channel="C0GONE", text="hello")
        mapped = delivery_error(info.value)
        assert isinstance(mapped, RateLimited)
        assert mapped.retry_after == 3.0


def test_other_errors_are_transient(api: SlackStandIn) -> None:
    api.fail_next("internal_error", channel="C0GONE")
    error = failure(api)
    assert delivery_error(error) is error


async def test_aiohttp_hosted_app_resumes_on_startup_and_drains_on_shutdown(
    marker_dir: Path,
) -> None:
    """``web.run_app(app.web_app())`` and other aiohttp runners need no extra call."""
    async with SlackStandIn() as api:
        interrupted = Conversation("slack", "C0WAS", "17.1", api.team_id)
        dead = DirectoryStore(marker_dir)
        dead.open("elsewhere:1:dead")
        dead.commit([Marker(interrupted, started_at=time.time())], [])
        dead.close()

        finished: list[str] = []
        app = AsyncApp(
            client=AsyncWebClient(token=api.bot_token, base_url=api.api_url),
            signing_secret=api.signing_secret,
        )

        @app.event("message")
        async def on_message(event: dict[str, str]) -> None:
            await asyncio.sleep(0.3)
            finished.append(event["text"])

        app = restart_guard.protect(marker_dir=marker_dir)(app)
        port = free_port()
        runner = web.AppRunner(app.web_app(), handle_signals=False)
        await runner.setup()  # on_startup: the notice, before the site listens
        assert [(m.chat, m.thread) for m in api.sent] == [("C0WAS", "17.1")]
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        event = api.message_event("C0NEW", "slow one")
        status, _ = await api.post_event_async(f"http://127.0.0.1:{port}/slack/events", event)
        assert status == 200
        state = slack_guard.state_of(app)
        assert state is not None
        assert state.lifecycle.guard is not None
        assert state.lifecycle.guard.in_flight == 1
        await runner.cleanup()  # on_shutdown: pre-mark and drain the listener
        assert finished == ["slow one"]
        assert DirectoryStore(marker_dir).load() == []


def test_multi_workspace_app_posts_with_the_installed_bot_token(
    api: SlackStandIn, marker_dir: Path, tmp_path: Path
) -> None:
    """An OAuth app has no token of its own: the notice uses the workspace's bot token."""
    installations = FileInstallationStore(base_dir=str(tmp_path / "installations"))
    installations.save(
        Installation(
            app_id=api.app_id,
            team_id=api.team_id,
            bot_token=api.bot_token,
            bot_id=api.bot_id,
            bot_user_id=api.bot_user_id,
            user_id=api.user_id,
        )
    )
    interrupted = Conversation("slack", "C0ORG", "17.1", api.team_id)
    dead = DirectoryStore(marker_dir)
    dead.open("elsewhere:1:dead")
    dead.commit(
        [
            Marker(interrupted, started_at=time.time()),
            Marker(Conversation("slack", "C0GONE", None, "T0UNINSTALLED"), started_at=time.time()),
        ],
        [],
    )
    dead.close()

    app = App(
        client=WebClient(base_url=api.api_url),  # no token: tokens come per workspace
        signing_secret=api.signing_secret,
        installation_store=installations,
        oauth_settings=OAuthSettings(
            client_id="1234.5678", client_secret="not-used", scopes=["chat:write"]
        ),
    )
    app = restart_guard.protect(marker_dir=marker_dir)(app)
    try:
        slack_guard.startup(app)
        [notice] = api.wait_for_sent(lambda m: "restarted" in m.text)
        assert (notice.chat, notice.thread) == ("C0ORG", "17.1")
    finally:
        slack_guard.shutdown(app)
    assert DirectoryStore(marker_dir).load() == []  # the uninstalled workspace was dropped
