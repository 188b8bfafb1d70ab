"""The Telegram stand-in's confirmation state and its waits, blocking and ``async``.

A test waits for what the bot did — an update confirmed, a long poll
waiting, a message sent, a call made — either blocking (a test thread
beside the stand-in's own loop) or on an event loop (``..._async``: the
stand-in may run on that very loop, which a blocking wait would freeze).
Each wait is written once as a ``_Wait`` (what to check, for how long, what
to say at the deadline); the two ways to wait only differ in how they sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ._standin import SentMessage, StandIn
from ._telegram_wire import _DISCONNECT_CHECK, _Poll

__all__ = ["TelegramWaits"]

_T = TypeVar("_T")
_SentCheck = Callable[[SentMessage], bool] | None
_CallCheck = Callable[[dict[str, Any]], bool] | None


#: What a wait checks (under the lock; None: not yet), how long, what it says at the deadline.
_Wait = tuple[Callable[[], _T | None], float, Callable[[], str]]


class TelegramWaits(StandIn):
    """Confirmation state and waits of :class:`~restart_guard.testing.telegram.TelegramStandIn`."""

    # Provided by TelegramStandIn.
    _updates: list[dict[str, Any]]
    _confirmed_offset: int
    _polls: list[_Poll]

    # A poll's client can vanish without a state change to wake a waiter.
    _recheck_every = _DISCONNECT_CHECK * 2

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        # Async waiters live on other event loops; they are woken through their
        # own loop, never from the stand-in's thread directly.
        self._waiters_lock = threading.Lock()
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # -------------------------------------------------------- confirmation state
    @property
    def confirmed_offset(self) -> int:
        """The highest ``offset`` the bot confirmed: every update below it is gone for good."""
        return self._confirmed_offset  # one int, replaced whole: no lock needed to read it

    @property
    def pending_update_ids(self) -> list[int]:
        """Injected updates not yet confirmed (delivered or not), oldest first."""
        with self._lock:
            return [int(u["update_id"]) for u in self._updates]

    # ------------------------------------------------------------------- waits
    def wait_until_confirmed(self, update_id: int, timeout: float = 15.0) -> int:
        """Block until the bot confirmed ``update_id``; return :attr:`confirmed_offset`.

        The bot confirms with its next ``getUpdates`` (python-telegram-bot at
        the latest with the one ``Updater.stop()`` makes), a webhook with its
        2xx answer. Raises ``TimeoutError`` with the confirmation state.
        """
        return self._wait_until(*self._confirmation(update_id, timeout))

    async def wait_until_confirmed_async(self, update_id: int, timeout: float = 15.0) -> int:
        """:meth:`wait_until_confirmed` for code running on an event loop."""
        return await self._wait_async(*self._confirmation(update_id, timeout))

    def wait_for_poll(self, timeout: float = 15.0, *, since: float | None = None) -> int:
        """Block until a ``getUpdates`` long poll is waiting; return its confirmed offset.

        A waiting poll means the bot is up, has taken every update below the
        returned offset and is waiting for more. A poll whose client went away
        stops counting within about 0.1 s; to wait for a *restarted* bot
        without that race, pass ``since=time.monotonic()`` taken before the
        restart: only polls that began at or after it count. Raises
        ``TimeoutError``.
        """
        return self._wait_until(*self._poll(timeout, since))

    async def wait_for_poll_async(
        self, timeout: float = 15.0, *, since: float | None = None
    ) -> int:
        """:meth:`wait_for_poll` for code running on an event loop."""
        return await self._wait_async(*self._poll(timeout, since))

    async def wait_for_sent_async(
        self, predicate: _SentCheck = None, timeout: float = 15.0, count: int = 1
    ) -> list[SentMessage]:
        """:meth:`~restart_guard.testing._standin.StandIn.wait_for_sent` for event-loop code."""
        matching = functools.partial(self._sent_matching, predicate, count)
        describe = functools.partial(self._describe_sent_wait, timeout, count)
        return await self._wait_async(matching, timeout, describe)

    async def wait_for_call_async(
        self, method: str, predicate: _CallCheck = None, timeout: float = 15.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """:meth:`~restart_guard.testing._standin.StandIn.wait_for_call` for event-loop code."""
        matching = functools.partial(self._calls_matching, method, predicate, count)
        describe = functools.partial(self._describe_call_wait, method, timeout, count)
        return await self._wait_async(matching, timeout, describe)

    def clear(self) -> None:
        """Forget the record of sent messages and calls (failures and updates stay)."""
        super().clear()
        self._notify_async()

    # ---------------------------------------------------------------- internals
    def _confirmation(self, update_id: int, timeout: float) -> _Wait[int]:
        def check() -> int | None:
            return self._confirmed_offset if self._confirmed_offset > update_id else None

        def describe() -> str:
            asked = [p.get("offset") for m, p in self._calls if m.lower() == "getupdates"]
            return (
                f"waited {timeout}s for update {update_id} to be confirmed; confirmed offset: "
                f"{self._confirmed_offset}, pending: {[u['update_id'] for u in self._updates]}, "
                f"getUpdates offsets asked: {asked}"
            )

        return check, timeout, describe

    def _poll(self, timeout: float, since: float | None) -> _Wait[int]:
        def check() -> int | None:
            for poll in self._polls:
                if poll.alive() and (since is None or poll.started >= since):
                    return poll.offset
            return None

        def describe() -> str:
            calls = [m for m, _ in self._calls]
            return f"waited {timeout}s for a getUpdates long poll; calls so far: {calls!r}"

        return check, timeout, describe

    def _notify_async(self) -> None:
        with self._waiters_lock:
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def _record(self, message: SentMessage) -> None:
        super()._record(message)
        self._notify_async()

    def _record_call(self, method: str, params: dict[str, Any]) -> None:
        super()._record_call(method, params)
        self._notify_async()

    async def _wait_async(
        self, check: Callable[[], _T | None], timeout: float, describe: Callable[[], str]
    ) -> _T:
        """:meth:`_wait_until` on an event loop: woken by :meth:`_notify_async`."""
        loop = asyncio.get_running_loop()
        waiter = (loop, asyncio.Event())
        with self._waiters_lock:
            self._async_waiters.add(waiter)
        try:
            deadline = loop.time() + timeout
            while True:
                # Cleared before the check, so a change during the check re-wakes us.
                waiter[1].clear()
                with self._lock:
                    result = check()
                    if result is None and loop.time() >= deadline:
                        raise TimeoutError(describe())
                if result is not None:
                    return result
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        waiter[1].wait(), min(deadline - loop.time(), _DISCONNECT_CHECK * 2)
                    )
        finally:
            with self._waiters_lock:
                self._async_waiters.discard(waiter)
