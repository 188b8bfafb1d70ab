"""What the documentation shows runs as a user runs it: example bots, demos, the test example.

The telegram, aiogram and discord example bots are run by their adapters' tests
(tests/testing/test_fixtures.py, tests/aiogram_adapter/test_example.py,
tests/discord_adapter/test_example.py); the
Slack ones run here, each against the loopback Slack stand-in. The README's
first command, ``restart-guard demo`` (Telegram), is tests/telegram_adapter/test_demo.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restart_guard.testing.markers import wait_for_markers
from restart_guard.testing.process import BotProcess

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parents[1] / "examples" / "bots"
CHANNEL = "C0EXAMPLE"


@pytest.mark.parametrize("example", ["slack_bot.py", "slack_async_bot.py"])
def test_slack_example_tells_the_thread_after_a_sigkill(tmp_path: Path, example: str) -> None:
    pytest.importorskip("slack_bolt")
    from restart_guard.testing.slack import SlackStandIn

    marker_dir = tmp_path / "markers"
    with SlackStandIn.running() as api:
        env = {**api.env(), "RESTART_GUARD_DIR": str(marker_dir)}

        def start(run: int) -> BotProcess:
            connections = api.total_connections
            bot = BotProcess.start(
                [sys.executable, str(EXAMPLES / example)],
                env=env,
                log_path=tmp_path / f"bot-{run}.log",
            )
            deadline = time.monotonic() + 30
            # Start-up recovery (the notices) comes before the Socket Mode connection.
            while api.total_connections <= connections:
                assert bot.process.poll() is None, bot.log()
                assert time.monotonic() < deadline, f"no connection:\n{bot.log()}"
                time.sleep(0.02)
            return bot

        bot = start(1)
        try:
            event = api.inject_app_mention(CHANNEL, "<@U0BOT> think")
            api.wait_for_sent(lambda m: m.chat == CHANNEL and m.text.startswith("Thinking"))
            api.wait_for_ack(event)
            wait_for_markers(marker_dir)  # the write-ahead is durable
            bot.kill()
            bot = start(2)
            [notice] = api.wait_for_sent(
                lambda m: m.chat == CHANNEL and "restarted" in m.text, timeout=30
            )
            assert notice.thread == event["ts"]  # in the thread of the interrupted mention
            bot.send_signal(signal.SIGTERM)
            assert bot.wait_exit(30) == 0
        finally:
            bot.stop()


def run_to_success(argv: list[str], timeout: float) -> str:
    """Run ``argv`` as a user would; it must exit 0. Returns what it printed."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("platform", "framework", "told"),
    [
        ("discord", "discord", "told the user in the right thread"),
        ("slack", "slack_bolt", "the user was told in its thread"),
    ],
)
def test_demo_shows_the_loss_then_the_notice(platform: str, framework: str, told: str) -> None:
    pytest.importorskip(framework)
    shown = run_to_success(
        [sys.executable, "-m", "restart_guard.cli", "demo", "--platform", platform], 60
    )
    assert "was silently lost" in shown
    assert told in shown
    assert "as expected" in shown


def test_the_documented_bot_test_passes_as_a_bot_author_runs_it() -> None:
    # examples/testing is what docs/testing.md shows: a conftest.py and a test
    # file, run by pytest the way a bot author runs their own suite.
    pytest.importorskip("telegram")
    folder = Path(__file__).parents[1] / "examples" / "testing"
    shown = run_to_success(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)], 300
    )
    assert "1 passed" in shown
