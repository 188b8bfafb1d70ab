"""``restart-guard doctor`` against unit files and directories that are wrong in each way."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restart_guard import DirectoryStore, StoreError
from restart_guard.stores.directory import check_marker_dir

from .conftest import (
    RUNNING_CHAT,
    TOKENS,
    Bots,
    Fleet,
    Result,
    folder_of,
    run_cli,
    start_work,
)

GOOD_UNIT = """\
[Unit]
Description=My bot

[Service]
Type=notify
ExecStart=/opt/mybot/bin/python -m mybot
Restart=on-failure
KillMode=mixed
TimeoutStopSec=30
"""


def unit_file(tmp_path: Path, text: str, name: str = "mybot.service") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[Result, list[dict[str, Any]]]:
    """Run doctor twice — as text and as JSON — and return both."""
    text = run_cli("doctor", *args, env=env)
    as_json = run_cli("doctor", "--json", *args, env=env)
    assert text.status == as_json.status
    findings = [f for s in as_json.json()["sections"] for f in s["findings"]]
    return text, findings


def problems(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f["level"] in ("warning", "error")]


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process while the block runs."""
    if os.geteuid() == 0:
        # Root writes anywhere, except into an immutable directory.
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not available here: {made.stderr!r}")
    else:
        path.chmod(0o500)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o700)


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir(mode=0o700)
    return path


def test_a_good_directory_and_unit_pass(good_dir: Path, tmp_path: Path) -> None:
    text, findings = doctor(
        "--dir", str(good_dir), "--unit-file", str(unit_file(tmp_path, GOOD_UNIT))
    )
    assert text.status == 0, text.out
    assert problems(findings) == []
    assert text.out.rstrip().endswith("No problems found.")
    assert "TimeoutStopSec=30 leaves 10s after drain_timeout (20s) before SIGKILL" in text.out


def test_the_markers_of_real_bots_pass(fleet: Fleet) -> None:
    text, findings = doctor("--dir", str(fleet.base))
    assert problems(findings) == [], text.out
    assert f"{folder_of(TOKENS['running'])}: 1 pending marker(s), 1 held" in text.out


def test_timeout_shorter_than_the_drain_names_the_line(good_dir: Path, tmp_path: Path) -> None:
    unit = unit_file(tmp_path, GOOD_UNIT.replace("TimeoutStopSec=30", "TimeoutStopSec=10s"))
    text, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["level"] == "error"
    assert problem["message"].startswith(
        "TimeoutStopSec=10s is less than drain_timeout (20s) plus a 5s margin"
    )
    assert problem["fix"] == (
        f"line 9 of {unit}: TimeoutStopSec=25s   (or protect(drain_timeout=5))"
    )
    # The bot's own drain_timeout decides: 4 s fits in 10 s.
    fits, _ = doctor("--dir", str(good_dir), "--unit-file", str(unit), "--drain-timeout", "4")
    assert fits.status == 0, fits.out


def test_systemd_spans_and_the_default_timeout(good_dir: Path, tmp_path: Path) -> None:
    spans = unit_file(tmp_path, GOOD_UNIT.replace("TimeoutStopSec=30", "TimeoutStopSec=1min 30s"))
    ok, _ = doctor("--dir", str(good_dir), "--unit-file", str(spans), "--drain-timeout", "85")
    assert ok.status == 0, ok.out
    unset = unit_file(tmp_path, GOOD_UNIT.replace("TimeoutStopSec=30\n", ""), "unset.service")
    _text, findings = doctor(
        "--dir", str(good_dir), "--unit-file", str(unset), "--drain-timeout", "100"
    )
    [problem] = problems(findings)
    assert problem["message"].startswith("not set (systemd's default, 90s) is less than")
    assert problem["fix"] == (
        f"add under [Service] in {unset}: TimeoutStopSec=105s   (or protect(drain_timeout=85))"
    )


def test_timeoutsec_and_drop_ins_are_followed(good_dir: Path, tmp_path: Path) -> None:
    unit = unit_file(tmp_path, GOOD_UNIT.replace("TimeoutStopSec=30", "TimeoutSec=15"))
    _, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    [problem] = problems(findings)
    assert problem["fix"].startswith(
        f"add after line 9 of {unit} (TimeoutSec= there sets more than TimeoutStopSec): "
        "TimeoutStopSec=25s"
    )
    dropins = tmp_path / "mybot.service.d"
    dropins.mkdir()
    (dropins / "override.conf").write_text("[Service]\n# longer stop\nTimeoutStopSec=40\n")
    fixed, _ = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    assert fixed.status == 0, fixed.out
    assert "TimeoutStopSec=40 leaves 20s" in fixed.out


