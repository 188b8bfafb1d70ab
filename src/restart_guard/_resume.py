"""Start-up recovery: tell each interrupted conversation, then re-run or drop it.

For every claimed marker, oldest first: drop it if older than ``max_age``;
give up with one "could not resume" notice if its resumed turn was cut off
``max_attempts`` times already; otherwise post the notice in the original
chat and thread, count an attempt (durably, before anything re-runs), call
``on_resume``, replay the stored update, and let the marker go once all of
that — and any handler run it started — has finished.

One notice, even when killed mid-recovery: as soon as the platform confirms
a notice, its outcome is made durable in one flush *before the next notice
is sent* — the marker is removed, or, when a resumed turn still follows,
rewritten with ``noticed`` so that no later start posts that notice again.
Only a kill between the platform accepting a notice and that flush
finishing repeats it. A stop during start-up (:meth:`Resumer.cancel`)
starts no new send but lets the one in flight finish and be recorded, for
up to :data:`SEND_GRACE` seconds.

One bad conversation never holds up the others: notices go out one at a
time at the platform's rate (thousands of markers never burst into a 429
storm), always the conversation whose turn is due first. A conversation the
platform refused for now waits out its own backoff (or the platform's
``retry_after``) in the queue while the others go ahead.

What each platform error means is decided by the adapter's link, as one of
the :mod:`restart_guard.errors` types: drop the marker
(:class:`~restart_guard.errors.ConversationGone`), follow the conversation
(:class:`~restart_guard.errors.ThreadGone` → the main chat,
:class:`~restart_guard.errors.ConversationMoved` → the new chat), or retry
that conversation later (:class:`~restart_guard.errors.RateLimited`, and
any other exception: transient).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._ask import (
    ASK_NOTICE,
    CLOSED_ANSWER,
    CONTINUED_NOTICE,
    DISMISSED_NOTICE,
    EXPIRED_NOTICE,
    NOT_YOURS_ANSWER,
    RESTARTING_ANSWER,
    Choice,
    Press,
    askers_of,
    question_token,
)
from ._conversation import Conversation
from ._env import seconds_from_env
from ._guard import Guard, Run
from ._marker import Marker
from ._notice import Notice
from ._platform_link import PlatformLink
from ._policy import ReplayChoice, replay_choice
from ._redelivery import REDELIVERY_WAIT, PendingDeliveries, Redeliveries
from ._settings import DEFAULT, NoticeOption
from .errors import ConversationGone, ConversationMoved, RateLimited, ThreadGone

__all__ = [
    "DEFAULT_GIVEUP_NOTICE",
    "DEFAULT_NOTICE",
    "SEND_GRACE",
    "Resumer",
    "notice_nonce",
]

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
#: Seconds :meth:`Resumer.cancel` lets a notice in flight finish (and be recorded)
#: before it gives up on it; under the Slack adapter's 5 s bound on the stop.
SEND_GRACE = 3.0
# A chat that keeps moving (A → B → A ...) is a platform bug: give up after this many.
_MAX_MOVES = 3
# Bound on looking at the platform's pending deliveries before the first notice.
_PEEK_TIMEOUT = 5.0


@dataclass(order=True)
class _Job:
    """One claimed conversation waiting for its notice: ordered by when it is due."""

    due: float
    order: int  # ties: the older marker first
    marker: Marker = field(compare=False)
    run: Run = field(compare=False)
    conversation: Conversation = field(compare=False)
    text: str | None = field(compare=False, default=None)
    giving_up: bool = field(compare=False, default=False)
    replay: bool = field(compare=False, default=False)  # decided once, at the first look
    backoff: float = field(compare=False, default=0.0)  # the last wait after a failure
    moves: int = field(compare=False, default=0)
    # Waiting (until ``due``) for the platform's pending copy of the turn: no notice yet.
    awaiting: bool = field(compare=False, default=False)
    asking: bool = field(compare=False, default=False)  # the notice is a question
    expiring: bool = field(compare=False, default=False)  # its question passed max_age
    question: str | None = field(compare=False, default=None)  # the question's message id


class Resumer:
    """Runs the resume step for the markers claimed at start-up, in the background."""

    def __init__(self, guard: Guard, link: PlatformLink) -> None:
        self.guard = guard
        self.link = link
        self.settings = guard.settings
        self._queue: list[_Job] = []  # a heap: the job due first on top
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._followups: set[asyncio.Task[None]] = set()  # on_resume and replay, per marker
        # replay="ask": open questions by their button token, and their expiry timers.
        self._questions: dict[str, _Job] = {}
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._current: _Job | None = None  # the job being sent (popped from the queue)
        self._next_send = 0.0  # loop time before which no notice may go out (pacing)
        self._reclaimer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Delivery ids of the claimed markers (see :mod:`restart_guard._redelivery`).
        self.redeliveries = Redeliveries()
        self._peeked = False  # the platform's pending deliveries were looked at
        # Set once only jobs waiting for a platform redelivery are left (or all done).
        self._startup_done = asyncio.Event()
        #: Seconds between background re-claims (0 turns them off).
        self.reclaim_interval = _reclaim_interval()
        self.delivered = 0
        self.dropped = 0  # given up included
        self.gave_up = 0
        self.redelivered_turns = 0  # settled by the platform's copy: no notice

    def start(self, markers: Sequence[Marker]) -> asyncio.Task[None] | None:
        """Hold every marker and start resuming them; returns the task (None if nothing to do).

        Also starts a background re-claim every :attr:`reclaim_interval`
        seconds: markers of another instance that was still running at our
        start (a blue/green deploy, a replica that crashed later) are resumed
        once their owner is gone, not at our next restart.
        """
        loop = self._loop = asyncio.get_running_loop()
        if self.reclaim_interval and self._reclaimer is None:
            self._reclaimer = loop.create_task(self._reclaim(), name="restart-guard-reclaim")
        return self._enqueue(markers)

    def _enqueue(self, markers: Sequence[Marker]) -> asyncio.Task[None] | None:
        if self._stopping:
            return None
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.redeliveries.add(markers)
        for m in sorted(markers, key=_by_age):
            job = _Job(now, next(self._order), m, self.guard.hold(m), m.conversation)
            if m.question is not None and m.age() <= self.settings.max_age:
                self._open_question(job, m.question)  # asked before a restart: still open
                continue
            heapq.heappush(self._queue, job)
        if not (self._queue or self._followups):
            self._startup_done.set()
            return None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="restart-guard-resume")
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

    async def startup(self) -> None:
        """Until start-up recovery is over but for turns the platform is about to redeliver.

        What a bot waits for before it takes events: the notices are out and
        the replays ran; a job waiting for the platform's pending copy of its
        turn (:data:`REDELIVERY_WAIT`) would wait for events the bot takes
        only afterwards.
        """
        await self._startup_done.wait()

    def redelivered(self, delivery: str) -> bool:
        """The platform delivers ``delivery`` (again); True: skip it. Thread-safe.

        See :mod:`restart_guard._redelivery` for which copy wins and why. A
        delivery of no claimed marker is False at once (a dictionary lookup).
        """
        key = self.redeliveries.owner(delivery)
        if key is None:
            return False
        if self.settings.replay:
            # The replay carries the attempt count and the crash-loop guard; the
            # platform's copy would re-run the turn beside it, or forever.
            log.info(
                "restart-guard: delivery %s is a turn restart-guard resumes itself "
                "(replay is on); the platform's copy is skipped",
                delivery,
            )
            return True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # The loop may close meanwhile: the stop then keeps the marker.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, key, delivery)
        return False

    def _settle(self, key: str, delivery: str) -> None:
        """The platform's copy of a claimed turn runs again: its notice is not needed.

        Runs on the resume step's loop, just after the adapter began the copy's
        handler run — which joined the held marker, so the marker stays until
        that run ends (a kill meanwhile leaves it for the next start).
        """
        for i, job in enumerate(self._queue):
            if job.marker.key == key:
                self._queue.pop(i)
                heapq.heapify(self._queue)
                break
        else:
            if self._current is None or self._current.marker.key != key:
                log.info(
                    "restart-guard: delivery %s runs again; its conversation was "
                    "already told at start-up",
                    delivery,
                )
            return  # sent or being sent: a message cannot be unsent
        self.redelivered_turns += 1
        log.info(
            "restart-guard: %s: the platform delivered the interrupted turn again "
            "(delivery %s); it runs again, no notice needed",
            job.conversation,
            delivery,
        )
        self.guard.end(job.run)
        self._wake.set()

    async def _expect_redeliveries(self) -> None:
        """Replay off: markers whose every turn the platform still holds wait for it, unnoticed."""
        self._peeked = True
        if self.settings.replay or not self.redeliveries.active:
            return
        link = self.link
        if not isinstance(link, PendingDeliveries):
            return
        try:
            pending = await asyncio.wait_for(link.pending_deliveries(), _PEEK_TIMEOUT)
        except Exception as exc:
            log.warning(
                "restart-guard: could not look at the platform's pending deliveries "
                "(%s: %s); every interrupted conversation gets its notice",
                type(exc).__name__,
                exc,
            )
            return
        if not pending:
            return
        due = asyncio.get_running_loop().time() + REDELIVERY_WAIT
        waiting = 0
        for job in self._queue:
            if Redeliveries.all_pending(job.marker, pending):
                job.awaiting = True
                job.due = due
                waiting += 1
        if waiting:
            heapq.heapify(self._queue)
            log.info(
                "restart-guard: %d interrupted conversation(s) will be delivered again by "
                "the platform; they run again without a notice",
                waiting,
            )

    async def wait(self, timeout: float | None) -> bool:
        """Wait for every notice to be handled; False if ``timeout`` passed first."""
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        return bool(done)

    async def cancel(self, grace: float = SEND_GRACE) -> None:
        """Stop resuming (shutdown); unfinished markers stay for the next start.

        No new notice is sent. A notice already in flight is let finish and
        its outcome recorded durably — cancelling it would keep the marker
        although the message may have gone out, and the next start would
        post it again — for up to ``grace`` seconds, then cut off.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=grace)
        tasks = [
            t
            for t in (self._task, self._reclaimer, *self._followups)
            if t is not None and not t.done()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._release_queue()
        self._release_questions()

    def _release_queue(self) -> None:
        """Unfinished jobs let their markers go back to the store as they are."""
        jobs = [*self._queue, *([self._current] if self._current is not None else [])]
        self._queue.clear()
        self._current = None
        for job in jobs:
            self.guard.end(job.run, completed=False)

    def _release_questions(self) -> None:
        """Open questions stay open: their markers go back to the store as they are."""
        for timer in self._expiries.values():
            timer.cancel()
        self._expiries.clear()
        jobs = list(self._questions.values())
        self._questions.clear()
        for job in jobs:
            self.guard.end(job.run, completed=False)

    async def _run(self) -> None:
        """The one sender: the job due first, one at a time, at the platform's rate."""
        loop = asyncio.get_running_loop()
        try:
            if not self._peeked:
                await self._expect_redeliveries()
            while not self._stopping and (self._queue or self._followups):
                self._wake.clear()
                delay = self._queue[0].due - loop.time() if self._queue else None
                if delay is None or delay > 0:
                    if not self._followups and all(job.awaiting for job in self._queue):
                        self._startup_done.set()
                    await self._sleep(delay)
                    continue
                self._current = heapq.heappop(self._queue)
                await self._step(self._current)
                self._current = None
            if not self._stopping:
                log.info(
                    "restart-guard: start-up recovery done: %d resumed, %d dropped (%d given up)",
                    self.delivered,
                    self.dropped,
                    self.gave_up,
                )
        except asyncio.CancelledError:
            self._release_queue()
            raise
        finally:
            self._startup_done.set()

    async def _sleep(self, delay: float | None) -> None:
        """Until ``delay`` passes, a job is queued or re-claimed, a follow-up ends, or a stop."""
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        waits.update(self._followups)
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                if waiter not in self._followups:
                    waiter.cancel()

    async def _step(self, job: _Job) -> None:
        """Look at a job for the first time, or try its notice once more."""
        if job.awaiting:  # the platform's copy never came: tell the user after all
            job.awaiting = False
            log.info(
                "restart-guard: %s: no redelivery within %.0fs; posting its notice",
                job.conversation,
                REDELIVERY_WAIT,
            )
        if job.text is None and not job.giving_up and not self._first_look(job):
            return
        if job.text is None:  # nothing to post
            self._notified(job, sent=False)
            return
        await self._pace()
        if self._stopping:  # a stop came while this one waited for its turn
            heapq.heappush(self._queue, job)  # released by cancel() with the others
            return
        if job.expiring:
            await self._expire(job)
            return
        nonce = notice_nonce(job.marker, job.giving_up)
        try:
            notice = Notice(job.conversation, job.text, nonce, job.marker)
            if job.asking:
                question = await self.link.send_question(notice, question_token(job.marker))
            else:
                await self.link.send_notice(notice)
        except Exception as exc:
            self._refused(job, exc)
            return
        if job.asking:
            await self._asked(job, question)
        else:
            await self._record(job)

    def _first_look(self, job: _Job) -> bool:
        """Drop, give up, or pick the notice text; False when the job is finished."""
        marker = job.marker
        if marker.question is not None:  # asked before a restart, and max_age has passed
            job.expiring = True
            job.question = marker.question
            job.text = EXPIRED_NOTICE
            return True
        age = marker.age()
        if age > self.settings.max_age:
            log.warning(
                "restart-guard: dropped %s: interrupted %.0fs ago, older than max_age=%.0fs",
                marker.conversation,
                age,
                self.settings.max_age,
            )
            self._drop(job.run)
            return False
        if marker.attempts >= self.settings.max_attempts:
            job.giving_up = True
            job.text = self._text(self.settings.giveup_notice, DEFAULT_GIVEUP_NOTICE, marker)
            if job.text is None:
                self._gave_up(job, told=False)
                return False
            return True
        choice = self._replay_choice(marker)
        if choice == "ask" and not getattr(self.link, "can_ask", True):
            log.warning(
                'restart-guard: replay="ask" is not supported by the %s adapter yet; %s gets '
                "the plain notice and is not replayed",
                self.guard.platform,
                marker.conversation,
            )
            choice = False
        # "ask": a noticed marker was answered Continue (an open question never gets here).
        job.replay = choice is True or (choice == "ask" and marker.noticed)
        if marker.noticed:
            log.info(
                "restart-guard: %s was told before the last restart; not posting its notice again",
                marker.conversation,
            )
            return True  # job.text stays None: straight to what follows the notice
        job.asking = choice == "ask"
        if job.asking:
            default = ASK_NOTICE
        else:
            default = DEFAULT_REPLAY_NOTICE if job.replay else DEFAULT_NOTICE
        job.text = self._text(self.settings.notice, default, marker)
        if job.text is None and job.asking:
            job.text = ASK_NOTICE  # a question needs a message to carry its buttons
        return True

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._next_send - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        interval = 1.0 / max(self.link.notices_per_second, 0.001)
        self._next_send = max(self._next_send, loop.time()) + interval

    async def _record(self, job: _Job) -> None:
        """The platform took the notice: make that durable before the next send (one flush)."""
        if job.giving_up:
            self._gave_up(job, told=True)
        else:
            self._notified(job, sent=True)
        await self.guard.flush_async()

    # ---------------------------------------------------------------- replay="ask"
    async def _asked(self, job: _Job, question: str) -> None:
        """The question is posted: phase ASKED, durable before the next notice."""
        self.delivered += 1
        self.guard.note_asked(job.run, question)
        self._open_question(job, question)
        log.info("restart-guard: asked %s whether to pick its turn up again", job.conversation)
        await self.guard.flush_async()

    def _open_question(self, job: _Job, question: str) -> None:
        """Wait for a press until the marker is ``max_age`` old."""
        job.question = question
        token = question_token(job.marker)
        self._questions[token] = job
        left = max(self.settings.max_age - job.marker.age(), 0.0)
        self._expiries[token] = asyncio.get_running_loop().call_later(
            left, self._expire_later, token
        )

    def _expire_later(self, token: str) -> None:
        self._expiries.pop(token, None)
        job = self._questions.pop(token, None)
        if job is not None and not self._stopping:
            self._follow(self._expire(job))

    async def _expire(self, job: _Job) -> None:
        """Nobody answered within max_age: remove the buttons, say so, drop the marker."""
        assert job.question is not None
        log.info(
            "restart-guard: the question to %s expired (max_age=%.0fs); dropping it",
            job.conversation,
            self.settings.max_age,
        )
        try:
            await self.link.close_question(job.conversation, job.question, EXPIRED_NOTICE, None)
        except Exception as exc:
            log.warning(
                "restart-guard: could not edit the expired question in %s: %s",
                job.conversation,
                exc,
            )
        self._drop(job.run)
        await self.guard.flush_async()

    async def answer(self, press: Press) -> None:
        """A button of a question was pressed: refuse it, or continue / dismiss the turn."""
        job = self._questions.get(press.token)
        if job is None or self._stopping:
            await self._refuse(press, RESTARTING_ANSWER if self._stopping else CLOSED_ANSWER)
            return
        askers = askers_of(job.marker)
        if askers and press.user not in askers:
            log.info(
                "restart-guard: user %s pressed %s in %s, but only %s may answer; refused",
                press.user,
                press.choice.label,
                job.conversation,
                ", ".join(sorted(askers)),
            )
            await self._refuse(press, NOT_YOURS_ANSWER)
            return
        # Taken before any await: a second press (or the expiry) finds nothing.
        del self._questions[press.token]
        timer = self._expiries.pop(press.token, None)
        if timer is not None:
            timer.cancel()
        assert job.question is not None
        if press.choice is Choice.DISMISS:
            log.info("restart-guard: %s dismissed by user %s", job.conversation, press.user)
            self._drop(job.run)
            await self.guard.flush_async()  # gone for good before the notice says so
            await self._close(job, DISMISSED_NOTICE, press)
            return
        log.info("restart-guard: %s continued by user %s", job.conversation, press.user)
        job.replay = True
        self._count("resumed")
        self.guard.note_answered(job.run)
        attempts = self.guard.count_attempt(job.run)
        await self.guard.flush_async()  # counted before the turn re-runs, as for replay=True
        await self._close(job, CONTINUED_NOTICE, press)
        self._follow(self._follow_up(job, attempts))

    async def _close(self, job: _Job, text: str, press: Press) -> None:
        assert job.question is not None
        try:
            await self.link.close_question(job.conversation, job.question, text, press)
        except Exception as exc:
            log.warning(
                "restart-guard: could not edit the question in %s: %s", job.conversation, exc
            )

    async def _refuse(self, press: Press, text: str) -> None:
        try:
            await self.link.refuse_press(press, text)
        except Exception as exc:
            log.warning("restart-guard: could not answer a press of user %s: %s", press.user, exc)

    def _follow(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name="restart-guard-resume-turn")
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    def _notified(self, job: _Job, *, sent: bool) -> None:
        """The conversation was told (now, earlier, or needs no notice); what follows it."""
        marker = job.marker
        self.delivered += 1
        self._count("resumed")
        if self.settings.on_resume is None and not job.replay:
            if sent:
                log.info(
                    "restart-guard: notified %s (interrupted %.0fs ago)",
                    job.conversation,
                    marker.age(),
                )
            self.guard.end(job.run)
            return
        if sent:
            self.guard.note_noticed(job.run)
        attempts = self.guard.count_attempt(job.run)
        self._follow(self._follow_up(job, attempts))

    async def _follow_up(self, job: _Job, attempts: int) -> None:
        """on_resume and replay of one conversation, off the sender's path."""
        marker, where = job.marker, job.conversation
        completed = False
        try:
            # Durable before the turn re-runs: if it kills us again, that counts.
            await self.guard.flush_async()
            if self.settings.on_resume is not None:
                try:
                    await self.settings.on_resume(marker)
                except Exception:
                    log.exception("restart-guard: on_resume failed for %s", where)
            if job.replay:
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
            completed = True
        finally:
            self.guard.end(job.run, completed=completed)

    def _refused(self, job: _Job, exc: Exception) -> None:
        """The platform did not take the notice: drop, follow, or retry this job later."""
        where = job.conversation
        now = asyncio.get_running_loop().time()
        if isinstance(exc, ThreadGone) and where.thread is not None:
            log.warning(
                "restart-guard: thread of %s is gone (%s); posting in the main chat instead",
                where,
                exc,
            )
            job.conversation = where.without_thread()
            job.due = now
        elif isinstance(exc, ConversationMoved) and job.moves < _MAX_MOVES:
            job.moves += 1
            job.conversation = Conversation(
                where.platform, exc.new_chat, where.thread, where.scope, where.parent
            )
            self.guard.move(job.run, job.conversation)
            log.warning(
                "restart-guard: %s moved to chat %s (%s); the marker and the notice follow it",
                where,
                exc.new_chat,
                exc,
            )
            job.due = now
        elif isinstance(exc, (ThreadGone, ConversationGone, ConversationMoved)):
            log.warning("restart-guard: dropped %s: %s", where, exc)
            if job.giving_up:
                self._gave_up(job, told=False)
            else:
                self._drop(job.run)
            return
        elif isinstance(exc, RateLimited):
            log.info(
                "restart-guard: rate limited posting to %s; retrying it in %.1fs, "
                "the other conversations go ahead",
                where,
                exc.retry_after,
            )
            job.due = now + exc.retry_after
        else:
            job.backoff = min(job.backoff * 2, _BACKOFF_MAX) if job.backoff else _BACKOFF_FIRST
            log.warning(
                "restart-guard: could not post to %s (%s: %s); retrying it in %.0fs, "
                "marker kept, the other conversations go ahead",
                where,
                type(exc).__name__,
                exc,
                job.backoff,
            )
            job.due = now + job.backoff
        job.order = next(self._order)
        heapq.heappush(self._queue, job)

    def _gave_up(self, job: _Job, *, told: bool) -> None:
        log.warning(
            "restart-guard: gave up on %s after %d interrupted resume attempt(s)%s",
            job.conversation,
            job.marker.attempts,
            "; told the user" if told else "",
        )
        self._drop(job.run, "gave_up")

    def _replay_choice(self, marker: Marker) -> ReplayChoice:
        choice = replay_choice(self.settings.replay, marker)
        if marker.payload and not marker.replayable:
            log.info(
                "restart-guard: %s ran a no_replay handler; not replaying it",
                marker.conversation,
            )
        return choice

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


def notice_nonce(marker: Marker, giving_up: bool = False) -> str:
    """A nonce for one notice of one marker: the same at every start, new for a new one.

    Derived from the conversation, the interrupted turn's start and the
    attempt count (a give-up notice is another notice than the first one),
    so a notice re-sent after a kill carries the nonce of the first send.
    """
    identity = f"{marker.key}|{marker.started_at!r}|{marker.attempts}|{int(giving_up)}"
    return hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()  # 24 characters


def _reclaim_interval() -> float:
    return seconds_from_env(
        ENV_RECLAIM_INTERVAL, RECLAIM_INTERVAL, 0.0, f"re-claiming every {RECLAIM_INTERVAL:.0f}s"
    )


def _by_age(marker: Marker) -> float:
    return marker.started_at
