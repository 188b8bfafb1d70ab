"""What a restart scenario needs from a platform, and what every platform shares.

A driver runs one platform's loopback stand-in and that platform's demo bot
(``restart_guard.demo.<platform>_bot``) in real subprocesses. The scenarios
talk to it in platform-neutral terms: a :class:`Place` to say something in,
what the bot posted there, faults to inject while the bot is down. Signals
go straight to the :class:`~restart_guard.testing.process.BotProcess`.

A new platform's driver subclasses :class:`Driver` and fills in the
abstract part (about fifty lines): how to start the stand-in, the bot's
command line and environment, when the bot is ready, how a user says
something, and the faults its API can show.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from restart_guard.testing._standin import SentMessage, StandIn
from restart_guard.testing.markers import markers_in, wait_for_markers
from restart_guard.testing.process import BotProcess
from restart_guard.testing.wait import eventually as wait_for

#: Words of the resume notices (the bot's own replies never contain them).
NOTICE = "restarted"
GIVE_UP = "could not finish"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a bot's HTTP endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Place:
    """Where a user talks to the bot, and where the bot's replies land.

    ``chat`` and ``thread`` are what the stand-in records for a posted
    message (:class:`~restart_guard.testing._standin.SentMessage`);
    ``marked_as`` the ``(chat, thread)`` of the conversation's marker when
    the platform keys it differently (a Discord thread is a channel of its own).
    """

    chat: str
    thread: str | None = None
    marked_as: tuple[str, str | None] | None = None

    @property
    def conversation(self) -> tuple[str, str | None]:
        """``(chat, thread)`` of this place's marker."""
        return self.marked_as or (self.chat, self.thread)

    def holds(self, message: SentMessage) -> bool:
        """``message`` was posted here (anywhere in the chat when there is no thread)."""
        return message.chat == self.chat and (self.thread is None or message.thread == self.thread)


@dataclass(frozen=True)
class Said:
    """A message a user sent: where the bot answers it, and the platform's handle of it.

    ``message`` is the platform's id of the message (Telegram message_id,
    Discord message id, Slack ts) and ``user`` its author's id.
    """

    place: Place
    handle: Any = None
    message: str | None = None
    user: str | None = None