@pytest.mark.parametrize("mode", ["process", "none"])
def test_killmode_process_or_none_is_an_error(good_dir: Path, tmp_path: Path, mode: str) -> None:
    unit = unit_file(tmp_path, GOOD_UNIT.replace("KillMode=mixed", f"KillMode={mode}"))
    text, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["message"].startswith(f"KillMode={mode}: only the main process is stopped")
    assert problem["fix"] == f"line 8 of {unit}: KillMode=mixed"


def test_killmode_control_group_and_type_simple_are_advice_only(
    good_dir: Path, tmp_path: Path
) -> None:
    unit = unit_file(
        tmp_path,
        GOOD_UNIT.replace("KillMode=mixed\n", "").replace("Type=notify", "Type=simple"),
    )
    text, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    assert text.status == 0, text.out
    notes = {f["message"].split(":")[0]: f["fix"] for f in findings if f["level"] == "note"}
    assert notes["KillMode=control-group"] == f"add under [Service] in {unit}: KillMode=mixed"
    assert notes["Type=simple"] == f"line 5 of {unit}: Type=notify"


def test_a_kill_signal_without_a_drain_is_an_error(good_dir: Path, tmp_path: Path) -> None:
    unit = unit_file(tmp_path, GOOD_UNIT + "KillSignal=SIGKILL\n")
    _text, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    [problem] = problems(findings)
    assert problem["fix"] == f"line 10 of {unit}: KillSignal=SIGTERM"
    sigint = unit_file(tmp_path, GOOD_UNIT + "KillSignal=INT\n", "int.service")
    assert doctor("--dir", str(good_dir), "--unit-file", str(sigint))[0].status == 0


