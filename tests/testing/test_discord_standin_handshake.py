"""The Discord stand-in's gateway handshake: a held HELLO (a slow gateway), a client gone mid-way.

A plain websocket client stands in for discord.py here, so that the order of
the frames the stand-in sends can be seen; ``tests/discord_adapter/
test_handshake_stop_e2e.py`` drives a real bot through the same hold.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import struct
from typing import Any

import aiohttp
import pytest

from restart_guard.testing.discord import DiscordStandIn

DEADLINE = 10.0
HELLO, HEARTBEAT, HEARTBEAT_ACK = 10, 1, 11


async def next_op(ws: aiohttp.ClientWebSocketResponse) -> int:
    message: Any = await ws.receive_json(timeout=DEADLINE)
    return int(message["op"])


async def test_a_held_handshake_sends_hello_only_once_released() -> None:
    async with DiscordStandIn() as api, aiohttp.ClientSession() as session:
        api.hold_handshakes()
        held = await session.ws_connect(api.gateway_url)
        # Answered in order: were HELLO not held, it would come before this ACK.
        await held.send_str(json.dumps({"op": HEARTBEAT, "d": None}))
        assert await next_op(held) == HEARTBEAT_ACK
        api.release_handshakes()
        assert await next_op(held) == HELLO
        # Released: a new client gets HELLO first, as always.
        fresh = await session.ws_connect(api.gateway_url)
        assert await next_op(fresh) == HELLO
        await held.close()
        await fresh.close()


def upgrade_then_reset(host: str, port: int) -> None:
    """Ask for the gateway websocket and reset the connection before the answer (RST)."""
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /gateway?v=10&encoding=json HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )


async def test_a_client_gone_during_the_upgrade_is_dropped_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A bot stopping while it connects: Discord just drops the socket. The stand-in
    # wrote "Cannot write to closing transport" tracebacks (aiohttp's ERROR) here.
    async with DiscordStandIn() as api, aiohttp.ClientSession() as session:
        for _ in range(10):
            upgrade_then_reset(api.host, api.port)
        # The stand-in takes its connections in turn: this one is served after those.
        after = await session.ws_connect(api.gateway_url)
        assert await next_op(after) == HELLO
        await after.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