class Driver(abc.ABC):
    """One platform in one run mode: its stand-in, its demo bot, its faults."""

    #: ``Conversation.platform``, also the name in the adapter's log lines.
    platform: ClassVar[str]
    #: The test id, when not ``platform`` (two frameworks of one platform).
    name: ClassVar[str | None] = None
    #: The framework's import name: the platform's scenarios are skipped without it.
    framework: ClassVar[str]
    #: Every way the demo bot can run (command-line variants); the first is the default.
    modes: ClassVar[tuple[str, ...]]
    #: A mode in which several turns of one conversation run at once.
    concurrent_mode: ClassVar[str]
    #: What a user types before a command name ("/work", "!work", "work").
    command_prefix: ClassVar[str] = ""
    #: The demo bot's module, run with ``python -m``.
    module: ClassVar[str]
    #: A log line of the bot once it serves (None: no such line in every mode).
    ready_log: ClassVar[str | None] = None
    #: Whether a thread can be deleted while its chat stays (see :meth:`delete_thread`).
    deletable_threads: ClassVar[bool] = False
    #: What the log says when a notice is rate limited (None: the framework waits it out).
    rate_limit_log: ClassVar[str | None] = "rate limited"
    #: Two users' ids (the first is who :meth:`say` speaks as by default).
    users: ClassVar[tuple[str, str]]

    api: Any  # the platform's stand-in, once :meth:`running` entered

    def __init__(self, mode: str, tmp_path: Path) -> None:
        if mode not in self.modes:
            raise ValueError(f"{self.platform} has no mode {mode!r}; modes: {self.modes}")
        self.mode = mode
        self.tmp_path = tmp_path
        self.marker_dir = tmp_path / "markers"
        self.bots: list[BotProcess] = []
        self.said: list[Said] = []  # every turn :meth:`start_work` started, in order
        self._started = 0  # bots ever started: names their log files

    # ------------------------------------------------------------ the platform
    @abc.abstractmethod
    def _standin(self) -> contextlib.AbstractContextManager[StandIn]:
        """The platform's stand-in, running in a thread (``XStandIn.running()``)."""

    @abc.abstractmethod
    def _places(self) -> tuple[Place, Place, Place]:
        """``(topic, chat, other)``, called once the stand-in runs (see :meth:`running`)."""

    @abc.abstractmethod
    def _bot_args(self) -> list[str]:
        """Command-line arguments of the demo bot for :attr:`mode` (no --marker-dir)."""

    def _bot_env(self) -> dict[str, str]:
        """Environment variables that point the demo bot at the stand-in."""
        return {}

    def _before_start(self) -> object:
        """A snapshot of the stand-in taken just before a bot starts (for :meth:`_wait_ready`)."""
        return None

    @abc.abstractmethod
    def _wait_ready(self, bot: BotProcess, before: object) -> None:
        """Block until the bot serves: start-up recovery (the notices) is over by then."""

    @abc.abstractmethod
    def new_place(self, n: int) -> Place:
        """A chat nobody used yet (the ``n``-th of a series), where the bot may post."""

    @abc.abstractmethod
    def say(self, place: Place, text: str, user: str | None = None) -> Said:
        """A user (default ``users[0]``) posts ``text`` in ``place``."""

    def reply_target(self, said: Said) -> str | None:
        """What a notice answering ``said`` points at (``SentMessage.reply_to``): the message."""
        return said.message

    @abc.abstractmethod
    def wait_delivered(self, said: Said) -> None:
        """Block until the platform considers ``said`` delivered and will never resend it."""

    #: Whether the platform delivers an unacknowledged event again (Discord: never).
    redelivers: ClassVar[bool] = True
    #: Whether the adapter can see, at start-up, which deliveries the platform still holds.
    peeks_pending: bool = False
    #: Whether held acks must be released before a restarted bot can serve (its own
    #: acknowledgement would wait otherwise: Telegram's confirming getUpdates).
    release_before_restart: bool = False

    def hold_acks(self) -> None:
        """From now on the bot's acknowledgements do not reach the platform (until released)."""
        raise NotImplementedError(f"{self.platform} has no acknowledgements")

    def release_acks(self) -> None:
        """Acknowledgements reach the platform again; what was held is delivered again."""
        raise NotImplementedError(f"{self.platform} has no acknowledgements")

    @abc.abstractmethod
    def send_attempts(self, place: Place) -> int:
        """How many times the bot tried to post into ``place``'s chat, failures included."""

    # Faults, injected while the bot is down.
    @abc.abstractmethod
    def remove_bot(self, place: Place) -> str:
        """The bot loses access to ``place`` (kicked, 403); return the error its log names."""

    @abc.abstractmethod
    def delete_chat(self, place: Place) -> str:
        """``place``'s chat is deleted (404 and the like); return the error its log names."""

    def delete_thread(self, place: Place) -> Place | None:
        """Delete ``place``'s thread; return the chat that keeps working, or None if impossible."""
        return None

    @abc.abstractmethod
    def rate_limit(self, place: Place, times: int) -> None:
        """The next ``times`` posts into ``place`` are answered "429, retry after ~1 s"."""

    # Buttons (replay="ask"), pressed as one of :attr:`users`.
    #: Whether this driver can press buttons (the ``replay="ask"`` scenarios need it).
    has_buttons: ClassVar[bool] = False
    #: The modes the ``replay="ask"`` scenarios run in (None: the default mode only) —
    #: where a press takes another way to the bot than an update does.
    button_modes: ClassVar[tuple[str, ...] | None] = None

    def buttons(self, message: SentMessage) -> list[str]:
        """The labels of the buttons ``message`` carries now (after any edit)."""
        raise NotImplementedError

    def text_now(self, message: SentMessage) -> str:
        """``message``'s text now (after any edit)."""
        raise NotImplementedError

    def press(self, message: SentMessage, label: str, user: str) -> Any:
        """``user`` presses button ``label`` under ``message``; returns a handle of the press."""
        raise NotImplementedError

    def private_answer(self, pressed: Any) -> str:
        """Block until the bot answered a press privately (only the presser sees it); its text."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    @contextlib.contextmanager
    def running(self) -> Iterator[Driver]:
        """Run the stand-in; kill every bot at the end and print its log (shown on failure)."""
        with self._standin() as api:
            self.api = api
            self.topic, self.chat, self.other = self._places()
            try:
                yield self
            finally:
                for bot in self.bots:
                    bot.stop()
                for bot in self.bots:
                    code = bot.process.returncode
                    print(f"===== {bot.log_path.name} (exit {code}) =====\n{bot.log()}")

    def start_bot(self, *args: str, wait_ready: bool = True) -> BotProcess:
        """Start the demo bot in this driver's mode; by default wait until it serves."""
        argv = [sys.executable, "-m", self.module, "--marker-dir", str(self.marker_dir)]
        argv += [*self._bot_args(), *args]
        before = self._before_start()
        self._started += 1
        log_path = self.tmp_path / f"bot-{self._started}.log"
        bot = BotProcess.start(argv, env=self._bot_env(), log_path=log_path)
        self.bots.append(bot)
        if wait_ready:
            self._wait_ready(bot, before)
        return bot

    def command(self, name: str, *args: float) -> str:
        """The text of a demo-bot command: ``command("work", 60)`` -> ``"/work 60"``."""
        return " ".join([f"{self.command_prefix}{name}", *(format(a, "g") for a in args)])

    def start_work(
        self,
        place: Place,
        seconds: float,
        durable: bool = True,
        *,
        user: str | None = None,
        command: str = "work",
    ) -> Place:
        """Start a turn of ``seconds`` in ``place``; return where its replies land.

        Returns once the handler runs and the platform will not redeliver the
        message; with ``durable``, also once its marker is on disk (a SIGKILL
        is covered only after the write-ahead, which a loaded machine delays).
        A short turn passes ``durable=False``: it may be over before the wait.
        ``user`` says it as another user; ``command="charge"`` runs the demo
        bot's ``@no_replay`` twin of ``work``. The turn is kept in :attr:`said`.
        """

        def working(m: SentMessage) -> bool:
            return place.holds(m) and m.text.startswith("working")

        answered = len([m for m in self.api.sent if working(m)])  # earlier turns here
        said = self.say(place, self.command(command, seconds), user)
        self.said.append(said)
        self.api.wait_for_sent(working, count=answered + 1)
        self.wait_delivered(said)
        if durable:
            wait_for_markers(self.marker_dir, self._marks(said.place))
        return said.place

    def serve_one(self, text: str = "ping") -> None:
        """The bot answers a new message in :attr:`other`: it is up and serving."""
        said = self.say(self.other, text)
        self.api.wait_for_sent(lambda m: said.place.holds(m) and m.text == f"echo: {text}")

    def posted(self, place: Place) -> list[SentMessage]:
        """What the bot posted in ``place`` for everyone to see, oldest first (no edits)."""
        return [m for m in self.api.sent if place.holds(m) and _new_and_public(m)]

    def notices(self, place: Place | None = None) -> list[SentMessage]:
        """Resume and give-up notices posted in ``place`` (None: anywhere)."""
        sent = (
            [m for m in self.api.sent if _new_and_public(m)]
            if place is None
            else self.posted(place)
        )
        return [m for m in sent if NOTICE in m.text or GIVE_UP in m.text]

    def wait_notice(self, place: Place, words: str = NOTICE) -> SentMessage:
        """Block until a notice containing ``words`` is posted in ``place``; return it."""
        [notice] = self.api.wait_for_sent(lambda m: place.holds(m) and words in m.text)
        return notice

    def wait_edited(self, message: SentMessage, words: str, timeout: float = 30.0) -> str:
        """Block until ``message`` was edited to contain ``words``; its text."""
        return wait_for(
            lambda: self.text_now(message) if words in self.text_now(message) else None,
            timeout,
            what=lambda: f"{words!r} in {self.text_now(message)!r}",
        )

    def markers(self) -> list[tuple[str, str | None]]:
        """``(chat, thread)`` of every marker in the marker directory."""
        return [(m.conversation.chat, m.conversation.thread) for m in markers_in(self.marker_dir)]

    @staticmethod
    def _marks(place: Place) -> Callable[[Any], bool]:
        return lambda m: (m.conversation.chat, m.conversation.thread) == place.conversation


def _new_and_public(message: SentMessage) -> bool:
    """A new message everyone sees: not an edit (Discord, Slack record those), not ephemeral."""
    return not (message.params.get("edit") or message.params.get("ephemeral"))
