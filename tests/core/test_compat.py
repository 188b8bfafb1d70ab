"""Supported framework releases: the range check and the hook-point check protect() runs.

The hook points are checked against the frameworks really installed (the CI
matrix runs this file against the lowest and highest supported release of
each); a release outside the range is simulated by narrowing the declared
range, never by faking the framework.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from restart_guard.adapters._hooks import HOOKS

import restart_guard
from restart_guard import UnsupportedFrameworkVersion
from restart_guard import _compat as compat
from restart_guard._compat import FRAMEWORKS, HookPoint, Requirement, hook_problem, in_range

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _fresh_findings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(compat.ALLOW_UNTESTED_ENV, raising=False)
    compat._findings.cache_clear()
    compat._warned.clear()
    yield
    compat._findings.cache_clear()
    compat._warned.clear()


@pytest.mark.parametrize(
    ("version", "supported", "expected"),
    [
        ("2.6.0", ">=2.6,<3", True),
        ("2.6", ">=2.6.0,<3", True),
        ("2.5.2", ">=2.6,<3", False),
        ("3.0.0", ">=2.6,<3", False),
        ("2.99.1", ">=2.6,<3", True),
        ("22.8", ">=21,<23", True),
        ("23.0b1", ">=21,<23", False),
        ("1.18.0", ">=1.18, <2", True),
        ("1.17.9", ">=1.18,<2", False),
        ("3.26.0", "==3.26", True),
        ("3.26.1", "!=3.26.1", False),
    ],
)
def test_version_ranges(version: str, supported: str, expected: bool) -> None:
    assert in_range(version, supported) is expected


def test_a_range_it_cannot_read_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match=r"~=2\.6"):
        in_range("2.6", "~=2.6")


# ------------------------------------------------ hook points, real frameworks
_ALL_HOOKS = [
    pytest.param(platform, hook, id=f"{platform}:{hook.target}")
    for platform, hooks in HOOKS.items()
    for hook in hooks
]


@pytest.mark.parametrize(("platform", "hook"), _ALL_HOOKS)
def test_every_declared_hook_point_exists_in_the_installed_framework(
    platform: str, hook: HookPoint
) -> None:
    if importlib.util.find_spec(FRAMEWORKS[platform].import_name) is None:
        pytest.skip(f"{FRAMEWORKS[platform].framework} is not installed")
    assert hook_problem(hook) is None


@pytest.mark.parametrize("platform", sorted(FRAMEWORKS))
def test_the_installed_framework_passes_the_check(platform: str) -> None:
    if importlib.util.find_spec(FRAMEWORKS[platform].import_name) is None:
        pytest.skip(f"{FRAMEWORKS[platform].framework} is not installed")
    compat.check_framework(platform)  # no error, no warning needed: CI tests this release


class _Shapes:
    def method(self, request: object, response: object) -> None: ...

    async def coroutine(self, request: object) -> None: ...


_HERE = f"{__name__}:_Shapes"


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        (HookPoint(f"{_HERE}.method", "function", ("self", "request")), None),
        (HookPoint(f"{_HERE}.coroutine", "coroutine", ("self", "request")), None),
        (HookPoint(f"{_HERE}.gone", "function"), "is missing"),
        (HookPoint("no_such_module_anywhere:Thing", "class"), "is missing"),
        (HookPoint(f"{_HERE}.method", "coroutine"), "no longer a coroutine"),
        (HookPoint(f"{_HERE}.coroutine", "function"), "no longer a function"),
        (
            HookPoint(f"{_HERE}.method", "function", ("self", "req")),
            "takes (self, request, response), expected (self, req, ...)",
        ),
    ],
)
def test_a_moved_or_reshaped_hook_point_is_named(hook: HookPoint, problem: str | None) -> None:
    found = hook_problem(hook)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert hook.target in found


# -------------------------------------------- refusal at protect() time
def _narrow_range(monkeypatch: pytest.MonkeyPatch, platform: str, supported: str) -> None:
    support = FRAMEWORKS[platform]
    first = Requirement(support.requirements[0].distribution, supported)
    narrowed = type(support)(
        support.framework, support.import_name, (first, *support.requirements[1:])
    )
    monkeypatch.setitem(FRAMEWORKS, platform, narrowed)


def _telegram_app() -> object:
    telegram_ext = pytest.importorskip("telegram.ext")
    return telegram_ext.ApplicationBuilder().token("1:abc").build()


def _aiogram_dispatcher() -> object:
    aiogram = pytest.importorskip("aiogram")
    return aiogram.Dispatcher()


#: A bot object of each Telegram framework (the other platforms' objects need a token
#: or a loop to build; the check before the adapter import is the same for every row).
_BOTS = [
    pytest.param("telegram", _telegram_app, id="python-telegram-bot"),
    pytest.param("aiogram", _aiogram_dispatcher, id="aiogram"),
]


@pytest.mark.parametrize(("platform", "make_bot"), _BOTS)
def test_a_release_outside_the_range_is_refused_at_protect_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, platform: str, make_bot: Callable[[], object]
) -> None:
    bot = make_bot()
    support = FRAMEWORKS[platform]
    _narrow_range(monkeypatch, platform, ">=99,<100")
    with pytest.raises(UnsupportedFrameworkVersion) as raised:
        restart_guard.protect()(bot)
    message = str(raised.value)
    version = compat._installed(support.requirements[0].distribution)
    assert f"{support.framework} {version}" in message
    assert f"{support.requirements[0].distribution}>=99,<100" in message
    assert "pip install" in message
    assert "upgrade restart-guard" in message
    assert compat.ALLOW_UNTESTED_ENV in message
    assert raised.value.framework == support.framework
    assert isinstance(raised.value, restart_guard.AdapterNotAvailable)


@pytest.mark.parametrize(("platform", "make_bot"), _BOTS)
def test_an_operator_can_accept_an_untested_release_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    platform: str,
    make_bot: Callable[[], object],
) -> None:
    _narrow_range(monkeypatch, platform, ">=99,<100")
    monkeypatch.setenv(compat.ALLOW_UNTESTED_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="restart_guard"):
        first = restart_guard.protect()(make_bot())
        second = restart_guard.protect()(make_bot())
    warnings = [r for r in caplog.records if "untested" in r.getMessage()]
    assert len(warnings) == 1
    assert compat.ALLOW_UNTESTED_ENV in warnings[0].getMessage()
    assert type(first).__name__ == type(second).__name__ == type(make_bot()).__name__
    restart_guard.unprotect(first)
    restart_guard.unprotect(second)


def test_a_missing_hook_point_is_refused_even_when_untested_releases_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _telegram_app()
    moved = HookPoint("telegram.ext._application:Application.process_update_renamed", "coroutine")
    monkeypatch.setitem(HOOKS, "telegram", (*HOOKS["telegram"], moved))
    monkeypatch.setenv(compat.ALLOW_UNTESTED_ENV, "1")
    with pytest.raises(UnsupportedFrameworkVersion, match="process_update_renamed is missing"):
        restart_guard.protect()(app)


def test_a_fork_class_is_refused_naming_the_fork_and_the_supported_libraries() -> None:
    # nextcord and disnake classes live under their own import name.
    fork_client = type("Client", (), {"__module__": "nextcord.client"})
    for target in (fork_client, fork_client()):
        with pytest.raises(UnsupportedFrameworkVersion) as raised:
            restart_guard.protect()(target)
        assert "nextcord" in str(raised.value)
        assert "discord.py" in str(raised.value)


# ------------------------------------------- one place for the range data
@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_pyproject_extras_declare_the_supported_ranges() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    def clauses(spec: str) -> set[str]:
        return {c.replace(" ", "") for c in spec.split(",")}

    for platform, support in FRAMEWORKS.items():
        declared = {}
        for line in extras[platform]:
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", line).groups()  # type: ignore[union-attr]
            declared[name.lower()] = clauses(spec)
        for req in support.requirements:
            assert declared.get(req.distribution) == clauses(req.supported), platform


def test_the_supported_versions_page_states_every_range() -> None:
    page = (ROOT / "docs" / "supported-versions.md").read_text()
    for support in FRAMEWORKS.values():
        for req in support.requirements:
            assert f"{req.distribution} {req.supported}" in page
    assert compat.ALLOW_UNTESTED_ENV in page
