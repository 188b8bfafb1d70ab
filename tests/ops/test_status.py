"""``restart-guard status`` / ``list`` on the marker directories real bots left."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import (
    DRAINED_CHAT,
    FORUM,
    PRIVATE,
    RUNNING_CHAT,
    SECRET,
    TOKENS,
    TOPIC,
    Fleet,
    chats,
    folder_of,
    run_cli,
    status_json,
)

pytestmark = pytest.mark.e2e


def test_the_base_directory_shows_every_bot_with_phase_and_held(fleet: Fleet) -> None:
    rows = status_json(env={"RESTART_GUARD_DIR": str(fleet.base)})
    by_chat = {r["chat"]: r for r in rows}
    assert chats(rows) == sorted(
        [
            (str(FORUM), str(TOPIC)),
            (str(PRIVATE), None),
            (str(DRAINED_CHAT), None),
            (str(RUNNING_CHAT), None),
        ]
    )
    killed, drained, running = (
        by_chat[str(FORUM)],
        by_chat[str(DRAINED_CHAT)],
        by_chat[str(RUNNING_CHAT)],
    )
    assert (killed["phase"], killed["held"], killed["bot"]) == (
        "in_flight",
        False,
        folder_of(TOKENS["killed"]),
    )
    assert (drained["phase"], drained["held"]) == ("draining", False)
    assert (running["phase"], running["held"]) == ("in_flight", True)
    assert f":{fleet.running.pid}:" in running["owner"]
    assert all(r["platform"] == "telegram" and r["attempts"] == 0 for r in rows)
    assert killed["has_payload"]
    assert not running["has_payload"]
    assert "payload" not in killed
    assert all(r["age_seconds"] > 0 for r in rows)


def test_the_table_is_readable_and_list_is_the_same_command(fleet: Fleet) -> None:
    result = run_cli("status", "--dir", str(fleet.base))
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert lines[0] == f"Markers in {fleet.base} (--dir):"
    header = next(line for line in lines if line.startswith("BOT"))
    assert header.split() == [
        "BOT", "PLATFORM", "CHAT", "THREAD", "AGE", "PHASE", "ATTEMPTS", "HELD", "OWNER"
    ]  # fmt: skip
    topic_row = next(line for line in lines if str(FORUM) in line)
    assert topic_row.split()[:4] == [folder_of(TOKENS["killed"]), "telegram", str(FORUM), "7"]
    assert "in flight" in topic_row
    assert " no " in topic_row
    assert "pre-drain" in next(line for line in lines if str(DRAINED_CHAT) in line)
    assert " yes " in next(line for line in lines if f" {RUNNING_CHAT} " in line)
    assert lines[-1] == (
        "4 marker(s) in 3 bot store(s); 1 held by a running process (its handler is still "
        "running there); 3 interrupted (the owner is gone): resumed at the bot's next start."
    )
    listed = run_cli("list", "--dir", str(fleet.base)).out.splitlines()
    # The same table but for the ages, which moved on meanwhile.
    assert [re.sub(r" \d+[smhd]\w* ", " AGE ", line) for line in listed] == [
        re.sub(r" \d+[smhd]\w* ", " AGE ", line) for line in lines
    ]


def test_message_text_is_printed_only_with_show_payload(fleet: Fleet) -> None:
    for args in (("status",), ("status", "--json")):
        result = run_cli(*args, "--dir", str(fleet.base))
        assert result.status == 0
        assert SECRET not in result.out + result.err
    shown = run_cli("status", "--show-payload", "--dir", str(fleet.base))
    assert SECRET in shown.out
    rows = status_json("--show-payload", "--dir", str(fleet.base))
    [topic] = [r for r in rows if r["chat"] == str(FORUM)]
    assert SECRET in topic["payload"][0]["message"]["text"]


def test_one_bots_marker_directory_shows_only_that_bot(fleet: Fleet) -> None:
    rows = status_json("--dir", str(fleet.folder("killed")))
    assert chats(rows) == sorted([(str(FORUM), str(TOPIC)), (str(PRIVATE), None)])
    assert {r["bot"] for r in rows} == {folder_of(TOKENS["killed"])}


def test_dir_option_wins_over_the_environment(fleet: Fleet, tmp_path: Path) -> None:
    env = {"RESTART_GUARD_DIR": str(tmp_path)}
    assert chats(status_json("--dir", str(fleet.folder("drained")), env=env)) == [
        (str(DRAINED_CHAT), None)
    ]


def test_a_directory_no_bot_has_used_is_not_an_error(tmp_path: Path) -> None:
    result = run_cli("status", "--dir", str(tmp_path / "never"))
    assert result.status == 0
    assert "does not exist" in result.out
    empty = run_cli("status", "--dir", str(tmp_path))
    assert (empty.status, empty.out.splitlines()[-1]) == (0, "  none pending.")


def test_an_unsupported_store_url_says_what_is_expected(tmp_path: Path) -> None:
    result = run_cli("status", env={"RESTART_GUARD_URL": "postgres://db/x"})
    assert result.status == 2
    assert "unsupported store URL 'postgres://db/x' ($RESTART_GUARD_URL)" in result.err