def test_unit_via_systemctl_show(good_dir: Path, tmp_path: Path) -> None:
    """``--unit`` reads systemd's values; the fragment gives the line to change."""
    fragment = unit_file(tmp_path, GOOD_UNIT.replace("TimeoutStopSec=30", "TimeoutStopSec=10"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A stand-in for systemctl (there is no running systemd here), printing what
    # `systemctl show --property=...` prints for such a unit.
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/args"\n'
        f"cat <<'EOF'\nTimeoutStopUSec=10s\nKillMode=mixed\nKillSignal=15\nType=notify\n"
        f"Restart=on-failure\nUser=\nFragmentPath={fragment}\nDropInPaths=\nLoadState=loaded\nEOF\n"
    )
    systemctl.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    text, findings = doctor("--dir", str(good_dir), "--unit", "mybot", env=env)
    assert (bin_dir / "args").read_text().split() == [
        "show",
        "--property=TimeoutStopUSec,KillMode,KillSignal,Type,Restart,User,FragmentPath,"
        "DropInPaths,LoadState",
        "--",
        "mybot.service",
    ]
    [problem] = problems(findings)
    assert problem["fix"].startswith(f"line 9 of {fragment}: TimeoutStopSec=25s")
    assert "systemd unit mybot.service (systemctl show mybot.service)" in text.out


def test_a_unit_that_cannot_be_read_is_a_problem(good_dir: Path, tmp_path: Path) -> None:
    text, findings = doctor("--dir", str(good_dir), "--unit-file", str(tmp_path / "nope.service"))
    assert text.status == 1
    [problem] = problems(findings)
    assert "cannot read the unit" in problem["message"]
    no_systemctl, findings = doctor(
        "--dir", str(good_dir), "--unit", "mybot", env={"PATH": "/nonexistent"}
    )
    assert no_systemctl.status == 1
    assert "pass --unit-file" in problems(findings)[0]["fix"]


def test_a_directory_not_created_yet_is_judged_by_its_parent(tmp_path: Path) -> None:
    # A fresh machine: the bot has not started yet, so the directory is not there.
    path = tmp_path / "state" / "restart-guard"
    text, findings = doctor("--dir", str(path))
    assert text.status == 0, text.out
    assert problems(findings) == []
    messages = [f["message"] for f in findings]
    assert (
        f"does not exist yet: the bot creates it (0700) at its first start, in {tmp_path}"
        in messages
    )
    assert f"{tmp_path} is writable: the bot can create its marker directory there" in messages
    assert any(m.endswith(": survives a restart") for m in messages), messages
    assert not path.exists()
    assert sorted(tmp_path.iterdir()) == []  # the probe left nothing behind


def test_a_directory_that_cannot_be_created(tmp_path: Path) -> None:
    parent = tmp_path / "readonly"
    parent.mkdir()
    path = parent / "markers"
    with unwritable(parent):
        text, findings = doctor("--dir", str(path))
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["message"].startswith(f"{parent} is not writable by")
    assert problem["fix"].startswith(f"mkdir -p -m 700 {path} && chown BOTUSER {path}")


def test_a_directory_not_created_yet_under_another_users_parent(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a parent owned by another user than the unit's")
    parent = tmp_path / "lib"
    parent.mkdir(mode=0o755)
    path = parent / "mybot"
    unit = unit_file(tmp_path, GOOD_UNIT + "User=nobody\n")
    text, findings = doctor("--dir", str(path), "--unit-file", str(unit))
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["message"] == (
        f"{parent}: owned by root, but the unit runs the bot as User=nobody: it cannot "
        f"create {path} there"
    )
    assert problem["fix"].startswith(f"mkdir -p -m 700 {path} && chown nobody: {path}")
    os.chown(parent, 65534, 65534)
    assert doctor("--dir", str(path), "--unit-file", str(unit))[0].status == 0


def test_a_directory_whose_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "markers"
    text, findings = doctor("--dir", str(path))
    assert text.status == 1
    assert problems(findings)[0]["message"] == (
        f"{path} cannot be created: {tmp_path / 'file'} is not a directory"
    )


def test_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "markers"
    path.write_text("")
    text, findings = doctor("--dir", str(path))
    assert text.status == 1
    assert problems(findings)[0]["message"] == f"{path} is not a directory"


def test_permissions_other_than_0700(fleet: Fleet, tmp_path: Path) -> None:
    base = fleet.copy_dead(tmp_path / "state")
    folder = base / folder_of(TOKENS["killed"])
    folder.chmod(0o755)
    [journal] = folder.iterdir()
    journal.chmod(0o644)
    text, findings = doctor("--dir", str(base))
    assert text.status == 1
    fixes = sorted(f["fix"] for f in problems(findings))
    assert fixes == sorted([f"chmod 700 {folder}", f"chmod 600 {journal}"])


def test_set_aside_corrupt_records(good_dir: Path) -> None:
    corrupt = good_dir / "journal-0123456789abcdef.log.corrupt"
    corrupt.write_text("garbage\n")
    _, findings = doctor("--dir", str(good_dir))
    [problem] = problems(findings)
    assert problem["fix"] == f"inspect it (each line is '<crc32> <json>'), then: rm {corrupt}"


def test_a_directory_that_cannot_be_written(good_dir: Path) -> None:
    with unwritable(good_dir):
        text, findings = doctor("--dir", str(good_dir))
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["level"] == "error"
    assert "not writable by" in problem["message"]
    assert problem["fix"].startswith(f"chown -R BOTUSER {good_dir} && chmod 700 {good_dir}")
    assert list(good_dir.iterdir()) == []  # the probe left nothing behind


def test_owner_other_than_the_units_user(good_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a directory owned by another user than the unit's")
    unit = unit_file(tmp_path, GOOD_UNIT + "User=nobody\n")
    _text, findings = doctor("--dir", str(good_dir), "--unit-file", str(unit))
    [problem] = problems(findings)
    assert problem["message"].startswith(
        f"{good_dir} belongs to root, not to nobody that runs the bot: its owner could plant "
        "or remove markers. The bot refuses this directory"
    )
    assert problem["fix"].startswith(f"chown nobody: {good_dir} && chmod 700 {good_dir}")
    os.chown(good_dir, 65534, 65534)
    assert doctor("--dir", str(good_dir), "--unit-file", str(unit))[0].status == 0


def test_a_directory_others_can_write_is_the_bots_own_refusal(good_dir: Path) -> None:
    """doctor reports, word for word, why the bot refuses the directory (one shared check)."""
    good_dir.chmod(0o777)
    _text, findings = doctor("--dir", str(good_dir))
    [problem] = problems(findings)
    assert problem["level"] == "error"
    shared = check_marker_dir(good_dir, None)
    assert shared is not None
    assert problem["message"] == (
        f"{shared.message}. The bot refuses this directory and runs with its conversations "
        "unprotected"
    )
    assert (
        problem["fix"]
        == shared.fix
        == (
            f"chmod 700 {good_dir}, or point marker_dir / $RESTART_GUARD_DIR at a directory of "
            "the bot's own"
        )
    )
    with pytest.raises(StoreError) as refused:
        DirectoryStore(good_dir).open("bot")
    assert shared.message in str(refused.value)
    assert shared.fix in str(refused.value)
    assert stat.S_IMODE(good_dir.stat().st_mode) == 0o777  # doctor and the bot only look


def test_a_bot_on_a_directory_others_can_write_says_so_once_and_runs(
    bots: Bots, tmp_path: Path
) -> None:
    """A real bot: one ERROR naming the fix, its handlers still run, the directory untouched."""
    base = tmp_path / "state"
    base.mkdir(mode=0o700)
    folder = base / folder_of(TOKENS["running"])
    folder.mkdir()
    folder.chmod(0o777)
    bot = bots.start(TOKENS["running"], {"RESTART_GUARD_DIR": str(base)})
    start_work(bots.api(TOKENS["running"]), RUNNING_CHAT, "/work 600")  # it runs, unguarded
    # Its write-ahead fails loudly too (rate-limited), pointing back to the one full line.
    bot.wait_for_log("is still refused")
    errors = [line for line in bot.log().splitlines() if " ERROR " in line]
    [refusal] = [line for line in errors if "chmod" in line]
    assert "unavailable at start-up: refusing the marker directory" in refusal
    assert f"NOT protected until this is fixed: chmod 700 {folder}" in refusal
    [write_failed] = [line for line in errors if line != refusal]
    assert "a crash now would lose them" in write_failed
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777
    assert list(folder.iterdir()) == []
    _text, findings = doctor("--dir", str(base))
    shared = check_marker_dir(folder, None)
    assert shared is not None
    assert shared.message in refusal
    assert [f["fix"] for f in problems(findings)] == [shared.fix]


def _fstype(path: str) -> str | None:
    try:
        with open("/proc/self/mountinfo") as handle:
            rows = [line.split(" - ") for line in handle]
    except OSError:
        return None
    types = [after.split()[0] for before, after in rows if before.split()[4] == path]
    return types[-1] if types else None


@pytest.mark.skipif(_fstype("/dev/shm") != "tmpfs", reason="/dev/shm is not a tmpfs here")
def test_markers_on_tmpfs_are_lost_at_reboot(tmp_path: Path) -> None:
    path = Path("/dev/shm") / f"rg-doctor-{os.getpid()}-{tmp_path.name}"
    path.mkdir(mode=0o700)
    try:
        text, findings = doctor("--dir", str(path))
    finally:
        path.rmdir()
    assert text.status == 1
    [problem] = problems(findings)
    assert problem["message"].startswith("on tmpfs (mounted at /dev/shm): emptied at every reboot")


def test_a_container_layer_without_and_with_a_volume(tmp_path: Path) -> None:
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for path in (lower, upper, work, merged):
        path.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount an overlay here: {mounted.stderr!r}")
    try:
        markers = merged / "var" / "lib" / "bot"
        markers.mkdir(parents=True, mode=0o700)
        _text, findings = doctor("--dir", str(markers))
        [problem] = problems(findings)
        assert problem["message"].startswith(f"on overlay (mounted at {merged}): the container's")
        assert problem["fix"].startswith(f"mount a volume at {markers}")
        volume = tmp_path / "volume"
        volume.mkdir(mode=0o700)
        subprocess.run(["mount", "--bind", str(volume), str(markers)], check=True)
        try:
            with_volume, findings = doctor("--dir", str(markers))
            assert problems(findings) == [], with_volume.out
        finally:
            subprocess.run(["umount", str(markers)], check=True)
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_dir_and_store_are_exclusive_and_the_environment_is_read(
    good_dir: Path, tmp_path: Path
) -> None:
    both = run_cli("doctor", "--dir", str(good_dir), "--store", "redis://localhost")
    assert both.status == 2
    assert "not allowed with argument" in both.err
    text, _ = doctor(env={"RESTART_GUARD_DIR": str(good_dir)})
    assert f"Marker directory {good_dir} ($RESTART_GUARD_DIR)" in text.out


DEPLOY = Path(__file__).parents[2] / "examples" / "deploy"


def test_the_systemd_recipe_passes_doctor(good_dir: Path) -> None:
    text, findings = doctor(
        "--dir",
        str(good_dir),
        "--unit-file",
        str(DEPLOY / "mybot.service"),
        "--drain-timeout",
        "20",
    )
    assert text.status == 0, text.out
    assert [f["level"] for f in findings if f["level"] != "ok"] in ([], ["note"])


@pytest.mark.parametrize(
    ("recipe", "setting"),
    [
        ("docker-compose.yml", r"stop_grace_period: (\d+)s"),
        ("kubernetes.yaml", r"terminationGracePeriodSeconds: (\d+)"),
        ("supervisord.conf", r"^stopwaitsecs=(\d+)"),
        ("mybot.service", r"^TimeoutStopSec=(\d+)s"),
    ],
)
def test_every_recipe_leaves_the_default_drain_and_a_margin(recipe: str, setting: str) -> None:
    [seconds] = re.findall(setting, (DEPLOY / recipe).read_text(), re.MULTILINE)
    assert int(seconds) >= 20 + 5
