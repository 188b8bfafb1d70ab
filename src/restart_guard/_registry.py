"""The one table of adapters: which framework each serves, and how to find it.

Data only: nothing here imports a framework, so ``protect()`` can decide
which adapter an object needs (by class name along its MRO), the CLI can
list the platforms it has a demo for, and an error can name the pip command,
all without python-telegram-bot, discord.py or slack-bolt installed.

Adding a platform adds one row here (see CONTRIBUTING.md); the adapter
module it names exposes ``ADAPTER`` (:class:`restart_guard._adapter.Adapter`),
whose ``spec`` is that row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ADAPTERS",
    "AIOGRAM",
    "DISCORD",
    "SLACK",
    "SUPPORTED",
    "TELEGRAM",
    "AdapterSpec",
    "Requirement",
    "spec_for_class",
    "spec_for_platform",
]


@dataclass(frozen=True)
class Requirement:
    """A distribution and the range of its releases CI tests (``">=A,<B"``)."""

    distribution: str
    supported: str


@dataclass(frozen=True)
class AdapterSpec:
    """One framework restart-guard can guard, and where its adapter lives."""

    #: The row's name (``restart-guard demo --platform``, messages); also
    #: ``Conversation.platform`` and the default marker folder's prefix, unless
    #: ``shares_keys_with`` names another row.
    platform: str
    #: The framework's name as users know it, for messages.
    framework: str
    #: The framework's top-level import name; a fork may install itself under it too.
    import_name: str
    #: The distributions it needs and the releases CI tests (the pins of its pip extra),
    #: checked by ``protect()`` before the adapter is imported (``_compat``).
    requirements: tuple[Requirement, ...]
    #: ``pip install "restart-guard[<extra>]"`` installs the framework.
    extra: str
    #: The adapter module; it exposes ``ADAPTER``.
    module: str
    #: ``(module, qualname)`` of the framework classes the adapter takes.
    classes: tuple[tuple[str, str], ...]
    #: How the objects it takes are written in a message.
    objects: str
    #: The ``restart-guard demo --platform`` runner module, None without a demo.
    demo: str | None = None
    #: The row whose conversation keys and marker folders this adapter uses too
    #: (aiogram: "telegram", so a bot moved between the two resumes either's markers).
    shares_keys_with: str | None = None

    @property
    def conversation_platform(self) -> str:
        """``Conversation.platform`` of this adapter's conversations, its marker folder's prefix."""
        return self.shares_keys_with or self.platform

    @property
    def distribution(self) -> str:
        """The framework's own distribution (the first requirement)."""
        return self.requirements[0].distribution

    @property
    def supported(self) -> str:
        """The framework's tested range (the first requirement's)."""
        return self.requirements[0].supported

    def pip_install(self, *more_extras: str) -> str:
        """The command that installs this framework (and ``more_extras``) for restart-guard."""
        return f'pip install "restart-guard[{",".join((self.extra, *more_extras))}]"'

    def missing(self, detail: object = None) -> str:
        """The message of :class:`~restart_guard.AdapterNotAvailable` for this adapter."""
        tail = f" ({detail})" if detail else ""
        return (
            f"restart-guard's {self.platform} adapter needs {self.framework}: "
            f"{self.pip_install()}{tail}"
        )


def _row(
    platform: str,
    requirements: str,
    classes: str,
    *,
    objects: str,
    shares_keys_with: AdapterSpec | None = None,
) -> AdapterSpec:
    """One row of the table below, the rest by convention.

    ``requirements``: space-separated pins, the framework's own first (it
    names the framework); ``classes``: space-separated ``module:Name`` of the
    framework classes the adapter takes (the first one's package is the
    import name). The pip extra is the platform's name, the adapter module
    ``restart_guard.adapters.<platform>``, the demo runner
    ``restart_guard.demo.<platform>_runner``.
    """
    needs = tuple(_requirement(pin) for pin in requirements.split())
    taken = tuple(
        (target.partition(":")[0], target.partition(":")[2]) for target in classes.split()
    )
    return AdapterSpec(
        platform=platform,
        framework=needs[0].distribution,
        import_name=taken[0][0].partition(".")[0],
        requirements=needs,
        extra=platform,
        module=f"restart_guard.adapters.{platform}",
        classes=taken,
        objects=objects,
        demo=f"restart_guard.demo.{platform}_runner",
        shares_keys_with=None if shares_keys_with is None else shares_keys_with.platform,
    )


def _requirement(pin: str) -> Requirement:
    """``"aiogram>=3.2,<4"`` → ``Requirement("aiogram", ">=3.2,<4")``."""
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)([<>=!].*)", pin)
    if match is None:
        raise ValueError(f"not a pinned requirement: {pin!r}")
    return Requirement(match.group(1), match.group(2))


TELEGRAM = _row(
    "telegram",
    # 21.1 is the first release whose reply_text() in a forum topic stays in the topic;
    # on 21.0 a bot's own replies land in the general chat (the adapter's tests use them).
    "python-telegram-bot>=21.1,<23",
    "telegram.ext._application:Application",
    objects="telegram.ext.Application",
)
DISCORD = _row(
    "discord",
    # 2.6 is the first release whose ViewStore.add_task sees every view and
    # modal callback task; on 2.3–2.5 those callbacks would run untracked.
    "discord.py>=2.6,<3",
    "discord.client:Client",
    objects="discord.Client / commands.Bot",
)
SLACK = _row(
    "slack",
    "slack-bolt>=1.18,<2 slack-sdk>=3.26,<4",
    "slack_bolt.app.app:App slack_bolt.app.async_app:AsyncApp",
    objects="slack_bolt.App / AsyncApp",
)
AIOGRAM = _row(
    "aiogram",
    "aiogram>=3.2,<4",
    "aiogram.dispatcher.dispatcher:Dispatcher",
    objects="aiogram.Dispatcher",
    shares_keys_with=TELEGRAM,  # a bot moved between the two resumes either's markers
)

#: Every adapter, in the order ``protect()`` tries them.
ADAPTERS: tuple[AdapterSpec, ...] = (TELEGRAM, DISCORD, SLACK, AIOGRAM)

#: What ``protect()`` takes, for its error messages.
SUPPORTED = ", ".join(f"{spec.objects} ({spec.framework})" for spec in ADAPTERS)


def spec_for_class(cls: type) -> AdapterSpec | None:
    """The adapter for instances of ``cls``, matched by name along its MRO (no import)."""
    names = {(c.__module__, c.__qualname__) for c in cls.__mro__}
    for spec in ADAPTERS:
        if names.intersection(spec.classes):
            return spec
    return None


def spec_for_platform(platform: str) -> AdapterSpec:
    """The row of ``platform``; KeyError names the platforms there are."""
    for spec in ADAPTERS:
        if spec.platform == platform:
            return spec
    raise KeyError(
        f"no adapter for platform {platform!r}; there are: "
        + ", ".join(spec.platform for spec in ADAPTERS)
    )
