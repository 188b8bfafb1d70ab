"""``restart-guard demo --platform aiogram``: the Telegram demo with a real aiogram 3 bot."""

from __future__ import annotations

from .._registry import AIOGRAM
from .telegram_runner import TelegramFramework, run_telegram_demo

__all__ = ["run_demo"]

FRAMEWORK = TelegramFramework(
    AIOGRAM, "restart_guard.demo.aiogram_bot", "url", "Received SIGTERM signal"
)


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    return run_telegram_demo(FRAMEWORK)
