"""What every loopback stand-in shares: an aiohttp server on 127.0.0.1, a record
of what the bot sent, injectable failures, and a way to run it in a thread.

A stand-in replaces only the remote platform. The bot under test is a real
framework client pointed at ``http://127.0.0.1:<port>``; nothing in the bot is
mocked. All public methods are thread-safe so a synchronous test (or one that
drives a bot in a subprocess) can use a stand-in that runs in a background
thread with ``StandIn.running()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

__all__ = ["Failure", "KillOnHandOut", "SentMessage", "StandIn"]

_S = TypeVar("_S", bound="StandIn")
_T = TypeVar("_T")


@dataclass(frozen=True)
class SentMessage:
    """One message the bot posted to the platform.

    ``chat`` is the chat/channel id as a string, ``thread`` the forum topic,
    thread channel or thread_ts (None for the main thread), ``params`` the
    request as the stand-in decoded it. ``reply_to`` is the message it
    answers (Telegram ``reply_parameters``, Discord ``message_reference``,
    Slack's ``thread_ts``) and ``mentions`` the ids of the users the
    platform notifies: mentioned, or (Telegram, Discord) the author of the
    message it replies to. ``id`` is the platform's id of the new message
    (Telegram message_id, Discord snowflake, Slack ts) where the stand-in
    gives one.
    """

    chat: str
    thread: str | None
    text: str
    params: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    reply_to: str | None = None
    mentions: tuple[str, ...] = ()
    id: str | None = None


@dataclass
class Failure:
    """An injected failure: the next ``times`` matching calls get this answer instead.

    ``method`` names the API call (for example ``"sendMessage"`` or
    ``"chat.postMessage"``); ``chat`` limits it to one chat or channel
    (None: any). ``status`` is the HTTP status, ``body`` the JSON body, and
    ``headers`` any extra response headers (``Retry-After`` ...).
    """

    method: str
    status: int
    body: dict[str, Any]
    chat: str | None = None
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class KillOnHandOut:
    """An armed fault: SIGKILL ``pid`` ``delay`` seconds after the platform hands out an event.

    ``matches(event)`` picks the event (a Telegram update, a Slack envelope,
    a Discord dispatch, as the platform sends it). Once fired,
    ``killed_after`` is the measured seconds from the hand-out to the kill.
    """

    pid: int
    delay: float
    matches: Callable[[dict[str, Any]], bool]
    handed_out_at: float | None = None
    killed_after: float | None = None
    fired: threading.Event = field(default_factory=threading.Event)


class StandIn:
    """Base class: lifecycle, message record and failure injection.

    Subclasses add their routes in :meth:`_routes` and call :meth:`_record`
    for every message the bot posts and :meth:`_take_failure` before
    answering a call that can fail.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sent: list[SentMessage] = []
        self._failures: list[Failure] = []
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kill: KillOnHandOut | None = None

    # ----------------------------------------------------------------- lifecycle
    def _routes(self, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def start(self) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one)."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        await self._before_stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _before_stop(self) -> None:
        """Hook for subclasses: wake long polls, close websockets."""

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def running(cls: type[_S], *args: Any, **kwargs: Any) -> Iterator[_S]:
        """Run a stand-in on its own event loop in a daemon thread.

        ``with TelegramStandIn.running() as api: ...`` — for synchronous tests
        and for tests that drive a bot in a subprocess.
        """
        standin = cls(*args, **kwargs)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        error: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(standin.start())
            except BaseException as exc:
                error.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name=f"{cls.__name__}-loop", daemon=True)
        thread.start()
        started.wait(30)
        if error:
            raise error[0]
        try:
            yield standin
        finally:
            fut = asyncio.run_coroutine_threadsafe(standin.stop(), loop)
            with contextlib.suppress(Exception):
                fut.result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def call_in_loop(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the stand-in's event loop (thread-safe)."""
        if self._loop is None:
            raise RuntimeError("the stand-in is not started")
        self._loop.call_soon_threadsafe(fn)

    # -------------------------------------------------------------------- record
    @property
    def url(self) -> str:
        """``http://host:port`` of the running stand-in."""
        return f"http://{self.host}:{self.port}"

    @property
    def sent(self) -> list[SentMessage]:
        """A copy of every message the bot posted, oldest first."""
        with self._lock:
            return list(self._sent)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every API call received, as ``(method, params)``, oldest first."""
        with self._lock:
            return list(self._calls)

    def sent_to(self, chat: str | int, thread: str | int | None = None) -> list[SentMessage]:
        """Messages posted in one chat (and, when given, one thread/topic)."""
        chat_s = str(chat)
        thread_s = None if thread is None else str(thread)
        return [
            m for m in self.sent if m.chat == chat_s and (thread is None or m.thread == thread_s)
        ]

    def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 15.0,
        count: int = 1,
    ) -> list[SentMessage]:
        """Block until ``count`` posted messages match ``predicate``; return them.

        Raises ``TimeoutError`` with what *was* sent, so a failing test says why.
        """
        return self._wait_until(
            lambda: self._sent_matching(predicate, count),
            timeout,
            lambda: self._describe_sent_wait(timeout, count),
        )

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 15.0,
        count: int = 1,
    ) -> list[dict[str, Any]]:
        """Block until ``count`` calls of ``method`` match ``predicate``; return their params."""
        return self._wait_until(
            lambda: self._calls_matching(method, predicate, count),
            timeout,
            lambda: self._describe_call_wait(method, timeout, count),
        )

    def fail(self, failure: Failure) -> None:
        """Queue an injected failure (see :class:`Failure`)."""
        with self._lock:
            self._failures.append(failure)

    def clear(self) -> None:
        """Forget the record of sent messages and calls (failures stay queued)."""
        with self._changed:
            self._sent.clear()
            self._calls.clear()
            self._changed.notify_all()

    def kill_on_hand_out(
        self, pid: int, delay: float, matches: Callable[[dict[str, Any]], bool]
    ) -> KillOnHandOut:
        """SIGKILL ``pid`` ``delay`` seconds after the matching event is handed to the bot.

        The timer runs on the stand-in's loop, started as the event is
        written out (a thread would wait for the GIL): the kill-timing fault
        of the acknowledgement tests and ``bench/bench_kill_sweep.py``.
        """
        armed = KillOnHandOut(pid, delay, matches)
        with self._lock:
            self._kill = armed
        return armed

    # --------------------------------------------------------- for subclasses
    # How often a blocked wait re-checks without being notified (None: only when notified).
    _recheck_every: float | None = None

    def _wait_until(
        self, check: Callable[[], _T | None], timeout: float, describe: Callable[[], str]
    ) -> _T:
        """Block until ``check()`` (run under the lock) is not None; return it.

        Every ``wait_for_*`` of the stand-ins is this loop: re-check on each
        state change, raise ``TimeoutError(describe())`` at the deadline.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = check()
                if result is not None:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(describe())
                every = self._recheck_every
                self._changed.wait(left if every is None else min(left, every))

    def _sent_matching(
        self, predicate: Callable[[SentMessage], bool] | None, count: int
    ) -> list[SentMessage] | None:
        hits = [m for m in self._sent if predicate is None or predicate(m)]
        return hits if len(hits) >= count else None

    def _calls_matching(
        self, method: str, predicate: Callable[[dict[str, Any]], bool] | None, count: int
    ) -> list[dict[str, Any]] | None:
        hits = [p for m, p in self._calls if m == method and (predicate is None or predicate(p))]
        return hits if len(hits) >= count else None

    def _describe_sent_wait(self, timeout: float, count: int) -> str:
        return f"waited {timeout}s for {count} matching message(s); sent so far: {self._sent!r}"

    def _describe_call_wait(self, method: str, timeout: float, count: int) -> str:
        return (
            f"waited {timeout}s for {count} call(s) of {method}; calls so far: "
            f"{[m for m, _ in self._calls]!r}"
        )

    def _handed_out(self, event: dict[str, Any]) -> None:
        """Subclasses call this on their loop when ``event`` goes out to the bot."""
        armed = self._kill
        if armed is None or not armed.matches(event):
            return
        with self._lock:
            self._kill = None
        armed.handed_out_at = time.perf_counter()

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(armed.pid, signal.SIGKILL)
            assert armed.handed_out_at is not None
            armed.killed_after = time.perf_counter() - armed.handed_out_at
            armed.fired.set()

        asyncio.get_running_loop().call_later(armed.delay, kill)

    def _record_call(self, method: str, params: dict[str, Any]) -> None:
        with self._changed:
            self._calls.append((method, params))
            self._changed.notify_all()

    def _record(self, message: SentMessage) -> None:
        with self._changed:
            self._sent.append(message)
            self._changed.notify_all()

    def _take_failure(self, method: str, chat: str | None) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and failure.chat in (None, chat):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None
