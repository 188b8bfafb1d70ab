"""Start-up recovery: tell each interrupted conversation, then re-run or drop it.

For every claimed marker, in order: drop it if older than ``max_age``; give
up with one "could not resume" notice if its resumed turn was cut off
``max_attempts`` times already; otherwise post the notice in the original
chat and thread, count an attempt (durably, before anything re-runs), call
``on_resume``, replay the stored update, and let the marker go once all of
that — and any handler run it started — has finished.

Notices go out one at a time at the platform's rate, so thousands of
markers never burst into a 429 storm.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Protocol

from ._conversation import Conversation
from ._guard import Guard, Run
from ._marker import Marker
from ._settings import DEFAULT, NoticeOption
from .errors import ConversationGone, RateLimited, ThreadGone

__all__ = ["DEFAULT_GIVEUP_NOTICE", "DEFAULT_NOTICE", "PlatformLink", "Resumer"]

log = logging.getLogger("restart_guard")

DEFAULT_NOTICE = (
    "♻️ I was restarted while I was working on your last message, so I could not finish it. "
    "Please send it again."
)
DEFAULT_REPLAY_NOTICE = (
    "♻️ I was restarted while I was working on your last message. Picking it up again now."
)
DEFAULT_GIVEUP_NOTICE = (
    "⚠️ I could not finish your last message: it was interrupted by {attempts} restarts in a "
    "row, so I stopped retrying. Please send it again."
)

_BACKOFF_FIRST = 1.0
#: A Redis lease is 30 s: look again about that often.
RECLAIM_INTERVAL = 30.0
#: Overrides :data:`RECLAIM_INTERVAL` (seconds; 0 turns re-claiming off): for a store
#: with a shorter lease, and for tests that cannot wait 30 s.
ENV_RECLAIM_INTERVAL = "RESTART_GUARD_RECLAIM_INTERVAL"
_BACKOFF_MAX = 60.0


class PlatformLink(Protocol):
    """What the resume step needs from an adapter."""

    #: Notices per second the platform tolerates from one bot.
    notices_per_second: float

    async def send_notice(self, conversation: Conversation, text: str) -> None:
        """Post ``text`` in the conversation's chat and thread.

        Raise :class:`~restart_guard.errors.ConversationGone`,
        :class:`~restart_guard.errors.ThreadGone` or
        :class:`~restart_guard.errors.RateLimited` where the platform says
        so; any other exception counts as transient and is retried.
        """

    async def replay(self, marker: Marker) -> None:
        """Feed the stored updates of ``marker.payload`` to the bot again."""


class Resumer:
    """Runs the resume step for the markers claimed at start-up, in the background."""

    def __init__(self, guard: Guard, link: PlatformLink) -> None:
        self.guard = guard
        self.link = link
        self.settings = guard.settings
        self._task: asyncio.Task[None] | None = None
        self._pending: list[tuple[Marker, Run]] = []
        self._reclaimer: asyncio.Task[None] | None = None
        #: Seconds between background re-claims (0 turns them off).
        self.reclaim_interval = _reclaim_interval()
        self.delivered = 0
        self.dropped = 0  # given up included
        self.gave_up = 0

    def start(self, markers: Sequence[Marker]) -> asyncio.Task[None] | None:
        """Hold every marker and start resuming them; returns the task (None if nothing to do).

        Also starts a background re-claim every :attr:`reclaim_interval`
        seconds: markers of another instance that was still running at our
        start (a blue/green deploy, a replica that crashed later) are resumed
        once their owner is gone, not at our next restart.
        """
        loop = asyncio.get_running_loop()
        if self.reclaim_interval and self._reclaimer is None:
            self._reclaimer = loop.create_task(self._reclaim(), name="restart-guard-reclaim")
        return self._enqueue(markers)

    def _enqueue(self, markers: Sequence[Marker]) -> asyncio.Task[None] | None:
        self._pending.extend((m, self.guard.hold(m)) for m in sorted(markers, key=_by_age))
        if not self._pending:
            return None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="restart-guard-resume"
            )
        return self._task

    async def _reclaim(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.reclaim_interval)
            claimed = await loop.run_in_executor(None, self.guard.claim)
            if claimed:
                log.info(
                    "restart-guard: claimed %d interrupted conversation(s) that became "
                    "claimable after start-up (their owner stopped, or the store recovered)",
                    len(claimed),
                )
                self._enqueue(claimed)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for every notice to be handled; False if ``timeout`` passed first."""
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        return bool(done)

    async def cancel(self) -> None:
        """Stop resuming (shutdown); unfinished markers stay for the next start."""
        tasks = [t for t in (self._task, self._reclaimer) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        interval = 1.0 / max(self.link.notices_per_second, 0.001)
        try:
            while self._pending:
                marker, run = self._pending[0]
                started = time.monotonic()
                sent = await self._resume_one(marker, run)
                self._pending.pop(0)
                if sent:
                    await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
            log.info(
                "restart-guard: start-up recovery done: %d resumed, %d dropped (%d given up)",
                self.delivered,
                self.dropped,
                self.gave_up,
            )
        except asyncio.CancelledError:
            for _, run in self._pending:
                self.guard.end(run, completed=False)
            self._pending.clear()
            raise

    async def _resume_one(self, marker: Marker, run: Run) -> bool:
        """Returns True if a message was posted (for pacing)."""
        where = str(marker.conversation)
        age = marker.age()
        if age > self.settings.max_age:
            log.warning(
                "restart-guard: dropped %s: interrupted %.0fs ago, older than max_age=%.0fs",
                where,
                age,
                self.settings.max_age,
            )
            self._drop(run)
            return False
        if marker.attempts >= self.settings.max_attempts:
            text = self._text(self.settings.giveup_notice, DEFAULT_GIVEUP_NOTICE, marker)
            sent = text is not None and await self._deliver(marker.conversation, text)
            log.warning(
                "restart-guard: gave up on %s after %d interrupted resume attempt(s)%s",
                where,
                marker.attempts,
                "; told the user" if sent else "",
            )
            self._drop(run, "gave_up")
            return sent
        default = DEFAULT_REPLAY_NOTICE if self._will_replay(marker) else DEFAULT_NOTICE
        text = self._text(self.settings.notice, default, marker)
        if text is not None and not await self._deliver(marker.conversation, text):
            self._drop(run)
            return True
        if self.settings.on_resume is not None or self._will_replay(marker):
            attempts = self.guard.count_attempt(run)
            # Durable before the turn re-runs: if it kills us again, that counts.
            await self.guard.flush_async()
            if self.settings.on_resume is not None:
                try:
                    await self.settings.on_resume(marker)
                except Exception:
                    log.exception("restart-guard: on_resume failed for %s", where)
            if self._will_replay(marker):
                try:
                    await self.link.replay(marker)
                except Exception:
                    log.exception("restart-guard: replay failed for %s", where)
            log.info(
                "restart-guard: resumed %s (attempt %d/%d)",
                where,
                attempts,
                self.settings.max_attempts,
            )
        else:
            log.info("restart-guard: notified %s (interrupted %.0fs ago)", where, age)
        self.delivered += 1
        self._count("resumed")
        self.guard.end(run)
        return text is not None

    def _will_replay(self, marker: Marker) -> bool:
        return self.settings.replay and bool(marker.payload)

    def _drop(self, run: Run, reason: str = "dropped") -> None:
        self.dropped += 1
        if reason == "gave_up":
            self.gave_up += 1
        self._count(reason)
        self.guard.end(run)

    def _count(self, name: str) -> None:
        if self.guard.metrics is not None:
            self.guard.metrics.count(name)

    def _text(self, option: NoticeOption, default: str, marker: Marker) -> str | None:
        if option is DEFAULT:
            option = default
        if option is None:
            return None
        if isinstance(option, str):
            # Not str.format: a user's text may contain other braces.
            return option.replace("{attempts}", str(marker.attempts))
        try:
            return option(marker)
        except Exception:
            log.exception(
                "restart-guard: notice callable failed for %s; using the default",
                marker.conversation,
            )
            return default.replace("{attempts}", str(marker.attempts))

    async def _deliver(self, conversation: Conversation, text: str) -> bool:
        """Post until delivered (True) or the conversation is gone (False)."""
        backoff = _BACKOFF_FIRST
        while True:
            try:
                await self.link.send_notice(conversation, text)
                return True
            except ThreadGone as exc:
                if conversation.thread is None:
                    log.warning("restart-guard: dropped %s: %s", conversation, exc)
                    return False
                log.warning(
                    "restart-guard: thread of %s is gone (%s); posting in the main chat instead",
                    conversation,
                    exc,
                )
                conversation = conversation.without_thread()
            except ConversationGone as exc:
                log.warning("restart-guard: dropped %s: %s", conversation, exc)
                return False
            except RateLimited as exc:
                log.info(
                    "restart-guard: rate limited posting to %s; waiting %.1fs",
                    conversation,
                    exc.retry_after,
                )
                await asyncio.sleep(exc.retry_after)
            except Exception as exc:
                log.warning(
                    "restart-guard: could not post to %s (%s: %s); retrying in %.0fs, marker kept",
                    conversation,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)


def _reclaim_interval() -> float:
    raw = os.environ.get(ENV_RECLAIM_INTERVAL, "").strip()
    if not raw:
        return RECLAIM_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        log.warning(
            "restart-guard: ignoring $%s=%r (want seconds >= 0); re-claiming every %.0fs",
            ENV_RECLAIM_INTERVAL,
            raw,
            RECLAIM_INTERVAL,
        )
        return RECLAIM_INTERVAL
    return value


def _by_age(marker: Marker) -> float:
    return marker.started_at
