"""Start-up and stop of one guarded bot object, written once for every adapter.

The sequence that keeps conversations through a restart::

    start():  open the store ─► claim the markers of a dead process ─► post
              their notices (at most STARTUP_NOTICE_WAIT, the rest in the
              background) ─► READY=1 to systemd ─► stage RUNNING
    runs:     begin(conversation) ... end(run)      (write-ahead, group commit)
              durable() before the platform's acknowledgement of the update
    stop():   pre_mark() ── every conversation in flight durably marked, intake
              off, STOPPING=1 ──► cancel the resume step (a notice in flight
              may finish) ──► the framework's drain + the guard's idle wait,
              bounded by drain_timeout ──► if it did not finish: seal, cancel
              what still runs (bounded) ──► close ──► stage STOPPED (start()
              may run again)
    stop_now(): a second stop signal during the drain — the drain ends at
              once as if it had timed out (one log line), the turns still
              running stay marked, the store is closed.

Stages: ``NEW → STARTING → RUNNING → STOPPING → STOPPED → STARTING ...``.
``pre_mark`` is the stop request: signal handlers call it first, before
anything else can run, and ``stop`` calls it again (idempotent), so the
drain is bounded from the moment the stop was asked for. A stop asked for
before the store is open (a signal during start-up) makes ``start`` open
nothing.

Two forms: ``start`` / ``stop`` run on the bot's event loop; ``start_blocking``
/ ``stop_blocking`` are for frameworks whose handlers run in threads
(slack-bolt's ``App``), where the resume step gets an event loop thread of
its own (:class:`LoopThread`).

Adapters never call the :class:`~restart_guard.Guard` or the
:class:`~restart_guard.Resumer` themselves: this object is the whole of the
core they use (see :mod:`restart_guard._adapter`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ._ask import RESTARTING_ANSWER, Press
from ._conversation import Conversation
from ._guard import Guard, Run, listed
from ._marker import Marker, Origin
from ._platform_link import PlatformLink
from ._resume import Resumer
from ._settings import Settings, make_store
from ._signals import CUT_OFF, loop_signals, process_signals
from ._systemd import notify_ready, notify_stopping
from ._writer import ACK_WAIT

__all__ = [
    "ACK_WAIT",
    "CUT_OFF",
    "CUT_OFF_WAIT",
    "STARTUP_NOTICE_WAIT",
    "Lifecycle",
    "LoopThread",
    "Stage",
]

log = logging.getLogger("restart_guard")

T = TypeVar("T")

#: Start-up waits this long for the notices before the bot takes updates; the
#: rest go out in the background at the platform's rate.
STARTUP_NOTICE_WAIT = 5.0
# Bounds on the blocking form's calls into its loop thread.
_LOOP_THREAD_MARGIN = 5.0
_CANCEL_WAIT = 5.0
#: How long handler runs cancelled after an unfinished drain may take to end:
#: a loop closed under them prints "Task was destroyed but it is pending".
CUT_OFF_WAIT = 2.0


class Stage(enum.Enum):
    """Where a guarded bot object is in its life."""

    NEW = "new"  # protected, never started
    STARTING = "starting"  # claiming markers, posting the first notices
    RUNNING = "running"
    STOPPING = "stopping"  # pre-marked: new events are turned away, the drain runs
    STOPPED = "stopped"  # drained (or timed out) and closed; may start again


class LoopThread:
    """An event loop in a daemon thread: where a blocking bot's resume step runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="restart-guard-resume", daemon=True
        )
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop; wait up to ``timeout`` seconds for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


Identity = str | Callable[[], str]
AsyncIdentity = str | Callable[[], Awaitable[str]]


