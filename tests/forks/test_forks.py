"""discord.py forks are refused at protect(), naming the fork and what is supported.

py-cord installs itself as the ``discord`` package (so its ``Client`` looks
like discord.py's by module name); nextcord under its own name. Neither has
the internals the discord adapter hooks (``setup_hook``, ``app_commands``'
``CommandTree``, ``ViewStore.add_task``) and both stop the event loop on
SIGTERM, so a guarded bot would run unguarded. These tests need the fork
installed: ``.ci/matrix`` runs them in a venv with py-cord and nextcord.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata

import pytest

import restart_guard
from restart_guard import UnsupportedFrameworkVersion
from restart_guard import _compat as compat


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(autouse=True)
def _fresh_findings() -> Iterator[None]:
    compat._findings.cache_clear()
    yield
    compat._findings.cache_clear()


def _assert_refused(target: object, fork: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not even an operator's "allow untested" lets a fork through.
    monkeypatch.setenv(compat.ALLOW_UNTESTED_ENV, "1")
    with pytest.raises(UnsupportedFrameworkVersion) as raised:
        restart_guard.protect()(target)
    message = str(raised.value)
    assert f"{fork} {metadata.version(fork)}" in message
    assert "discord.py" in message
    assert "slack-bolt" in message
    assert raised.value.framework == fork


@pytest.mark.skipif(not _installed("py-cord"), reason="py-cord is not installed")
def test_a_py_cord_bot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import discord  # py-cord's

    _assert_refused(discord.Client(intents=discord.Intents.default()), "py-cord", monkeypatch)
    _assert_refused(discord.Bot, "py-cord", monkeypatch)

    def build() -> discord.Client:
        return discord.Client(intents=discord.Intents.default())

    with pytest.raises(UnsupportedFrameworkVersion, match="py-cord"):
        restart_guard.protect()(build)()


@pytest.mark.skipif(not _installed("nextcord"), reason="nextcord is not installed")
def test_a_nextcord_bot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import nextcord

    _assert_refused(nextcord.Client(intents=nextcord.Intents.default()), "nextcord", monkeypatch)
    _assert_refused(nextcord.Client, "nextcord", monkeypatch)
