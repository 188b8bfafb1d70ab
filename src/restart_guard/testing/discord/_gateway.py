"""The Discord stand-in's gateway: HELLO, heartbeats, IDENTIFY, RESUME, dispatch."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from ._model import (
    _APPLICATION_FLAGS,
    _DIRECT_MESSAGES,
    _GUILD_MESSAGES,
    _GUILD_PRESENCES,
    _MESSAGE_CONTENT,
    _RESUME_WINDOW,
    API_VERSION,
    GATEWAY_IDENTIFY,
    GATEWAY_RESUME,
    _Connection,
    _Session,
)
from ._world import _World


class _Gateway(_World):
    """The gateway websocket: sessions, IDENTIFY/RESUME, and events broadcast to clients."""

    # Whether HELLO waits for release_handshakes() (guarded by self._changed), and
    # the connections waiting for it (loop-thread only; made in start()).
    _holding_hello = False
    _held_hellos: list[_Connection]

    # ---------------------------------------------------------------- observing
    @property
    def connected(self) -> bool:
        """True while at least one client holds an identified (or resumed) gateway connection."""
        with self._lock:
            return self._live > 0

    @property
    def identifies(self) -> list[dict[str, Any]]:
        """Every IDENTIFY received (token removed, ``session_id`` added), oldest first."""
        with self._lock:
            return list(self._identifies)

    def wait_for_identify(self, timeout: float = 15.0, count: int = 1) -> dict[str, Any]:
        """Block until the ``count``-th IDENTIFY has been answered; return it.

        By then READY and the GUILD_CREATEs are queued ahead of anything injected
        afterwards, so discord.py resolves injected events from its guild cache.
        Do not call it on the event loop the bot runs on (use ``asyncio.to_thread``).
        """
        return self._wait_until(
            lambda: self._identifies[count - 1] if len(self._identifies) >= count else None,
            timeout,
            lambda: f"waited {timeout}s for IDENTIFY #{count}; got {len(self._identifies)}",
        )

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT to every connected client; discord.py then RESUMEs."""
        self._in_loop(self._send_to_live, {"op": 7, "d": None})

    def disconnect_clients(self, code: int = 4000) -> None:
        """Close every gateway connection with ``code`` (4000: the client resumes)."""

        def close_all() -> None:
            for conn in list(self._conns):
                self._spawn(conn.close(code))

        self._in_loop(close_all)

    def hold_handshakes(self) -> None:
        """From now on HELLO does not come, until :meth:`release_handshakes`: a slow gateway.

        A client's websocket opens (``GATEWAY CONNECT`` is recorded: wait for it
        with ``wait_for_call``) and it then waits for HELLO, so it is inside its
        handshake — discord.py's ``DiscordWebSocket.from_client``, before IDENTIFY
        or RESUME — for as long as the hold lasts (discord.py gives up after its
        heartbeat timeout, 60 s by default, and reconnects).
        """
        with self._changed:
            self._holding_hello = True

    def release_handshakes(self) -> None:
        """HELLO goes out to every client :meth:`hold_handshakes` held, and at once to new ones."""
        with self._changed:
            self._holding_hello = False
        self._in_loop(self._send_held_hellos)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one); a stopped one may restart."""
        self._stopping = False
        self._held_hellos = []
        await super().start()

    async def _before_stop(self) -> None:
        # discord.py reconnects at once when we close its socket; refuse it, or
        # the server's shutdown would wait for that new connection.
        self._stopping = True
        conns = list(self._conns)
        self._held_hellos.clear()
        for conn in conns:
            conn.queue.put_nowait(None)
        await asyncio.gather(*(c.close(1001) for c in conns), return_exceptions=True)
        for conn in conns:
            if conn.writer is not None:
                conn.writer.cancel()
        self._sessions.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        # Before start() there is nobody to tell: configuration changes simply
        # show up in READY/GUILD_CREATE later.
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(fn, *args)

    # --------------------------------------------------------------- broadcast
    def _in_shard(self, session: _Session, guild_id: int | None) -> bool:
        if guild_id is None:
            return session.shard[0] == 0
        shard_id, count = session.shard
        return (guild_id >> 22) % max(count, 1) == shard_id

    def _dispatch(self, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        message = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append((session.seq, message))
        if session.conn is not None:
            session.conn.send(message)
            self._handed_out(message)

    def _broadcast(
        self,
        event: str,
        data: dict[str, Any],
        guild_id: int | None,
        transform: Callable[[_Session, dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if session.conn is None and now - session.detached_at > _RESUME_WINDOW:
                del self._sessions[sid]
                continue
            if not self._in_shard(session, guild_id):
                continue
            out = data if transform is None else transform(session, data)
            if out is not None:
                self._dispatch(session, event, out)

    def _broadcast_message(self, payload: dict[str, Any]) -> None:
        gid = int(payload["guild_id"]) if "guild_id" in payload else None
        self._broadcast("MESSAGE_CREATE", payload, gid, self._visible_message)

    def _broadcast_interaction(self, payload: dict[str, Any]) -> None:
        gid = int(payload["guild_id"]) if "guild_id" in payload else None
        self._broadcast("INTERACTION_CREATE", payload, gid)

    def _visible_message(self, session: _Session, message: dict[str, Any]) -> dict[str, Any] | None:
        if not self.enforce_intents:
            return message
        in_guild = "guild_id" in message
        if not session.intents & (_GUILD_MESSAGES if in_guild else _DIRECT_MESSAGES):
            return None
        own = message["author"]["id"] == str(self.bot_user_id)
        mentioned = any(m["id"] == str(self.bot_user_id) for m in message.get("mentions", []))
        if in_guild and not own and not mentioned and not session.intents & _MESSAGE_CONTENT:
            return {**message, "content": "", "embeds": [], "attachments": [], "components": []}
        return message

    def _guild_create_for(self, session: _Session, guild: dict[str, Any]) -> dict[str, Any]:
        # Like Discord: GUILD_CREATE lists every member only to a client with the
        # presences intent (small guilds); others get the bot itself and must
        # request the rest (op 8), which discord.py does with the members intent.
        if session.intents & _GUILD_PRESENCES:
            return guild
        me = str(self.bot_user_id)
        return {**guild, "members": [m for m in guild["members"] if m["user"]["id"] == me]}

    def _send_to_live(self, payload: dict[str, Any]) -> None:
        for conn in list(self._conns):
            if conn.session is not None:
                conn.send(payload)

    # ----------------------------------------------------------------- gateway
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            raise web.HTTPServiceUnavailable()
        # A short close timeout: stop() must not wait 10 s for a peer that is gone.
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        try:
            await ws.prepare(request)
        except ConnectionResetError:
            # The client went away during the upgrade (a bot stopping while it
            # connects): Discord just drops the connection, nothing to report.
            # (aiohttp's last write of this stand-in response fails quietly.)
            return web.Response()
        self._record_call("GATEWAY CONNECT", dict(request.query))
        conn = _Connection(ws, zlib_stream=request.query.get("compress") == "zlib-stream")
        self._conns.add(conn)
        conn.writer = asyncio.ensure_future(conn.write_forever())
        with self._changed:
            held = self._holding_hello
        if held:
            self._held_hellos.append(conn)  # release_handshakes() sends it
        else:
            conn.send(self._hello())
        # The code of the client's close frame; None when the socket just died
        # or we closed it (aiohttp reports 1000 for both).
        client_code: int | None = None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.CLOSE:
                    client_code = int(msg.data)
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                await self._on_gateway_payload(conn, payload)
        finally:
            self._conns.discard(conn)
            if conn in self._held_hellos:
                self._held_hellos.remove(conn)
            conn.queue.put_nowait(None)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.detached_at = time.monotonic()
                # A clean close (client.close()) ends the session, as on Discord.
                if client_code == 1000 and not conn.closed_by_server:
                    self._sessions.pop(session.id, None)
                with self._changed:
                    self._live -= 1
                    self._changed.notify_all()
        return ws

    def _hello(self) -> dict[str, Any]:
        return {"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}}

    def _send_held_hellos(self) -> None:
        held, self._held_hellos = self._held_hellos, []
        for conn in held:
            if conn in self._conns:  # still connected
                conn.send(self._hello())

    async def _on_gateway_payload(self, conn: _Connection, payload: Mapping[str, Any]) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            conn.send({"op": 11})
        elif op == 2:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif op == 8:
            self._record_call("GATEWAY REQUEST_GUILD_MEMBERS", dict(data or {}))
            if conn.session is not None:
                self._member_chunks(conn.session, data if isinstance(data, dict) else {})
        else:
            names = {3: "PRESENCE_UPDATE", 4: "VOICE_STATE_UPDATE"}
            name = names.get(op, f"OP_{op}") if isinstance(op, int) else "OP_?"
            self._record_call(f"GATEWAY {name}", {"d": data})

    def _token_ok(self, token: Any) -> bool:
        return self.token is None or token == self.token

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        session = _Session(
            id=secrets.token_hex(16),
            intents=int(data.get("intents", 0)),
            shard=(int(shard[0]), int(shard[1])),
            conn=conn,
        )
        self._sessions[session.id] = session
        conn.session = session
        with self._state:
            guilds = [g for g in self._guilds.values() if self._in_shard(session, g.id)]
            creates = [self._guild_payload(g) for g in guilds]
            me = {**self._user(self.bot_user_id), "verified": True, "mfa_enabled": False}
        self._dispatch(
            session,
            "READY",
            {
                "v": API_VERSION,
                "user": me,
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": list(session.shard),
                "application": {"id": str(self.application_id), "flags": _APPLICATION_FLAGS},
                "private_channels": [],
                "relationships": [],
                "user_settings": {},
                "geo_ordered_rtc_regions": [],
            },
        )
        for create in creates:
            self._dispatch(session, "GUILD_CREATE", self._guild_create_for(session, create))
        record = {k: v for k, v in data.items() if k != "token"}
        record["session_id"] = session.id
        self._record_call(GATEWAY_IDENTIFY, record)
        with self._changed:
            self._identifies.append(record)
            self._live += 1
            self._changed.notify_all()

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        self._record_call(GATEWAY_RESUME, {k: v for k, v in data.items() if k != "token"})
        if not self._token_ok(data.get("token")):
            await conn.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            conn.send({"op": 9, "d": False})
            return
        old = session.conn
        if old is not None:
            # The client gave up on the old socket; it must not keep the session.
            old.session = None
            self._spawn(old.close(4000))
        else:
            with self._changed:
                self._live += 1
                self._changed.notify_all()
        session.conn = conn
        conn.session = session
        seen = data.get("seq")
        for seq, message in list(session.buffer):
            if seen is None or seq > int(seen):
                conn.send(message)
        self._dispatch(session, "RESUMED", {})

    def _member_chunks(self, session: _Session, data: Mapping[str, Any]) -> None:
        raw_ids = data.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        query = str(data.get("query") or "")
        limit = int(data.get("limit") or 0)
        wanted = data.get("user_ids")
        if wanted is not None and not isinstance(wanted, list):
            wanted = [wanted]
        with self._state:
            for raw in guild_ids:
                guild = self._guilds.get(int(raw)) if raw is not None else None
                if guild is None:
                    continue
                members = []
                for uid in guild.members:
                    name = str(self._users.get(uid, {}).get("username", ""))
                    if wanted is not None and str(uid) not in {str(w) for w in wanted}:
                        continue
                    if query and not name.lower().startswith(query.lower()):
                        continue
                    members.append(self._member(guild, uid))
                if limit:
                    members = members[:limit]
                chunk: dict[str, Any] = {
                    "guild_id": str(guild.id),
                    "members": members,
                    "chunk_index": 0,
                    "chunk_count": 1,
                }
                if data.get("nonce") is not None:
                    chunk["nonce"] = data["nonce"]
                if data.get("presences"):
                    chunk["presences"] = []
                if wanted is not None:
                    found = {m["user"]["id"] for m in members}
                    chunk["not_found"] = [w for w in wanted if str(w) not in found]
                self._dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)