class Lifecycle:
    """Start-up, handler runs and stop of one guarded bot object.

    An adapter makes one per object it guards (in its ``_install``) and calls
    it at the framework's hook points. Thread-safe where Slack's sync
    listeners need it: ``begin``/``end`` from any thread, the blocking
    start and stop serialised with each other.
    """

    def __init__(self, platform: str, settings: Settings) -> None:
        self.platform = platform
        self.settings = settings
        #: Where the bot is in its life (read it; only this class changes it).
        self.stage = Stage.NEW
        #: Whether new events may run: False from the stop request until the next
        #: start. A plain attribute because adapters read it on every event.
        self.accepting = True
        #: The guard of the current run of the bot (None before start and after stop).
        self.guard: Guard | None = None
        self.resumer: Resumer | None = None
        #: Whether the last stop drained completely (None before any stop).
        self.drained: bool | None = None
        #: ``time.monotonic()`` of the stop request: the drain is bounded from there.
        self.stop_started = 0.0
        #: What cut the last drain short (``"SIGINT"``), None if nothing did.
        self.cut_short: str | None = None
        self._cut_waiter: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._loop_thread: LoopThread | None = None
        self._starting: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[bool] | None = None
        self._signals: list[Callable[[Lifecycle], None]] = []
        self._link: PlatformLink | None = None

    def __repr__(self) -> str:
        return f"<Lifecycle {self.platform} {self.stage.value}>"

    def _enter(self, stage: Stage) -> None:
        self.stage = stage
        self.accepting = stage in (Stage.NEW, Stage.STARTING, Stage.RUNNING)

    # ---------------------------------------------------------------- start-up
    async def start(
        self,
        identity: AsyncIdentity,
        link: PlatformLink,
        *,
        stop_waiting: asyncio.Event | None = None,
    ) -> None:
        """Open the store, claim, post notices, READY. Idempotent; concurrent callers share one.

        ``identity`` names the default marker folder (public, stable, never a
        token); a callable is called only when the folder depends on it.
        ``stop_waiting``: set it to end the wait for notices early (a replay
        that needs the connection the caller is about to open).
        """
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)
            return
        if self.stage not in (Stage.NEW, Stage.STOPPED):
            return
        self._starting = asyncio.ensure_future(self._start(identity, link, stop_waiting))
        await asyncio.shield(self._starting)

    async def _start(
        self, identity: AsyncIdentity, link: PlatformLink, stop_waiting: asyncio.Event | None
    ) -> None:
        with self._opening():
            if callable(identity):
                identity = await identity() if _identity_needed(self.settings) else ""
            claimed = self._open(identity, link)
        if claimed is None:
            return
        assert self.resumer is not None
        done = await _resume_first(self.resumer, claimed, stop_waiting)
        self._started(claimed, identity, done)

    def start_blocking(self, identity: Identity, link: PlatformLink) -> None:
        """:meth:`start` for a bot whose handlers run in threads. Idempotent, thread-safe.

        The resume step runs on a :class:`LoopThread`; a caller arriving while
        another starts waits for it.
        """
        if self.stage is Stage.RUNNING:
            return
        with self._lock:
            if self.stage not in (Stage.NEW, Stage.STOPPED):
                return
            with self._opening():
                if callable(identity):
                    identity = identity() if _identity_needed(self.settings) else ""
                claimed = self._open(identity, link)
            if claimed is None:
                return
            # Always a loop thread: the resume step also re-claims in the background.
            self._loop_thread = LoopThread()
            try:
                done = self._loop_thread.call(
                    self._resume(claimed), STARTUP_NOTICE_WAIT + _LOOP_THREAD_MARGIN
                )
            except concurrent.futures.TimeoutError:
                done = False
            self._started(claimed, identity, done)

    async def _resume(self, claimed: Sequence[Marker]) -> bool:
        assert self.resumer is not None
        return await _resume_first(self.resumer, claimed, None)

    @contextlib.contextmanager
    def _opening(self) -> Iterator[None]:
        """Stage STARTING while the store opens; back to the stage before if that fails."""
        previous = self.stage
        self._enter(Stage.STARTING)
        try:
            yield
        except BaseException:
            self._enter(previous)
            raise

    def _open(self, identity: str, link: PlatformLink) -> list[Marker] | None:
        """Open the store and claim; None, opening nothing, when a stop came first (see
        :meth:`pre_mark`)."""
        if self.stage is not Stage.STARTING:
            return None
        guard = Guard(
            self.platform, make_store(self.settings, self.platform, identity), self.settings
        )
        claimed = guard.start()
        # Before the resume step runs: a replayed update's handler run joins this guard.
        self.guard = guard
        self.resumer = Resumer(guard, link)
        self._link = link
        self.drained = None
        self.cut_short = None
        return claimed

    def _started(self, claimed: Sequence[Marker], identity: str, done: bool) -> None:
        if not done:
            log.info("restart-guard: notices continue in the background while the bot runs")
        if self.stage is not Stage.STARTING:
            return  # a stop was requested during the notices: it owns the guard now
        self._enter(Stage.RUNNING)
        notify_ready()  # systemd (Type=notify): start-up recovery is done
        log.info(
            "restart-guard: guarding %s bot %s (%d interrupted conversation(s) claimed)",
            self.platform,
            identity or "(named by marker_dir or store)",
            len(claimed),
        )

    # ---------------------------------------------------------------- handler runs
    def begin(
        self, conversation: Conversation, payload: Any = None, origin: Origin | None = None
    ) -> Run | None:
        """A handler run of ``conversation`` starts; None when not started (nothing to track).

        ``payload`` is the JSON-able update to replay, or a function returning
        it (serialised later, on the writer's thread: see ``Guard.begin``); pass
        it only when ``settings.replay`` is on (it is dropped otherwise).
        ``origin``: the ids of the message the run answers (see :class:`Origin`).
        """
        guard = self.guard
        if guard is None:
            return None
        return guard.begin(conversation, payload, origin)

    @property
    def claims_deliveries(self) -> bool:
        """Whether a claimed marker holds a platform delivery id (:meth:`redelivered` may skip)."""
        resumer = self.resumer
        return resumer is not None and resumer.redeliveries.active

    def redelivered(self, delivery: str | None) -> bool:
        """The platform delivers ``delivery`` (its id for this event); True: skip the event.

        Call it for every incoming event that has a platform delivery id
        (Telegram ``update_id``, Slack ``event_id``), before :meth:`begin`,
        except for events fed back by the adapter's own ``replay``. True
        means a claimed marker holds that turn and restart-guard's replay
        re-runs it: acknowledge the event and do not run it. False: run it
        (if it is a claimed turn, it now stands in for the notice). See
        :mod:`restart_guard._redelivery`. Thread-safe; one attribute test
        when nothing was claimed.
        """
        resumer = self.resumer
        if delivery is None or resumer is None or not resumer.redeliveries.active:
            return False
        return resumer.redelivered(delivery)

    async def durable(self, timeout: float = ACK_WAIT) -> bool:
        """Wait until every conversation begun so far is durably marked; True if it is.

        Hold the platform's acknowledgement of an update on this (Telegram's
        next ``getUpdates``, a webhook's answer, Slack's envelope ack or HTTP
        200): the update is then either redelivered or marked, never
        neither. Costs one batch's fsync — done by the writer thread, never
        on this loop — and nothing when every mark is already durable. A
        failing store returns False at once and a hung one after
        ``timeout`` (logged once): the platform is then acknowledged anyway,
        as it would otherwise redeliver, or give up on, every update.
        """
        guard = self.guard
        if guard is None:
            return True
        return await guard.writer.durable(timeout)

    def durable_blocking(self, timeout: float = ACK_WAIT) -> bool:
        """:meth:`durable` for a framework thread (slack-bolt's ``App``)."""
        guard = self.guard
        if guard is None:
            return True
        return guard.writer.durable_blocking(timeout)

    @staticmethod
    def end(run: Run, *, cut_off: bool = False) -> None:
        """The run is over. ``cut_off``: it ended by cancellation (:data:`CUT_OFF`).

        A run cut off while the bot stops keeps its conversation marked for the
        next start; cancelled by the bot's own code while running, it is over.
        """
        guard = run.guard
        guard.end(run, completed=not (cut_off and guard.stopping))

    # ---------------------------------------------------------------- replay="ask"
    async def press(self, press: Press) -> None:
        """A user pressed a button of a ``replay="ask"`` question (see :mod:`restart_guard._ask`).

        The adapter calls it for every button whose data starts with
        ``PRESS_PREFIX``, instead of the bot's own handlers. Never raises.
        """
        resumer, link = self.resumer, self._link
        if resumer is not None:
            await resumer.answer(press)
        elif link is not None:
            try:
                await link.refuse_press(press, RESTARTING_ANSWER)
            except Exception as exc:
                log.warning("restart-guard: could not answer a press: %s", exc)

    def press_blocking(self, press: Press) -> None:
        """:meth:`press` for a bot whose handlers run in threads."""
        thread = self._loop_thread
        if thread is None:
            return
        try:
            thread.call(self.press(press), _LOOP_THREAD_MARGIN)
        except Exception as exc:
            log.warning("restart-guard: answering a press failed: %s", exc)

    # ---------------------------------------------------------------- stop
    def pre_mark(self) -> None:
        """The stop request: intake off, everything in flight durably marked. Idempotent.

        Blocks for one fsync. Call it first, before anything else can run —
        a SIGKILL may follow at any moment.
        """
        guard = self.guard
        if guard is None and self.stage is Stage.STARTING:
            self._enter(Stage.STOPPED)  # the store is not open yet: start() opens nothing
            return
        if guard is None or self.stage in (Stage.STOPPING, Stage.STOPPED):
            return
        self._enter(Stage.STOPPING)  # from here on new events are turned away
        self.stop_started = time.monotonic()
        guard.pre_mark()
        notify_stopping()  # systemd (Type=notify): the drain begins now

    async def stop(
        self,
        drain: Callable[[], Awaitable[object]] | None = None,
        *,
        handler_tasks: Callable[[], Iterable[asyncio.Future[Any]]] | None = None,
    ) -> bool:
        """Pre-mark, cancel the resume step, drain (bounded), seal or close; True if drained.

        ``drain`` is the framework's own drain (its stop coroutine); the
        guard's idle wait follows it, and both share ``drain_timeout`` counted
        from the stop request. Errors of ``drain`` surface here as they would
        unguarded (after the close), unless the drain timed out. Concurrent
        callers share one stop. Not started: runs ``drain`` and returns.

        When the drain does not finish (timed out, or :meth:`stop_now`), the
        markers are sealed, then ``drain`` is cancelled together with
        ``handler_tasks()`` — the tasks running handler runs that the
        framework would otherwise leave pending when it closes its loop —
        and given :data:`CUT_OFF_WAIT` to end; then the store is closed.
        """
        if self._stopping is not None and not self._stopping.done():
            return await asyncio.shield(self._stopping)
        if self.guard is None or self.stage is Stage.STOPPED:
            if drain is not None:
                await drain()
            return self.drained is not False
        self._stopping = asyncio.ensure_future(self._stop(self.guard, drain, handler_tasks))
        return await asyncio.shield(self._stopping)

    async def _stop(
        self,
        guard: Guard,
        drain: Callable[[], Awaitable[object]] | None,
        handler_tasks: Callable[[], Iterable[asyncio.Future[Any]]] | None,
    ) -> bool:
        self.pre_mark()
        cut = self._cut_waiter = asyncio.get_running_loop().create_future()
        if self.cut_short is not None:
            cut.set_result(None)
        drained = False
        waiting: asyncio.Future[Any] | None = None
        try:
            await self._cancel_resumer()  # bounded by the resumer's send grace
            if drain is None:
                waiting = asyncio.ensure_future(guard.wait_idle(None))
            else:
                waiting = asyncio.ensure_future(_drain_then_idle(drain, guard))
            done, _ = await asyncio.wait(
                {waiting, cut}, timeout=self._left(), return_when=asyncio.FIRST_COMPLETED
            )
            drained = waiting in done
        finally:
            self._cut_waiter = None
            if not drained:
                # Sealed first: nothing the cancellation ends is taken for finished.
                guard.seal(report=self.cut_short is None)
                tasks: list[asyncio.Future[Any]] = [waiting] if waiting is not None else []
                if handler_tasks is not None:
                    tasks.extend(handler_tasks())
                await _cut_off(tasks)
            self._close(drained)
        if drain is not None and drained and waiting is not None:
            waiting.result()
        return drained

    def stop_now(self, why: str) -> bool:
        """A second stop request during the drain (``why``: ``"SIGINT"``): stop now.

        The drain ends at once as if it had timed out: the turns still
        running stay marked for the next start, the store is closed, and the
        stop returns False. One WARNING line says so. Returns False, doing
        nothing, when no drain is running or it was cut short already.
        Thread-safe; from a signal handler only through the loop or a thread
        (it logs and takes the guard's lock).
        """
        guard = self.guard
        if guard is None or self.stage is not Stage.STOPPING or self.cut_short is not None:
            return False
        self.cut_short = why
        left = guard.unfinished()
        log.warning(
            "restart-guard: %s during the drain: stop now (after %.1fs); %d conversation(s) "
            "stay marked and will be resumed on the next start%s",
            why,
            time.monotonic() - self.stop_started,
            len(left),
            listed(left),
        )
        guard.stop_waiting()  # stop_blocking
        waiter = self._cut_waiter  # stop
        if waiter is not None:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        return True

    def stop_blocking(self) -> bool:
        """:meth:`stop` for a bot whose handlers run in threads (no framework drain)."""
        if self.stage is Stage.STOPPING:
            # A stop during start-up: end the notices now, or start_blocking would
            # hold the lock until they are all out.
            self._cancel_resumer_blocking()
        with self._lock:
            guard = self.guard
            if guard is None or self.stage is Stage.STOPPED:
                return self.drained is not False
            self.pre_mark()
            drained = False
            try:
                self._cancel_resumer_blocking()
                drained = guard.wait_idle_blocking(self._left())
            finally:
                if not drained:
                    guard.seal(report=self.cut_short is None)
                self._close(drained)
            return drained

    def _left(self) -> float:
        return max(self.settings.drain_timeout - (time.monotonic() - self.stop_started), 0.0)

    async def _cancel_resumer(self) -> None:
        if self._loop_thread is not None:
            await asyncio.to_thread(self._cancel_resumer_blocking)
        elif self.resumer is not None:
            await self.resumer.cancel()  # unfinished notices stay marked

    def _cancel_resumer_blocking(self) -> None:
        if self.resumer is not None and self._loop_thread is not None:
            try:
                self._loop_thread.call(self.resumer.cancel(), _CANCEL_WAIT)
            except Exception as exc:
                log.warning("restart-guard: stopping the resume step failed: %s", exc)

    def _close(self, drained: bool) -> None:
        guard = self.guard
        self.guard = None
        self.resumer = None
        if guard is not None:
            # Markers first: once the drain is over, a SIGKILL must not find stale ones.
            guard.close()
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None
        self.drained = drained
        self._enter(Stage.STOPPED)
        for forget in self._signals:
            forget(self)
        self._signals.clear()

    # ---------------------------------------------------------------- signals
    def handle_signals(
        self,
        stop: Callable[[], Awaitable[object]],
        *,
        how_to_stop: str,
        exit_when_stopped: bool = False,
    ) -> None:
        """Stop with ``stop()`` on SIGTERM/SIGINT delivered to the running event loop.

        For frameworks that leave the signals alone (or turn SIGINT into
        cancelling every task). The first signal pre-marks every bot on the
        loop, then runs their ``stop``; a second one during the drain is
        :meth:`stop_now`.
        ``how_to_stop`` completes the warning when the loop cannot take
        handlers (not the main thread). ``exit_when_stopped``: then raise
        ``SystemExit(0)`` out of the loop (for runners that never return).
        """
        signals = loop_signals(asyncio.get_running_loop())
        signals.register(self, stop, how_to_stop, exit_when_stopped=exit_when_stopped)
        self._signals.append(signals.unregister)

    def handle_signals_blocking(self, stop: Callable[[], bool], *, how_to_stop: str) -> None:
        """:meth:`handle_signals` for a bot run by a blocking call in the main thread.

        The work runs in a watcher thread; after a complete drain the main
        thread gets ``SystemExit(0)``, after a timed-out one the process exits
        at once (threads still running a handler would hold it up).
        """
        signals = process_signals()
        signals.register(self, stop, how_to_stop)
        self._signals.append(signals.unregister)


