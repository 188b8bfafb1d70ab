"""The adapter registry: one table that protect(), the CLI and the demo read.

Every row names a module whose ``ADAPTER`` implements the contract for that
row; the table itself imports no framework; its version ranges are the pins
of the pip extras.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from restart_guard._adapter import Adapter
from restart_guard._registry import ADAPTERS, AdapterSpec, spec_for_class, spec_for_platform
from restart_guard.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec", ADAPTERS, ids=lambda spec: spec.platform)
def test_every_row_names_a_module_whose_adapter_is_that_row(spec: AdapterSpec) -> None:
    module = importlib.import_module(spec.module)
    adapter = module.ADAPTER
    assert isinstance(adapter, Adapter)
    assert adapter.spec is spec
    assert adapter.platform == module.PLATFORM == spec.platform
    assert adapter.conversation_of(object()) is None
    assert not adapter.is_installed(object())


@pytest.mark.parametrize("spec", ADAPTERS, ids=lambda spec: spec.platform)
def test_every_row_matches_the_classes_it_takes(spec: AdapterSpec) -> None:
    for module_name, qualname in spec.classes:
        cls = getattr(importlib.import_module(module_name), qualname.rsplit(".", 1)[-1])
        assert spec_for_class(cls) is spec
        assert spec_for_class(type(qualname, (cls,), {})) is spec  # a user's subclass


def test_choosing_an_adapter_imports_no_framework() -> None:
    script = textwrap.dedent(
        """
        import sys
        import restart_guard
        from restart_guard._registry import spec_for_class
        from restart_guard.cli import build_parser

        class Application:  # what protect() sees of a PTB Application, by name only
            pass

        Application.__module__ = "telegram.ext._application"
        build_parser()
        print(spec_for_class(Application).platform)
        print(sorted(m for m in ("telegram", "discord", "slack_bolt") if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["telegram", "[]"]


def test_the_demo_offers_every_platform_the_registry_has_a_demo_for() -> None:
    parser = build_parser()
    args = parser.parse_args(["demo", "--platform", "slack"])
    assert args.platform == "slack"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--platform", "irc"])
    assert all(spec.demo for spec in ADAPTERS)


def test_an_unknown_platform_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="telegram, discord, slack"):
        spec_for_platform("irc")
    assert spec_for_platform("discord").pip_install("testing") == (
        'pip install "restart-guard[discord,testing]"'
    )
