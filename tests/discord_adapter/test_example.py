"""The example bot, run as a user would (its demo: tests/test_examples.py)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from restart_guard.testing.discord import DiscordStandIn
from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.process import BotProcess

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "examples" / "bots" / "discord_bot.py"
TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.example.secret-part"


def test_example_bot_resumes_in_its_thread_with_default_marker_dir(
    api: DiscordStandIn, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    env = {**api.env_vars(), "DISCORD_TOKEN": TOKEN, "RESTART_GUARD_DIR": str(state_dir)}

    def start(run: int) -> BotProcess:
        bot = BotProcess.start(
            [sys.executable, str(EXAMPLE)], env=env, log_path=tmp_path / f"example-{run}.log"
        )
        # IDENTIFY is answered with READY and the guilds before anything injected later.
        api.wait_for_identify(timeout=30, count=run)
        return bot

    bot = start(1)
    try:
        api.inject_message(api.thread_id, "!think")
        api.wait_for_sent(lambda m: m.text.startswith("Thinking"))
        # One folder per bot, named after its public id: the markers are there.
        [folder] = state_dir.iterdir()
        assert folder.name.startswith("discord-")
        wait_for_markers(folder, timeout=5.0)  # the write-ahead is asynchronous
        assert bot.kill() == -signal.SIGKILL

        bot = start(2)
        [notice] = api.wait_for_sent(lambda m: "restarted" in m.text)
        assert notice.chat == str(api.thread_id)
        bot.send_signal(signal.SIGTERM)
        assert bot.wait_exit(30) == 0  # run() returned after the drain
        for path in folder.rglob("*"):
            assert TOKEN.split(".")[-1].encode() not in path.read_bytes()
    finally:
        bot.stop()
        print(bot.log())
