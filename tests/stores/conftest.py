"""Real stores on real storage: a temporary directory, and a real ``redis-server``.

``store_factory`` is parametrized over ``"directory"`` and ``"redis"``; each
call returns a new store object over the same storage (a new process, as far
as the store can tell). The Redis server is started here on a free loopback
port in a temporary directory, never as a system service.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

from restart_guard.stores.base import Store
from restart_guard.stores.directory import DirectoryStore
from restart_guard.testing.wait import eventually

if TYPE_CHECKING:
    import redis

INSTALL_HINT = "apt-get install -y redis-server"


def _unavailable(message: str) -> None:
    """Skip locally; fail under CI, which must run every store test."""
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{message} (CI=true: the Redis store tests must not be skipped)", pytrace=False
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path of ``redis-server``; skips (or fails under CI) when it is not installed."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("redis-py is missing: pip install 'restart-guard[redis]'")
    path = shutil.which("redis-server")
    if path is None:
        _unavailable(f"redis-server not found; install it to run these tests: {INSTALL_HINT}")
    assert path is not None
    return path


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process of our own, restartable on the same port and directory.

    ``appendfsync`` None runs without persistence; "always" or "everysec" turns
    the append-only file on.
    """

    def __init__(self, binary: str, directory: Path, appendfsync: str | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.appendfsync = appendfsync
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):
            port = self.port if fixed else free_port()
            args = [
                self.binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
                "--daemonize", "no",
            ]  # fmt: skip
            if self.appendfsync is None:
                args += ["--appendonly", "no"]
            else:
                args += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if _wait_ready(process, port):
                self.process, self.port = process, port
                return
            process.kill()
            process.wait()
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on port {port}:\n{log}")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self, **options: Any) -> redis.Redis:
        """A client of this server (closed by the caller)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, **options)


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> bool:
    """Whether the server came up and answers PING (False: it exited or stayed silent)."""

    def answers() -> bool:
        if process.poll() is not None:
            raise ChildProcessError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")  # not -LOADING: the AOF has been read
        except OSError:
            return False

    try:
        return eventually(answers, timeout, what=f"redis-server to answer on port {port}")
    except (ChildProcessError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """One server shared by the tests that never stop it (each uses its own namespace)."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


class Killable(Protocol):
    def kill(self) -> None: ...


K = TypeVar("K", bound=Killable)


def killed_at_the_end(start: Callable[..., K]) -> Iterator[Callable[..., K]]:
    """For a fixture to ``yield from``: ``start``, and every process it started is killed
    when the test is over."""
    started: list[K] = []

    def start_one(*args: Any, **kwargs: Any) -> K:
        process = start(*args, **kwargs)
        started.append(process)
        return process

    yield start_one
    for process in started:
        process.kill()


@pytest.fixture
def redis_server_factory(redis_binary: str, tmp_path: Path) -> Iterator[Any]:
    """``make(appendfsync=None)`` → a started server of this test's own, killed at the end."""
    numbers = itertools.count()

    def make(appendfsync: str | None = None) -> RedisServer:
        directory = tmp_path / f"redis-{next(numbers)}"
        directory.mkdir()
        server = RedisServer(redis_binary, directory, appendfsync)
        server.start()
        return server

    yield from killed_at_the_end(make)


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"rg-test-{uuid.uuid4().hex[:12]}"


class StoreFactory:
    """Makes stores over one storage location; each call is "another process"."""

    kind = ""

    def __init__(self) -> None:
        self.made: list[Store] = []

    def __call__(self) -> Store:
        store = self._make()
        self.made.append(store)
        return store

    def _make(self) -> Store:
        raise NotImplementedError

    def add_garbage(self, owner: str) -> None:
        """Put an unreadable record and one of an unknown format version among ``owner``'s."""
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Whatever the stores left in the storage (file or key names)."""
        raise NotImplementedError

    def close_all(self) -> None:
        for store in self.made:
            with contextlib.suppress(Exception):
                store.close()


_UNKNOWN_VERSION = {
    "v": 99,
    "key": "0" * 32,
    "conversation": {"platform": "telegram", "chat": "1"},
    "started_at": 1.0,
}


class DirectoryFactory(StoreFactory):
    kind = "directory"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _make(self) -> Store:
        return DirectoryStore(self.path)

    def add_garbage(self, owner: str) -> None:
        needle = f'"owner":{json.dumps(owner)}'.encode()
        journals = [p for p in self.path.glob("journal-*.log") if needle in p.read_bytes()]
        assert len(journals) == 1, f"expected one journal of {owner}, found {journals}"
        body = json.dumps({"op": "put", **_UNKNOWN_VERSION}).encode()
        with journals[0].open("ab") as journal:
            journal.write(b"deadbeef this is not a record\n")
            journal.write(b"%08x %s\n" % (zlib.crc32(body), body))

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.path)) if self.path.exists() else []


class RedisFactory(StoreFactory):
    kind = "redis"

    def __init__(self, server: RedisServer, namespace: str, lease: float = 5.0) -> None:
        super().__init__()
        self.server = server
        self.namespace = namespace
        self.lease = lease

    def _make(self) -> Store:
        from restart_guard.stores.redis import RedisStore

        return RedisStore(self.server.url, namespace=self.namespace, lease=self.lease)

    def add_garbage(self, owner: str) -> None:
        with contextlib.closing(self.server.client()) as client:
            key = f"{self.namespace}:m:{owner}"
            assert client.exists(key), f"{owner} holds no markers"
            client.hset(
                key,
                mapping={
                    "f" * 32: b"\x00this is not a record",
                    "0" * 32: json.dumps(_UNKNOWN_VERSION),
                },
            )

    def leftovers(self) -> list[str]:
        with contextlib.closing(self.server.client(decode_responses=True)) as client:
            return sorted(client.scan_iter(match=f"{self.namespace}:*"))


@pytest.fixture(params=["directory", pytest.param("redis", marks=pytest.mark.external_service)])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> Iterator[StoreFactory]:
    """New stores over one directory, or over one namespace of a real Redis."""
    factory: StoreFactory
    if request.param == "directory":
        factory = DirectoryFactory(tmp_path / "markers")
    else:
        factory = RedisFactory(request.getfixturevalue("redis_server"), namespace)
    yield factory
    factory.close_all()
