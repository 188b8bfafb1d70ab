"""The one owner of SIGTERM/SIGINT for guarded bots whose framework leaves them alone.

discord.py has no SIGTERM handler (SIGTERM kills the bot at once) and turns
SIGINT into cancelling every task; slack-bolt installs none. Adapters of
such frameworks ask their :class:`~restart_guard._lifecycle.Lifecycle` to
``handle_signals``, which registers here:

- :class:`LoopSignals`, per event loop (``loop.add_signal_handler``): the
  first signal pre-marks every bot registered on the loop — durable before
  anything else runs — then runs their stops in one task;
- :class:`ProcessSignals`, once per process, for bots run by a blocking call
  in the main thread (slack-bolt's ``App``): the Python signal handler only
  sets an event (it runs between two bytecodes of the main thread, so it
  must not take a lock the main thread may hold); a watcher thread pre-marks
  and stops, then ends the main thread with ``SystemExit(0)`` by sending it
  the same signal again.

A second signal during the drain means "stop now" (``Lifecycle.stop_now``):
whoever sends it has decided not to wait for the drain. The drain ends at
once, as if it had timed out: the turns still running stay marked for the
next start, the store is closed, one log line says so, and the process
exits. Further signals are ignored. A registration ends when its lifecycle
closes; the handlers go with the last.

python-telegram-bot's ``run_polling``/``run_webhook`` handle the signals
themselves (and call the guarded ``stop()``), so its adapter uses none of this;
it routes their second signal to ``Lifecycle.stop_now`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._lifecycle import Lifecycle

__all__ = [
    "CUT_OFF",
    "SIGNALS",
    "LoopSignals",
    "ProcessSignals",
    "loop_signals",
    "process_signals",
    "signal_name",
]

log = logging.getLogger("restart_guard")

#: The signals a service manager (or Ctrl-C) stops a bot with.
SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: What a handler run ends with when it is cancelled rather than finished.
CUT_OFF = (asyncio.CancelledError, GeneratorExit)


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for its number (the number itself if unknown)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class LoopSignals:
    """SIGTERM/SIGINT on one event loop, for every guarded bot running on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._stops: dict[Lifecycle, Callable[[], Awaitable[object]]] = {}
        self._exit = False
        self.installed = False
        #: A signal was taken; the next one is "stop now", later ones are ignored.
        self.stopping = False

    def register(
        self,
        lifecycle: Lifecycle,
        stop: Callable[[], Awaitable[object]],
        how_to_stop: str,
        *,
        exit_when_stopped: bool = False,
    ) -> None:
        """On SIGTERM/SIGINT: ``lifecycle.pre_mark()``, then ``await stop()``.

        ``exit_when_stopped``: raise ``SystemExit(0)`` out of the loop once
        every stop is done (for runners that would otherwise wait forever).
        """
        self._stops[lifecycle] = stop
        self._exit = self._exit or exit_when_stopped
        if self.installed:
            return
        try:
            for sig in SIGNALS:
                # Replaces asyncio.run()'s SIGINT handler, which would cancel every task.
                self.loop.add_signal_handler(sig, self._on_signal, sig)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            log.warning(
                "restart-guard: cannot handle SIGTERM/SIGINT on this event loop (%s); %s",
                exc,
                how_to_stop,
            )
            return
        self.installed = True

    def unregister(self, lifecycle: Lifecycle) -> None:
        """Forget ``lifecycle``; the loop's handlers go when no bot is left."""
        self._stops.pop(lifecycle, None)
        if not self._stops and self.installed:
            for sig in SIGNALS:
                with contextlib.suppress(ValueError, RuntimeError):  # closed loop, other thread
                    self.loop.remove_signal_handler(sig)
            self.installed = False
            self.stopping = False

    def _on_signal(self, signum: int) -> None:
        name = signal_name(signum)
        if self.stopping:
            cut = [lifecycle for lifecycle in list(self._stops) if lifecycle.stop_now(name)]
            if not cut:
                log.info("restart-guard: %s ignored: already stopping", name)
            return
        self.stopping = True
        stops = list(self._stops.items())
        log.info("restart-guard: %s received; stopping %d guarded bot(s)", name, len(stops))
        for lifecycle, _ in stops:
            lifecycle.pre_mark()  # every bot durable before anything else runs
        self.loop.create_task(
            _stop_all([stop for _, stop in stops], self._exit), name="restart-guard-stop"
        )


async def _stop_all(stops: list[Callable[[], Awaitable[object]]], exit_after: bool) -> None:
    results = await asyncio.gather(*(stop() for stop in stops), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("restart-guard: stopping a bot failed: %r", result)
    if exit_after:
        log.info("restart-guard: stopped; exiting")
        asyncio.get_running_loop().call_soon(_raise_exit)


def _raise_exit() -> None:
    # From a loop callback SystemExit leaves run_forever(), as aiohttp's GracefulExit does.
    raise SystemExit(0)


_LOOP_SIGNALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopSignals] = (
    weakref.WeakKeyDictionary()
)


