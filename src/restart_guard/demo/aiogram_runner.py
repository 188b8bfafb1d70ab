"""``restart-guard demo --platform aiogram``: the Telegram demo with a real aiogram 3 bot."""

from __future__ import annotations

from .telegram_runner import TelegramFramework, run_telegram_demo

__all__ = ["run_demo"]

AIOGRAM = TelegramFramework(
    "aiogram",
    "restart_guard.demo.aiogram_bot",
    "url",
    "Received SIGTERM signal",
    "aiogram,testing",
)


def run_demo() -> int:
    """Run both rounds; return the process exit status (0 when both behaved)."""
    return run_telegram_demo(AIOGRAM)
