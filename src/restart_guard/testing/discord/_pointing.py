"""Pointing discord.py in this process at a stand-in (``Route.BASE`` and the gateway URL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._model import API_VERSION, ENV_API, ENV_GATEWAY
from ._server import DiscordStandIn

if TYPE_CHECKING:
    import discord


@dataclass
class DiscordPointer:
    """What :func:`point_discord_at` changed; ``restore()`` (or leaving a ``with``) undoes it.

    ``api_base`` and ``gateway_url`` are the values set, ``previous_api_base``
    and ``previous_gateway`` (a ``yarl.URL``) the ones they replaced.
    """

    api_base: str
    gateway_url: str
    previous_api_base: str
    previous_gateway: Any

    def restore(self) -> None:
        """Put ``Route.BASE`` and ``DEFAULT_GATEWAY`` back to what they were."""
        import discord.gateway
        import discord.http

        discord.http.Route.BASE = self.previous_api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self.previous_gateway

    def __enter__(self) -> DiscordPointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def point_discord_at(target: DiscordStandIn | str | tuple[str, str]) -> DiscordPointer:
    """Point discord.py in this process at a stand-in, for every client created afterwards.

    ``target`` is a running :class:`DiscordStandIn`, its root URL
    (``"http://127.0.0.1:PORT"``) or an explicit ``(api_base, gateway_url)``
    pair. Sets ``discord.http.Route.BASE`` and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``. The change is
    process-wide; use the result as a context manager (or call its
    ``restore()``) to undo it.
    """
    import discord.gateway
    import discord.http
    import yarl

    if isinstance(target, DiscordStandIn):
        api_base, gateway_url = target.api_base, target.gateway_url
    elif isinstance(target, str):
        root = target.rstrip("/")
        api_base = f"{root}/api/v{API_VERSION}"
        gateway_url = re.sub(r"^http", "ws", root) + "/gateway"
    else:
        api_base, gateway_url = target
    pointer = DiscordPointer(
        api_base=api_base,
        gateway_url=gateway_url,
        previous_api_base=discord.http.Route.BASE,
        previous_gateway=discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    return pointer


def point_discord_at_env(environ: Mapping[str, str] | None = None) -> DiscordPointer | None:
    """Point discord.py at the stand-in named by the environment, if any.

    Reads :data:`ENV_API` (``RESTART_GUARD_DISCORD_API``) and
    :data:`ENV_GATEWAY` (``RESTART_GUARD_DISCORD_GATEWAY``), which
    :meth:`DiscordStandIn.env_vars` produces for a subprocess. Returns None and
    changes nothing when neither is set; raises ``ValueError`` when only one is.
    Call it in the bot process before the client starts.
    """
    env = os.environ if environ is None else environ
    api, gateway = env.get(ENV_API), env.get(ENV_GATEWAY)
    if api is None and gateway is None:
        return None
    if api is None or gateway is None:
        raise ValueError(f"set both {ENV_API} and {ENV_GATEWAY}, or neither")
    return point_discord_at((api, gateway))


@contextlib.asynccontextmanager
async def online(
    client: discord.Client, token: str = "test-token", timeout: float = 10.0
) -> AsyncIterator[None]:
    """Run ``client`` against the stand-in for the ``async with`` block.

    Logs in with ``token``, connects and waits (at most ``timeout`` seconds)
    until the client is ready; on leaving, closes it (which drains) and waits
    for ``connect()`` to return. Point discord.py at the stand-in first
    (:func:`point_discord_at`). Raises ``TimeoutError`` if the client never
    becomes ready, or the error ``connect()`` failed with.
    """
    await client.login(token)
    connect = asyncio.create_task(client.connect())
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {connect, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if connect.done():
                connect.result()
            raise TimeoutError("the client never became ready")
        yield
    finally:
        await client.close()
        await asyncio.wait_for(connect, timeout)
