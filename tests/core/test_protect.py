"""protect() / unprotect() on a real python-telegram-bot Application (never started)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import restart_guard
from restart_guard import AdapterNotAvailable, protect, unprotect

telegram_ext = pytest.importorskip("telegram.ext")
Application = telegram_ext.Application
ApplicationBuilder = telegram_ext.ApplicationBuilder

App = Any  # telegram.ext.Application[...]; generic parameters do not matter here


def build() -> App:
    return ApplicationBuilder().token("123:abc").build()


def is_guarded(app: App) -> bool:
    return isinstance(app, Application) and type(app) is not Application


def guard_layers(app: App) -> int:
    """How many classes named Application from telegram.ext sit in the MRO (1 = unguarded)."""
    return sum(
        1
        for c in type(app).__mro__
        if (c.__module__, c.__qualname__) == ("telegram.ext._application", "Application")
    )


# ------------------------------------------------------------------ the forms of use
def test_bare_decorator_on_a_factory() -> None:
    @protect
    def factory() -> App:
        return build()

    assert factory.__name__ == "factory"  # functools.wraps
    app = factory()
    assert is_guarded(app)
    assert type(app.update_queue) is not asyncio.Queue  # fetched updates are tracked
    assert isinstance(app.update_queue, asyncio.Queue)


def test_decorator_with_options_on_a_factory(tmp_path: Path) -> None:
    @protect(marker_dir=tmp_path / "m", drain_timeout=5, notice="back", max_attempts=2)
    def factory(token: str) -> App:
        return ApplicationBuilder().token(token).build()

    app = factory("123:abc")
    assert is_guarded(app)
    assert app.bot.token == "123:abc"  # arguments reach the factory


async def test_decorator_on_an_async_factory() -> None:
    @protect(drain_timeout=5)
    async def factory() -> App:
        await asyncio.sleep(0)
        return build()

    assert asyncio.iscoroutinefunction(factory)
    assert is_guarded(await factory())


def test_on_the_object_itself() -> None:
    app = build()
    assert protect(app) is app
    assert is_guarded(app)
    other = build()
    assert protect(drain_timeout=3)(other) is other
    assert is_guarded(other)


def test_protecting_twice_returns_the_same_object_with_one_guard() -> None:
    app = build()
    first = protect(app)
    second = protect(drain_timeout=1)(first)
    assert first is app
    assert second is app
    assert guard_layers(app) == 2
    queue_class = type(app.update_queue)
    protect(app)
    assert type(app.update_queue) is queue_class


async def test_protected_app_initializes_one_guard_in_marker_dir(tmp_path: Path) -> None:
    from restart_guard.testing.telegram import TelegramStandIn

    marker_dir = tmp_path / "markers"
    async with TelegramStandIn() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
        protect(marker_dir=marker_dir)(app)
        protect(marker_dir=marker_dir)(app)  # twice: still one guard, one journal
        async with app:
            assert [p.name.startswith("journal-") for p in marker_dir.iterdir()] == [True]
        assert list(marker_dir.iterdir()) == []  # shut down with nothing in flight


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("target", [object(), 42, "bot", [build]], ids=repr)
def test_unsupported_object_names_the_supported_frameworks(target: Any) -> None:
    with pytest.raises(TypeError) as info:
        protect(target)
    message = str(info.value)
    for name in ("python-telegram-bot", "discord.py", "slack-bolt"):
        assert name in message
    with pytest.raises(TypeError):
        protect(drain_timeout=5)(target)


def test_unsupported_class_is_rejected() -> None:
    with pytest.raises(TypeError, match="python-telegram-bot"):
        protect(dict)


def test_application_class_is_rejected_with_advice() -> None:
    with pytest.raises(TypeError, match="factory function or pass the object"):
        protect(Application)


def test_factory_returning_something_unsupported() -> None:
    @protect
    def factory() -> object:
        return {"not": "a bot"}

    with pytest.raises(TypeError) as info:
        factory()
    assert "factory" in str(info.value)
    assert "dict" in str(info.value)
    assert "python-telegram-bot" in str(info.value)


async def test_async_factory_returning_something_unsupported() -> None:
    @protect()
    async def factory() -> int:
        return 3

    with pytest.raises(TypeError, match="returned int"):
        await factory()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"drain_timeout": 0}, ValueError),
        ({"drain_timeout": -1}, ValueError),
        ({"drain_timeout": math.nan}, ValueError),
        ({"drain_timeout": math.inf}, ValueError),
        ({"drain_timeout": "20"}, ValueError),
        ({"drain_timeout": True}, ValueError),
        ({"max_age": 0}, ValueError),
        ({"max_age": dtm.timedelta(0)}, ValueError),
        ({"max_attempts": 0}, ValueError),
        ({"max_attempts": 1.5}, ValueError),
        ({"max_attempts": True}, ValueError),
        ({"notice": 5}, TypeError),
        ({"giveup_notice": b"bytes"}, TypeError),
        ({"on_resume": "not callable"}, TypeError),
    ],
    ids=repr,
)
def test_invalid_options_are_rejected_at_decoration(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        protect(**options)
    assert next(iter(options)) in str(info.value)
    with pytest.raises(error):
        protect(build(), **options)


def test_valid_option_forms() -> None:
    async def on_resume(m: restart_guard.Marker) -> None:
        return None

    def notice(m: restart_guard.Marker) -> str | None:
        return None

    for options in (
        {"drain_timeout": dtm.timedelta(seconds=8), "max_age": dtm.timedelta(hours=1)},
        {"notice": None, "giveup_notice": "gave up after {attempts}"},
        {"notice": notice, "on_resume": on_resume, "replay": True, "max_attempts": 1},
    ):
        assert is_guarded(protect(**options)(build()))


# ------------------------------------------------------------------ unprotect
def test_unprotect_restores_the_original_classes() -> None:
    app = build()
    queue_class = type(app.update_queue)
    protect(app)
    assert unprotect(app) is app
    assert type(app) is Application
    assert type(app.update_queue) is queue_class
    assert unprotect(app) is app  # idempotent
    assert type(app) is Application


async def test_install_uninstall_install_works(tmp_path: Path) -> None:
    from restart_guard.testing.telegram import TelegramStandIn

    marker_dir = tmp_path / "markers"
    async with TelegramStandIn() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
        protect(marker_dir=marker_dir)(app)
        unprotect(app)
        async with app:  # unguarded: no store is opened
            assert not marker_dir.exists()
        protect(marker_dir=marker_dir)(app)
        assert is_guarded(app)
        assert guard_layers(app) == 2
        async with app:
            assert len(list(marker_dir.iterdir())) == 1
        unprotect(app)
        assert type(app) is Application


def test_unprotect_of_unsupported_object_returns_it() -> None:
    thing = object()
    assert unprotect(thing) is thing


# ------------------------------------------------------------------ framework missing
MISSING_PTB = textwrap.dedent(
    """
    import sys
    sys.modules["telegram"] = None  # as if python-telegram-bot were not installed
    import restart_guard

    try:
        import restart_guard.adapters.telegram
    except restart_guard.AdapterNotAvailable as exc:
        print("import:", exc)

    class Application:  # what protect() sees of a PTB Application, by name only
        pass

    Application.__module__ = "telegram.ext._application"
    Application.__qualname__ = "Application"
    try:
        restart_guard.protect(Application())
    except restart_guard.AdapterNotAvailable as exc:
        print("protect:", isinstance(exc, ImportError), exc)
    """
)


def test_missing_framework_names_the_pip_command() -> None:
    result = subprocess.run(
        [sys.executable, "-c", MISSING_PTB], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("import: ")
    assert lines[1].startswith("protect: True ")
    for text in lines:
        assert 'pip install "restart-guard[telegram]"' in text
        assert "python-telegram-bot" in text


def test_adapter_not_available_is_an_import_error() -> None:
    assert issubclass(AdapterNotAvailable, ImportError)
