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

from dataclasses import dataclass

__all__ = [
    "ADAPTERS",
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

    #: ``Conversation.platform`` and the prefix of the default marker folder.
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


TELEGRAM = AdapterSpec(
    platform="telegram",
    framework="python-telegram-bot",
    import_name="telegram",
    # 21.1 is the first release whose reply_text() in a forum topic stays in the topic;
    # on 21.0 a bot's own replies land in the general chat (the adapter's tests use them).
    requirements=(Requirement("python-telegram-bot", ">=21.1,<23"),),
    extra="telegram",
    module="restart_guard.adapters.telegram",
    classes=(("telegram.ext._application", "Application"),),
    objects="telegram.ext.Application",
    demo="restart_guard.demo.telegram_runner",
)
DISCORD = AdapterSpec(
    platform="discord",
    framework="discord.py",
    import_name="discord",
    # 2.6 is the first release whose ViewStore.add_task sees every view and
    # modal callback task; on 2.3–2.5 those callbacks would run untracked.
    requirements=(Requirement("discord.py", ">=2.6,<3"),),
    extra="discord",
    module="restart_guard.adapters.discord",
    classes=(("discord.client", "Client"),),
    objects="discord.Client / commands.Bot",
    demo="restart_guard.demo.discord_runner",
)
SLACK = AdapterSpec(
    platform="slack",
    framework="slack-bolt",
    import_name="slack_bolt",
    requirements=(Requirement("slack-bolt", ">=1.18,<2"), Requirement("slack-sdk", ">=3.26,<4")),
    extra="slack",
    module="restart_guard.adapters.slack",
    classes=(("slack_bolt.app.app", "App"), ("slack_bolt.app.async_app", "AsyncApp")),
    objects="slack_bolt.App / AsyncApp",
    demo="restart_guard.demo.slack_runner",
)

#: Every adapter, in the order ``protect()`` tries them.
ADAPTERS: tuple[AdapterSpec, ...] = (TELEGRAM, DISCORD, SLACK)

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
