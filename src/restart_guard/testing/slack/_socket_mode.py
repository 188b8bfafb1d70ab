"""The Slack stand-in's Socket Mode: hello, ``events_api`` envelopes, acks, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ._events import _EventBuilders, _MentionFields, _MessageFields, _Origin
from ._model import (
    _MAX_RETRIES,
    _Connection,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


class _SocketMode(_EventBuilders):
    """The websocket ``apps.connections.open`` hands out, and what goes over it."""

    # ------------------------------------------------------------------ record
    @property
    def connected_count(self) -> int:
        """Socket Mode connections open right now (counted once ``hello`` was sent)."""
        with self._lock:
            return len(self._connections)

    @property
    def total_connections(self) -> int:
        """Socket Mode connections ever opened, reconnections included."""
        with self._lock:
            return self._total_connections

    @property
    def acked_envelopes(self) -> list[str]:
        """Envelope ids the clients acknowledged, in the order the acks arrived."""
        with self._lock:
            return list(self._ack_order)

    @property
    def acks(self) -> dict[str, dict[str, Any]]:
        """Every ack as the client sent it (``envelope_id``, optional ``payload``), by id."""
        with self._lock:
            return dict(self._acks)

    @property
    def delivered_envelopes(self) -> list[str]:
        """Envelope ids written to a websocket, oldest first (acked or not)."""
        with self._lock:
            return list(self._delivered)

    def wait_for_connection(self, timeout: float = 15.0, count: int = 1) -> int:
        """Block until at least ``count`` Socket Mode connections are open; return how many.

        A connection counts once the stand-in has sent it ``hello``, so events
        injected afterwards reach it. Raises ``TimeoutError``.
        """
        self._not_on_loop("wait_for_connection")
        return self._wait_until(
            lambda: len(self._connections) if len(self._connections) >= count else None,
            timeout,
            lambda: (
                f"waited {timeout}s for {count} Socket Mode connection(s); "
                f"open: {len(self._connections)}, ever: {self._total_connections}"
            ),
        )

    def wait_for_ack(
        self, envelope: str | Mapping[str, Any], timeout: float = 15.0
    ) -> dict[str, Any]:
        """Block until the envelope is acknowledged; return the ack message.

        ``envelope`` is an envelope id (from :meth:`inject_event`) or an event
        dict returned by :meth:`inject_message` / :meth:`inject_app_mention`.
        Note that Bolt acks only events some listener matched. Raises ``TimeoutError``.
        """
        self._not_on_loop("wait_for_ack")
        envelope_id = envelope if isinstance(envelope, str) else self.envelope_id_of(envelope)
        return self._wait_until(
            lambda: self._acks.get(envelope_id),
            timeout,
            lambda: (
                f"waited {timeout}s for the ack of {envelope_id}; delivered: "
                f"{self._delivered!r}, acked: {self._ack_order!r}"
            ),
        )

    def envelope_id_of(self, event: Mapping[str, Any]) -> str:
        """The envelope id an injected event went out in (KeyError if never injected)."""
        key = self._event_key(event)
        with self._lock:
            if key is not None and key in self._envelope_by_event:
                return self._envelope_by_event[key]
        raise KeyError(f"no envelope was injected for event {dict(event)!r}")

    # ------------------------------------------------------ Socket Mode delivery
    def inject_event(
        self,
        event: Mapping[str, Any],
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        **origin: Unpack[_Origin],
    ) -> str:
        """Deliver ``event`` over Socket Mode in an ``events_api`` envelope; return its id.

        ``event`` is a bare event (wrapped with :meth:`event_callback`) or a
        whole ``event_callback`` body (``team`` and ``enterprise`` say whose,
        see :meth:`event_callback`). Thread-safe and non-blocking; delivery
        happens on the stand-in's loop. With several connections, envelopes go
        round-robin; with none, they wait for the next connection.

        Like Slack, an envelope still unacknowledged when its connection closes
        is delivered again (same ``envelope_id``, ``retry_attempt`` + 1,
        ``retry_reason`` ``"timeout"``, at most 3 retries) unless the stand-in
        was built with ``redeliver=False``. Unlike Slack, nothing is retried
        on a timer while the connection stays up: Bolt never acks an event no
        listener matched, and a retry every few seconds would only repeat it.
        ``retry_attempt``/``retry_reason`` and a reused ``envelope_id`` let a
        test send such a redelivery itself.
        """
        if event.get("type") == "event_callback":
            payload = dict(event)
        else:
            payload = self.event_callback(event, **origin)
        inner = payload.get("event") or {}
        self._remember_user_message(inner)
        envelope_id = envelope_id or str(uuid.uuid4())
        key = self._event_key(inner)
        with self._lock:  # known before the envelope can reach the bot and be acked
            if key is not None:
                self._envelope_by_event[key] = envelope_id
        return self._send_envelope("events_api", payload, envelope_id, retry_attempt, retry_reason)

    def _send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Queue a Socket Mode envelope of ``kind`` (``events_api``, ``interactive``)."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        self.call_in_loop(lambda: self._deliver(envelope))
        return envelope_id

    def inject_message(
        self, channel: str, text: str, **fields: Unpack[_MessageFields]
    ) -> dict[str, Any]:
        """A user posts ``text`` in ``channel``: deliver the ``message`` event; return it.

        See :meth:`message_event` for the other arguments (``user``,
        ``thread_ts``, ``ts``, ``channel_type``, ``team``). The returned event's
        ``ts`` is the new message's id (the thread root for a reply); pass the
        event to :meth:`wait_for_ack`.
        """
        event = self.message_event(channel, text, **fields)
        self.inject_event(event)
        return event

    def inject_app_mention(
        self, channel: str, text: str, **fields: Unpack[_MentionFields]
    ) -> dict[str, Any]:
        """A user mentions the bot: deliver an ``app_mention`` event; return it.

        See :meth:`app_mention_event` for the other arguments. Only the
        ``app_mention`` event is sent (Slack would also send a ``message``
        event to an app subscribed to channel messages).
        """
        event = self.app_mention_event(channel, text, **fields)
        self.inject_event(event)
        return event

    def disconnect_all(self, reason: str | None = "refresh_requested", grace: float = 0.0) -> int:
        """Drop every Socket Mode connection; return how many there were.

        With ``reason``, each client first gets Slack's ``{"type":
        "disconnect", "reason": reason}`` (slack_sdk clients then reconnect at
        once) and ``grace`` seconds to close the socket itself; then the
        stand-in closes it (1001, going away). ``connected_count`` drops to 0
        at once, so ``wait_for_connection()`` afterwards waits for the
        reconnection. Envelopes not yet written or acknowledged go to the next
        connection.

        Without ``reason`` (a bare close), slack_sdk's built-in client does not
        reconnect at once: its monitor does, within its ``ping_interval`` (10 s
        in Bolt's ``SocketModeHandler``). The aiohttp client reconnects at once
        either way, sometimes twice (it then closes the extra connection).
        """
        with self._changed:
            dropped = list(self._connections)
            self._connections.clear()
            self._changed.notify_all()

        def later() -> None:
            for conn in dropped:
                task = asyncio.ensure_future(self._drop(conn, reason, grace))
                # The loop keeps only weak references to tasks.
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        if dropped:
            self.call_in_loop(later)
        return len(dropped)

    async def _before_stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._connections.clear()
            self._changed.notify_all()
        live = list(self._live)
        # Concurrently: each close waits for the client's answer (bounded by the
        # websocket's timeout), and a stop should cost one such wait, not N.
        await asyncio.gather(
            *(self._drop(conn, None, 0.0) for conn in live), return_exceptions=True
        )

    async def _socket_mode(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            known, stopping = ticket in self._tickets, self._stopping
        if stopping:
            raise web.HTTPServiceUnavailable(text="the stand-in is stopping")
        if not known:
            raise web.HTTPUnauthorized(text="unknown ticket; call apps.connections.open")
        # compress=False: slack_sdk's built-in client cannot inflate permessage-deflate.
        # timeout bounds how long a server-side close waits for the client's answer.
        ws = web.WebSocketResponse(autoping=True, compress=False, timeout=2.0)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._live.add(conn)
        try:
            with self._lock:
                open_now = len(self._connections) + 1
                stopping = self._stopping
            if stopping:
                # _before_stop may already have looked at _live while prepare() ran.
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
                return ws
            await ws.send_str(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": open_now,
                        "debug_info": {
                            "host": "applink-standin",
                            "build_number": 1,
                            "approximate_connection_time": 18060,
                        },
                        "connection_info": {"app_id": self.app_id},
                    }
                )
            )
            with self._changed:
                if not self._stopping:
                    self._connections.append(conn)
                    self._total_connections += 1
                self._changed.notify_all()
            conn.writer = asyncio.ensure_future(self._write(conn))
            if self.ping_interval is not None:
                conn.pinger = asyncio.ensure_future(self._ping(conn, self.ping_interval))
            self._flush_pending()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_client_text(conn, msg.data)
        finally:
            if conn.pinger is not None:
                conn.pinger.cancel()
            self._live.discard(conn)
            with self._changed:
                if conn in self._connections:
                    self._connections.remove(conn)
                self._changed.notify_all()
            conn.gone.set()
            await self._retire(conn)
        return ws

    def _on_client_text(self, conn: _Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            with self._lock:
                if self._holding_acks:
                    return  # lost on the way (hold_acks): the envelope stays unacknowledged
            envelope_id = message["envelope_id"]
            # A client acks on its current session, which after a reconnection is
            # not always the one the envelope came in on.
            for other in (conn, *self._live):
                other.unacked.pop(envelope_id, None)
            with self._changed:
                if envelope_id not in self._acks:
                    self._ack_order.append(envelope_id)
                self._acks[envelope_id] = message
                self._changed.notify_all()

    def _deliver(self, envelope: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._connections)
        if not targets:
            self._pending.append(envelope)
            return
        conn = targets[self._next_connection % len(targets)]
        self._next_connection += 1
        conn.outbox.put_nowait(envelope)

    def _flush_pending(self) -> None:
        while self._pending:
            with self._lock:
                if not self._connections:
                    return
            self._deliver(self._pending.popleft())

    async def _write(self, conn: _Connection) -> None:
        while True:
            envelope = await conn.outbox.get()
            if envelope is None:
                return
            try:
                await conn.ws.send_str(json.dumps(envelope))
            except Exception:
                # The socket died under us: hand this envelope and the rest of the
                # queue to whichever connection comes next, like Slack's redelivery.
                self._pending.append(envelope)
                self._requeue_outbox(conn)
                return
            conn.unacked[envelope["envelope_id"]] = envelope
            with self._lock:
                self._delivered.append(envelope["envelope_id"])
            self._handed_out(envelope)

    async def _ping(self, conn: _Connection, interval: float) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(interval)
            try:
                await conn.ws.ping(b"standin-ping")
            except Exception:
                return

    def _requeue_outbox(self, conn: _Connection) -> None:
        while not conn.outbox.empty():
            item = conn.outbox.get_nowait()
            if item is not None:
                self._pending.append(item)

    async def _retire(self, conn: _Connection) -> None:
        if conn.writer is not None and not conn.writer.done():
            conn.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.writer
        self._requeue_outbox(conn)
        if self.redeliver:
            with self._lock:
                acked = set(self._acks)
            retries = [
                {
                    **envelope,
                    "retry_attempt": envelope["retry_attempt"] + 1,
                    "retry_reason": "timeout",
                }
                for envelope_id, envelope in conn.unacked.items()
                if envelope_id not in acked and envelope["retry_attempt"] < _MAX_RETRIES
            ]
            # They went out before anything still pending, so they go first again.
            self._pending.extendleft(reversed(retries))
        conn.unacked.clear()
        self._flush_pending()

    async def _drop(self, conn: _Connection, reason: str | None, grace: float) -> None:
        ws = conn.ws
        if ws.closed:
            return
        if reason is not None:
            with contextlib.suppress(Exception):
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "disconnect",
                            "reason": reason,
                            "debug_info": {"host": "applink-standin"},
                        }
                    )
                )
            if grace > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.gone.wait(), grace)
        with contextlib.suppress(Exception):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"going away")
