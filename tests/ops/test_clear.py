"""``restart-guard clear`` on marker directories real bots left, then a real restart."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from restart_guard.stores.directory import DirectoryStore
from restart_guard.testing.wait import eventually

from .conftest import (
    DRAINED_CHAT,
    FORUM,
    PRIVATE,
    RUNNING_CHAT,
    TOKENS,
    TOPIC,
    Bots,
    Fleet,
    chats,
    folder_of,
    run_cli,
    start_work,
    status_json,
    wait_for_markers,
)

pytestmark = pytest.mark.e2e

FRESH_CHAT, FRESH_TOKEN = 88, "444:DDD"
ALL_DEAD = sorted([(str(FORUM), str(TOPIC)), (str(PRIVATE), None), (str(DRAINED_CHAT), None)])


@pytest.fixture
def base(fleet: Fleet, tmp_path: Path) -> Path:
    """A base directory with copies of the dead bots' folders."""
    return fleet.copy_dead(tmp_path / "state")


def test_asks_first_and_removes_nothing_without_a_yes(base: Path) -> None:
    for answer in ("n\n", "", "\n"):
        result = run_cli("clear", "--dir", str(base), input=answer)
        assert result.status == 1
        assert "Remove 3 marker(s)? [y/N]" in result.out
        assert result.out.rstrip().endswith("Nothing removed.")
    assert chats(status_json("--dir", str(base))) == ALL_DEAD


def test_yes_at_the_prompt_removes_durably_and_leaves_no_journal(base: Path) -> None:
    result = run_cli("clear", "--dir", str(base), input="y\n")
    assert (result.status, result.out.splitlines()[-1]) == (0, "Removed 3 marker(s).")
    assert status_json("--dir", str(base)) == []
    for name in ("killed", "drained"):
        assert os.listdir(base / folder_of(TOKENS[name])) == []


def test_by_conversation_keeps_the_others_as_they_were(base: Path) -> None:
    before = {r["chat"]: r for r in status_json("--dir", str(base))}
    result = run_cli("clear", "--dir", str(base), f"--conversation={FORUM}:{TOPIC}", "--yes")
    assert result.status == 0, result
    after = {r["chat"]: r for r in status_json("--dir", str(base))}
    assert sorted(after) == sorted([str(PRIVATE), str(DRAINED_CHAT)])
    for chat, row in after.items():
        # Not "resuming" and not owned by the command: the next start sees what was there.
        for field in ("phase", "owner", "attempts", "started_at", "updated_at", "has_payload"):
            assert row[field] == before[chat][field], field
    by_key = run_cli(
        "clear", "--dir", str(base), "--conversation", before[str(PRIVATE)]["key"], "-y"
    )
    assert by_key.status == 0
    by_chat = run_cli("clear", "--dir", str(base), f"--conversation={DRAINED_CHAT}", "-y")
    assert by_chat.status == 0
    assert status_json("--dir", str(base)) == []


def test_a_chat_matches_its_threads_and_chat_thread_only_that_thread(base: Path) -> None:
    wrong_thread = run_cli("clear", "--dir", str(base), f"--conversation={FORUM}:8", "-y")
    assert (wrong_thread.status, wrong_thread.out.strip()) == (0, "No marker matches.")
    whole_chat = run_cli("clear", "--dir", str(base), f"--conversation={FORUM}", "-y")
    assert whole_chat.out.splitlines()[-1] == "Removed 1 marker(s)."
    assert (str(FORUM), str(TOPIC)) not in chats(status_json("--dir", str(base)))


