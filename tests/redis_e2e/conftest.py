"""Demo bots (``restart_guard.demo.telegram_bot --store redis://…``) against one real Redis.

Every bot gets a 1 s lease (``$RESTART_GUARD_LEASE``) and a re-claim every
0.2 s (``$RESTART_GUARD_RECLAIM_INTERVAL``), so that what takes 30 s in
production — a killed process's markers becoming claimable, and being
claimed — takes about a second here.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis")
pytest.importorskip("telegram")

from restart_guard import Conversation, Settings, make_store
from restart_guard.demo._options import bot_argv
from restart_guard.stores.base import StoredMarker
from restart_guard.stores.directory import DirectoryStore
from restart_guard.stores.redis import RedisStore
from restart_guard.testing.process import BotProcess
from restart_guard.testing.telegram import TelegramStandIn
from stores.conftest import RedisServer, redis_binary  # noqa: F401  (a fixture)

TOKEN = "777001:REDIS-E2E"
LEASE = "1"
RECLAIM_INTERVAL = "0.2"


def is_notice(text: str) -> bool:
    """The resume notice (not the bot's own replies)."""
    return "restarted" in text


class SharedRedis:
    """The test's redis-server (append-only, appendfsync always) and views of the bot's keys.

    The bot is the Telegram demo bot of ``TOKEN`` unless ``platform`` and
    ``identity`` (what its adapter names the marker folder after) say otherwise.
    """

    def __init__(
        self,
        server: RedisServer,
        marker_dir: Path,
        platform: str = "telegram",
        identity: str = TOKEN.split(":")[0],
    ) -> None:
        self.server = server
        self.marker_dir = marker_dir
        # The namespace protect() gives the bot: derived exactly as the bot derives it.
        store = make_store(Settings(store=server.url, marker_dir=marker_dir), platform, identity)
        self.namespace: str = store.primary.namespace  # type: ignore[attr-defined]
        self._client = server.client(decode_responses=True)

    @property
    def url(self) -> str:
        """What the bots get as ``--store``."""
        return self.server.url

    def markers(self) -> list[StoredMarker]:
        """The bot's markers in Redis (read-only)."""
        return RedisStore(self._client, namespace=self.namespace).load()

    def keys(self) -> set[str]:
        """Conversation keys of the markers in Redis."""
        return {s.marker.key for s in self.markers()}

    def leases(self) -> list[str]:
        """Lease keys alive now: one per bot process that Redis considers running."""
        return sorted(self._client.scan_iter(match=f"{self.namespace}:lease:*"))

    def claim_scripts_run(self) -> int:
        """How many times the claim script (or the close script) ran on this server."""
        stats = self._client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    def local_keys(self) -> set[str]:
        """Conversation keys of the markers in the local fallback directory."""
        return {s.marker.key for s in DirectoryStore(self.marker_dir).load()}

    def kill(self) -> None:
        """SIGKILL the server (its append-only file keeps every acknowledged write)."""
        self._client.close()
        self.server.kill()

    def start(self) -> None:
        """Start it again on the same port, from its append-only file."""
        self.server.start()

    def close(self) -> None:
        self._client.close()
        self.server.kill()


@pytest.fixture
def redis_db(redis_binary: str, tmp_path: Path) -> Iterator[SharedRedis]:  # noqa: F811
    """A redis-server of this test's own and the bots' shared local fallback directory."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(redis_binary, directory, appendfsync="always")
    server.start()
    db = SharedRedis(server, tmp_path / "markers")
    yield db
    db.close()


@pytest.fixture
def standins() -> Iterator[Callable[[], TelegramStandIn]]:
    """``make()`` → one more Telegram stand-in for the same bot token."""
    with contextlib.ExitStack() as stack:

        def make() -> TelegramStandIn:
            return stack.enter_context(TelegramStandIn.running(token=TOKEN))

        yield make


class Bots:
    """Start demo bots on a stand-in and the shared Redis; kill them all at the end."""

    def __init__(self, redis_db: SharedRedis, tmp_path: Path) -> None:
        self.redis = redis_db
        self.tmp = tmp_path
        self.started: list[BotProcess] = []

    def launch(self, api: TelegramStandIn, *args: str) -> BotProcess:
        """Start a bot without waiting for it (so that two start at the same instant)."""
        argv = bot_argv(
            "restart_guard.demo.telegram_bot",
            *("--api-url", api.base_url, "--token", api.token, "--store", self.redis.url),
            *args,
            marker_dir=self.redis.marker_dir,
        )
        bot = BotProcess.start(
            argv,
            env={"RESTART_GUARD_LEASE": LEASE, "RESTART_GUARD_RECLAIM_INTERVAL": RECLAIM_INTERVAL},
            log_path=self.tmp / f"bot-{len(self.started) + 1}.log",
        )
        self.started.append(bot)
        return bot

    def start(self, api: TelegramStandIn, *args: str) -> BotProcess:
        """Start a bot and return once it polls (start-up recovery comes before polling)."""
        since = time.monotonic()
        bot = self.launch(api, *args)
        wait_ready(bot, api, since)
        return bot

    def stop_all(self) -> None:
        for bot in self.started:
            bot.stop()

    def report(self, last: int = 6) -> None:
        # Shown by pytest only when the test failed.
        for bot in self.started[-last:]:
            print(f"===== {bot.log_path.name} (exit {bot.process.returncode}) =====\n{bot.log()}")


def wait_ready(bot: BotProcess, api: TelegramStandIn, since: float) -> None:
    """The bot has done its start-up recovery and polls ``api``."""
    bot.wait_for_log("Application started", timeout=30)
    api.wait_for_poll(timeout=30, since=since)


@pytest.fixture
def bots(redis_db: SharedRedis, tmp_path: Path) -> Iterator[Bots]:
    made = Bots(redis_db, tmp_path)
    yield made
    made.stop_all()
    made.report()


def start_work(
    api: TelegramStandIn, chat: int, seconds: float = 60, thread: int | None = None
) -> Conversation:
    """Start ``/work`` in a chat; return once it runs and Telegram will not redeliver it."""
    update_id = api.inject_message(chat, f"/work {seconds:g}", message_thread_id=thread)
    api.wait_for_sent(lambda m: m.chat == str(chat) and m.text.startswith("working"), timeout=20)
    api.wait_until_confirmed(update_id, timeout=20)
    return Conversation("telegram", str(chat), None if thread is None else str(thread))


def serve_one(api: TelegramStandIn, chat: int, text: str = "ping") -> None:
    """The bot answers a new message: it is up and serving."""
    api.inject_message(chat, text)
    api.wait_for_sent(lambda m: m.chat == str(chat) and m.text == f"echo: {text}", timeout=20)


def notices(*apis: TelegramStandIn) -> list[tuple[str, str | None]]:
    """(chat, thread) of every notice any of ``apis`` recorded."""
    return [(m.chat, m.thread) for api in apis for m in api.sent if is_notice(m.text)]


def where(conversation: Conversation) -> tuple[str, str | None]:
    return (conversation.chat, conversation.thread)


def error_lines(bot: BotProcess) -> list[str]:
    """restart-guard's ERROR lines in a bot's output."""
    return [line for line in bot.log().splitlines() if " restart_guard ERROR " in line]


def sigterm_until_marked(bot: BotProcess) -> str:
    """SIGTERM; return the pre-drain line once the bot printed it (the drain then runs)."""
    bot.send_signal(signal.SIGTERM)
    output = bot.wait_for_log("marked before the drain", timeout=30)
    [line] = [line for line in output.splitlines() if "marked before the drain" in line]
    return line