def loop_signals(loop: asyncio.AbstractEventLoop) -> LoopSignals:
    """The :class:`LoopSignals` of ``loop`` (made on first use)."""
    signals = _LOOP_SIGNALS.get(loop)
    if signals is None:
        signals = _LOOP_SIGNALS[loop] = LoopSignals(loop)
    return signals


class ProcessSignals:
    """SIGTERM/SIGINT for bots run by a blocking call in the main thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: dict[Lifecycle, Callable[[], bool]] = {}
        self._previous: dict[int, Any] = {}
        self._wake = threading.Event()
        self._phase = "idle"  # idle → stopping → done (or cancelled)
        self._signum: int = signal.SIGTERM
        self._again: int | None = None  # the second signal: stop now
        self._installed = False

    def register(self, lifecycle: Lifecycle, stop: Callable[[], bool], how_to_stop: str) -> None:
        """On SIGTERM/SIGINT: ``lifecycle.pre_mark()``, then ``stop()`` (True: drained)."""
        with self._lock:
            self._stops[lifecycle] = stop
            if self._installed:
                return
            if threading.current_thread() is not threading.main_thread():
                log.warning(
                    "restart-guard: the bot was started outside the main thread, where "
                    "signal handlers cannot be installed; %s",
                    how_to_stop,
                )
                return
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            self._installed = True
            self._phase = "idle"
            self._again = None
            self._wake.clear()
            threading.Thread(target=self._watch, name="restart-guard-signals", daemon=True).start()

    def unregister(self, lifecycle: Lifecycle) -> None:
        """Forget ``lifecycle``; the previous handlers come back when no bot is left."""
        with self._lock:
            self._stops.pop(lifecycle, None)
            if self._stops or not self._installed or self._phase != "idle":
                return
            if threading.current_thread() is threading.main_thread():
                for sig, previous in self._previous.items():
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            self._previous.clear()
            self._installed = False
            self._phase = "cancelled"
            self._wake.set()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Main thread, between two bytecodes: flags and an Event only — no
        # logging, no guard (the interrupted code may hold their locks).
        if self._phase == "done":
            # Drained: the bot's own handler, if it had one, then exit 0.
            previous = self._previous.get(signum)
            if callable(previous) and previous is not signal.default_int_handler:
                previous(signum, frame)
            raise SystemExit(0)
        if self._phase == "idle":
            self._phase = "stopping"
            self._signum = signum
        elif self._phase == "stopping" and self._again is None:
            self._again = signum  # stop now
        else:
            return
        self._wake.set()

    def _watch(self) -> None:
        self._wake.wait()
        if self._phase != "stopping":
            return
        with self._lock:
            stops = list(self._stops.items())
        log.info(
            "restart-guard: %s received; stopping %d guarded bot(s)",
            signal_name(self._signum),
            len(stops),
        )
        for lifecycle, _ in stops:
            lifecycle.pre_mark()  # every bot durable before any drain begins
        # The stops run in a thread of their own: this one waits for a second signal.
        outcome: list[bool] = []
        stopper = threading.Thread(
            target=self._stop_all, args=(stops, outcome), name="restart-guard-stop", daemon=True
        )
        stopper.start()
        cut = False
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._again is not None and not cut:
                cut = True
                for lifecycle, _ in stops:
                    lifecycle.stop_now(signal_name(self._again))
            if outcome:
                break
        if not outcome[0]:
            _hard_exit(0)
        log.info("restart-guard: drain complete; exiting")
        with self._lock:
            self._stops.clear()
            self._phase = "done"
        # A real signal, not _thread.interrupt_main(): only that wakes a main
        # thread blocked in a lock (SocketModeHandler.start() waits on an Event).
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, self._signum)

    def _stop_all(
        self, stops: list[tuple[Lifecycle, Callable[[], bool]]], outcome: list[bool]
    ) -> None:
        drained = True
        try:
            for _, stop in stops:
                try:
                    drained = stop() and drained
                except Exception:
                    log.exception("restart-guard: stopping a bot failed")
                    drained = False
        finally:
            outcome.append(drained)
            self._wake.set()


def _hard_exit(status: int) -> None:
    """Exit now: handler threads still running would hold up a normal exit forever."""
    # INFO: the WARNING that the drain did not finish was logged already, once.
    log.info("restart-guard: exiting now; handler threads still running end with the process")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not keep us alive
            stream.flush()
    os._exit(status)


_PROCESS_SIGNALS = ProcessSignals()


def process_signals() -> ProcessSignals:
    """The process's one :class:`ProcessSignals` (signal handlers are process-wide)."""
    return _PROCESS_SIGNALS