def test_older_than_selects_by_the_age_status_shows(base: Path, bots: Bots) -> None:
    def youngest_age() -> float:
        return float(min(r["age_seconds"] for r in status_json("--dir", str(base))))

    # Markers are what they are; only time tells them apart. Let the copies age, then
    # make a fresh one, so that seconds (not scheduling jitter) separate them.
    eventually(lambda: youngest_age() >= 6.0, what="the fleet's markers to be 6 s old", timeout=30)
    # Another bot: the killed or drained bot would resume its markers at start-up.
    fresh_bot = bots.start(FRESH_TOKEN, {"RESTART_GUARD_DIR": str(base)})
    start_work(bots.api(FRESH_TOKEN), FRESH_CHAT, "/work 600")
    wait_for_markers(base / folder_of(FRESH_TOKEN), 1)
    fresh_bot.kill()
    ages = {r["chat"]: r["age_seconds"] for r in status_json("--dir", str(base))}
    old = min(age for chat, age in ages.items() if chat != str(FRESH_CHAT))
    assert old - ages[str(FRESH_CHAT)] > 4.0
    nothing = run_cli("clear", "--dir", str(base), "--older-than", "1d", "-y")
    assert nothing.out.strip() == "No marker matches."
    threshold = (old + ages[str(FRESH_CHAT)]) / 2
    result = run_cli("clear", "--dir", str(base), "--older-than", f"{threshold:.1f}s", "-y")
    assert result.status == 0, result
    assert chats(status_json("--dir", str(base))) == [(str(FRESH_CHAT), None)]


def test_rejects_a_bad_age_or_conversation(base: Path) -> None:
    assert (
        "unknown unit" in run_cli("clear", "--dir", str(base), "--older-than", "2 fortnights").err
    )
    assert "not a marker key" in run_cli("clear", "--dir", str(base), "--conversation", "1:").err


def test_never_removes_a_marker_a_running_bot_holds(fleet: Fleet) -> None:
    for extra in ((), ("--force",)):
        result = run_cli(
            "clear", "--dir", str(fleet.base), "--conversation", str(RUNNING_CHAT), "-y", *extra
        )
        assert result.status == 0, result
        assert "Left alone, held by a running process" in result.out
        assert "Removed" not in result.out
    held = [r for r in status_json("--dir", str(fleet.base)) if r["chat"] == str(RUNNING_CHAT)]
    assert [r["held"] for r in held] == [True]


def test_kept_markers_are_resumed_and_cleared_ones_are_not(base: Path, bots: Bots) -> None:
    result = run_cli("clear", "--dir", str(base), f"--conversation={FORUM}:{TOPIC}", "-y")
    assert result.status == 0, result
    restarted = bots.start(TOKENS["killed"], {"RESTART_GUARD_DIR": str(base)})
    restarted.wait_for_log("start-up recovery done: 1 resumed, 0 dropped")
    api = bots.api(TOKENS["killed"])
    notices = [m for m in api.sent if "restarted" in m.text]
    assert [(m.chat, m.thread) for m in notices] == [(str(PRIVATE), None)]
    eventually(
        lambda: not DirectoryStore(base / folder_of(TOKENS["killed"])).load(),
        what="the resumed marker removed",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root acts as another user")
def test_run_as_root_it_leaves_what_it_keeps_readable_by_the_bots_user(fleet: Fleet) -> None:
    # Where a bot's user can reach it (pytest's own temporary directories are 0700 root).
    reachable = Path(tempfile.mkdtemp(prefix="rg-ops-"))
    reachable.chmod(0o755)
    base = fleet.copy_dead(reachable / "state")
    base.chmod(0o755)
    folder = base / folder_of(TOKENS["killed"])
    nobody = 65534
    for path in (folder, *folder.iterdir()):
        os.chown(path, nobody, nobody)
    result = run_cli("clear", "--dir", str(base), f"--conversation={FORUM}:{TOPIC}", "-y")
    assert result.status == 0, result
    [journal] = folder.iterdir()
    info = journal.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (nobody, 0o600)
    # The bot's user can open and lock it, as its claim() at start-up will.
    as_nobody = subprocess.run(
        ["flock", "--exclusive", "--nonblock", str(journal), "cat", str(journal)],
        user=nobody,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert as_nobody.returncode == 0, as_nobody.stderr
    assert f'"chat":"{PRIVATE}"' in as_nobody.stdout
    shutil.rmtree(reachable)
