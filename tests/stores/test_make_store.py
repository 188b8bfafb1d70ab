"""``make_store``: which store ``protect()`` options and the environment give a bot."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest

pytest.importorskip("redis")

from restart_guard import Settings, default_marker_dir, make_store
from restart_guard.stores.directory import DirectoryStore
from restart_guard.stores.fallback import FallbackStore
from restart_guard.stores.redis import DEFAULT_LEASE, RedisStore

from .conftest import RedisServer

URL = "redis://127.0.0.1:1/0"  # never connected to by these tests unless said
BOT = "4242"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RESTART_GUARD_URL", raising=False)
    monkeypatch.delenv("RESTART_GUARD_LEASE", raising=False)
    monkeypatch.setenv("RESTART_GUARD_DIR", str(tmp_path / "state"))


def namespace_of(platform: str, identity: str) -> str:
    digest = hashlib.sha256(f"{platform}:{identity}".encode()).hexdigest()[:12]
    return f"restart-guard:{platform}-{digest}"


def parts(store: object) -> tuple[RedisStore, DirectoryStore]:
    assert isinstance(store, FallbackStore), store
    assert isinstance(store.primary, RedisStore)
    assert isinstance(store.fallback, DirectoryStore)
    return store.primary, store.fallback


def test_a_redis_url_gives_redis_backed_by_the_marker_dir(tmp_path: Path) -> None:
    primary, fallback = parts(make_store(Settings(store=URL, marker_dir=tmp_path), "slack", BOT))
    assert primary.namespace == namespace_of("slack", BOT)
    assert primary.lease == DEFAULT_LEASE
    assert fallback.path == tmp_path


def test_without_marker_dir_the_fallback_is_the_default_directory() -> None:
    _, fallback = parts(make_store(Settings(store=URL), "telegram", BOT))
    assert fallback.path == default_marker_dir("telegram", BOT)
    # One folder and one namespace per bot, named by the same hash.
    assert fallback.path.name == namespace_of("telegram", BOT).removeprefix("restart-guard:")


def test_the_environment_url_is_used_with_or_without_marker_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESTART_GUARD_URL", "rediss://127.0.0.1:1/3")
    _, fallback = parts(make_store(Settings(), "discord", BOT))
    assert fallback.path == default_marker_dir("discord", BOT)
    _, fallback = parts(make_store(Settings(marker_dir=tmp_path), "discord", BOT))
    assert fallback.path == tmp_path
    # store= wins over the environment.
    primary, _ = parts(make_store(Settings(store="redis://127.0.0.1:2/5"), "discord", BOT))
    assert "127.0.0.1:2/5" in repr(primary)


def test_a_store_object_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTART_GUARD_URL", URL)
    store = RedisStore(URL, namespace="mine")
    assert make_store(Settings(store=store), "telegram", BOT) is store


def test_no_url_gives_a_directory(tmp_path: Path) -> None:
    store = make_store(Settings(marker_dir=tmp_path), "telegram", BOT)
    assert isinstance(store, DirectoryStore)
    assert store.path == tmp_path
    store = make_store(Settings(), "telegram", BOT)
    assert isinstance(store, DirectoryStore)
    assert store.path == default_marker_dir("telegram", BOT)


def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        make_store(Settings(store="postgres://db/x"), "telegram", BOT)


def test_the_lease_comes_from_the_environment_unless_given(
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("RESTART_GUARD_LEASE", "2.5")
    url = f"{redis_server.url}?socket_timeout=5"  # redis-py's own options still work
    primary, _ = parts(make_store(Settings(store=url, marker_dir=tmp_path), "telegram", BOT))
    assert primary.lease == 2.5
    assert primary._client.connection_pool.connection_kwargs["socket_timeout"] == 5.0
    primary.open("me")
    try:
        with contextlib.closing(redis_server.client()) as client:
            assert 0 < client.pttl(f"{primary.namespace}:lease:me") <= 2500
    finally:
        primary.close()
    assert RedisStore(URL, lease=3).lease == 3  # the argument wins
    for bad in ("soon", "0", "nan"):
        monkeypatch.setenv("RESTART_GUARD_LEASE", bad)
        assert RedisStore(URL).lease == DEFAULT_LEASE  # a typo must not stop the bot
    assert "ignoring $RESTART_GUARD_LEASE='nan'" in caplog.text
