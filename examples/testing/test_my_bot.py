"""A bot author's own restart test: kill the bot mid-handler, expect the notice.

Runs examples/bots/telegram_bot.py ("my_bot.py") against the loopback
Telegram stand-in with the fixtures of ``restart_guard.testing.fixtures``.
"""

import sys
from pathlib import Path

from restart_guard.testing.markers import wait_for_markers

MY_BOT = str(Path(__file__).parents[1] / "bots" / "telegram_bot.py")


def test_my_bot_resumes(telegram_api, marker_dir, bot_process):
    env = {
        "TELEGRAM_TOKEN": telegram_api.token,
        "TELEGRAM_API_URL": telegram_api.base_url,
        "RESTART_GUARD_DIR": str(marker_dir),
    }
    bot = bot_process([sys.executable, MY_BOT], env=env)
    telegram_api.wait_for_poll()
    update_id = telegram_api.inject_message(-1001234, "/think", message_thread_id=7)
    telegram_api.wait_for_sent(lambda m: m.text.startswith("Thinking"))
    telegram_api.wait_until_confirmed(update_id)
    wait_for_markers(marker_dir)  # the write-ahead landed (a few ms)
    bot.kill()  # as the OOM killer would
    bot = bot_process([sys.executable, MY_BOT], env=env)
    telegram_api.wait_for_sent(lambda m: "restarted" in m.text and m.thread == "7", timeout=30)