async def _cut_off(tasks: list[asyncio.Future[Any]]) -> None:
    """Cancel what still runs after an unfinished drain; wait up to CUT_OFF_WAIT for it."""
    current = asyncio.current_task()
    pending = [t for t in tasks if t is not current and not t.done()]
    if not pending:
        return
    # One turn of the loop first: a task cancelled before its first step never
    # runs at all (a framework's stop would not even mark itself stopped).
    await asyncio.sleep(0)
    for task in pending:
        task.cancel()
    _, still = await asyncio.wait(pending, timeout=CUT_OFF_WAIT)
    for task in pending:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: ended while cut off, nothing to report
    if still:
        log.info(
            "restart-guard: %d task(s) still running %.0fs after they were cancelled",
            len(still),
            CUT_OFF_WAIT,
        )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _drain_then_idle(drain: Callable[[], Awaitable[object]], guard: Guard) -> None:
    await drain()
    # Handler runs the framework no longer awaits (tasks started during its drain).
    await guard.wait_idle(None)


async def _resume_first(
    resumer: Resumer, claimed: Sequence[Marker], stop_waiting: asyncio.Event | None
) -> bool:
    """Start the resume step; wait for its start-up part (see :meth:`Resumer.startup`)."""
    if resumer.start(claimed) is None:
        return True
    startup = asyncio.ensure_future(resumer.startup())
    try:
        return await _first(startup, stop_waiting)
    finally:
        startup.cancel()


async def _first(task: asyncio.Future[Any], stop_waiting: asyncio.Event | None) -> bool:
    """Wait up to STARTUP_NOTICE_WAIT for ``task``, or until ``stop_waiting`` is set."""
    if stop_waiting is None:
        done, _ = await asyncio.wait({task}, timeout=STARTUP_NOTICE_WAIT)
        return bool(done)
    wanted = asyncio.ensure_future(stop_waiting.wait())
    try:
        done, _ = await asyncio.wait(
            {task, wanted}, timeout=STARTUP_NOTICE_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        wanted.cancel()
    return task in done


def _identity_needed(settings: Settings) -> bool:
    """Whether the store's location depends on the bot's identity (no explicit dir or store)."""
    return settings.marker_dir is None and (
        settings.store is None or isinstance(settings.store, str)
    )
