"""The documentation cannot drift from the code.

Every Python block in the docs and the README either parses as a fragment or
is included from a file in examples/ that a test runs; the CLI's help is
plain text; CI runs exactly the README's test command.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')


def python_blocks() -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(ROOT)}#{n}", block)
        for page in PAGES
        for n, block in enumerate(_BLOCK.findall(page.read_text()), 1)
    ]


#: Calls that start a bot: a block that imports and makes one is a program.
_RUNNERS = {"run_polling", "run_webhook", "run", "start", "start_async", "run_app"}


def _starts_a_bot(node: ast.stmt) -> bool:
    if isinstance(node, ast.If) and "__main__" in ast.dump(node.test):
        return True
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    called = node.value.func
    name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
    return name in _RUNNERS


def is_complete_program(tree: ast.Module) -> bool:
    """Imports and starts a bot at the top level: a program, not a fragment."""
    imports = any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)
    return imports and any(_starts_a_bot(node) for node in tree.body)


@pytest.mark.parametrize(("where", "block"), python_blocks(), ids=lambda v: v[:40])
def test_python_blocks_are_fragments_or_tested_examples(where: str, block: str) -> None:
    include = _INCLUDE.match(block.strip())
    if include:
        path = ROOT / include.group(1)
        assert path.is_file(), f"{where} includes a missing file {include.group(1)}"
        assert path.parts[len(ROOT.parts)] == "examples", f"{where}: include from examples/"
        # A test runs it: its name appears in the tests that start it.
        runners = [
            test
            for test in (ROOT / "tests").rglob("test_*.py")
            if path.name in test.read_text() or path.parent.name in test.read_text()
        ]
        assert runners, f"no test runs {include.group(1)}, which {where} shows"
        return
    tree = ast.parse(block, filename=where)
    assert not is_complete_program(tree), (
        f"{where} is a complete program written inline: put it in examples/ with a test "
        'that runs it, and include it with --8<-- "examples/..."'
    )


def test_cli_help_is_plain_text() -> None:
    for command in ("status", "list", "clear", "doctor", "demo"):
        result = subprocess.run(
            [sys.executable, "-m", "restart_guard.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        for markup in ("``", ":mod:", ":class:", ":func:"):
            assert markup not in result.stdout, f"{command} --help shows {markup}"
    status = subprocess.run(
        [sys.executable, "-m", "restart_guard.cli", "status", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "restart-guard status (alias list): the pending markers" in status.stdout


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in readme
    assert f"\n{test_command}\n" in ci
    venv = "python3 -m venv .venv && . .venv/bin/activate"
    demo = 'pip install ".[demo]" && restart-guard demo'
    # The virtualenv line comes first, before the two commands it applies to.
    assert readme.index(venv) < readme.index(demo) < readme.index(test_command)
