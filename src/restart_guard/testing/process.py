"""Run a bot in a real subprocess and send it real signals, for restart tests.

::

    with TelegramStandIn.running() as api:
        bot = BotProcess.start([sys.executable, "my_bot.py"], env={"BOT_API": api.base_url})
        api.wait_for_poll()
        api.inject_message(42, "/work 60")
        api.wait_for_sent(lambda m: m.text.startswith("working"))
        bot.terminate_then_kill(after_log="marked before the drain", grace=1.0)
        bot = BotProcess.start([...])                       # the restart
        api.wait_for_sent(lambda m: "restarted" in m.text)  # the notice

Output (stdout and stderr together) goes to a log file, so a test can wait
for a line with :meth:`BotProcess.wait_for_log` and print the whole log
when it fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .wait import eventually

__all__ = ["BotProcess"]


class BotProcess:
    """A bot running in a subprocess, with its output captured to a file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> BotProcess:
        """Start ``argv`` with ``env`` added to this process's environment."""
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="bot-", suffix=".log")
            os.close(handle)
            log_path = name
        path = Path(log_path)
        merged = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(path, "ab") as log:
            process = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, env=merged, cwd=cwd
            )
        return cls(process, path)

    @property
    def pid(self) -> int:
        """The bot's process id."""
        return self.process.pid

    def log(self) -> str:
        """Everything the bot printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 15.0, count: int = 1) -> str:
        """Block until ``text`` appears ``count`` times in the output; return the output.

        Raises ``TimeoutError`` (with the output) on timeout, or ``RuntimeError``
        if the bot exits before it printed ``text``.
        """

        def printed() -> str | None:
            output = self.log()
            if output.count(text) >= count:
                return output
            if self.process.poll() is not None:
                output = self.log()  # the last lines may have landed after the first read
                if output.count(text) >= count:
                    return output
                raise RuntimeError(
                    f"bot exited with {self.process.returncode} before printing {text!r}:\n{output}"
                )
            return None

        found = eventually(
            printed,
            timeout,
            what=lambda: f"{text!r} in the bot's output:\n{self.log()}",
            interval=0.02,
        )
        assert found is not None
        return found

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (``signal.SIGTERM`` ...) to the bot."""
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the bot to exit; return its exit status (negative: killed by that signal)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"bot still running after {timeout}s:\n{self.log()}") from None

    def terminate_then_kill(self, after_log: str, grace: float, timeout: float = 15.0) -> int:
        """SIGTERM, wait until ``after_log`` is printed, wait ``grace`` seconds, SIGKILL.

        What a service manager does when the drain outlives its stop timeout.
        Returns the exit status.
        """
        self.send_signal(signal.SIGTERM)
        self.wait_for_log(after_log, timeout)
        # The grace period is the scenario (a manager's kill timeout), not a wait for a result.
        time.sleep(grace)
        if self.process.poll() is None:
            self.process.kill()
        return self.wait_exit(timeout)

    def kill(self) -> int:
        """SIGKILL now (no SIGTERM first), as the OOM killer does; return the exit status."""
        if self.process.poll() is None:
            self.process.kill()
        return self.wait_exit()

    def stop(self) -> None:
        """Make sure the process is gone (for test teardown)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
