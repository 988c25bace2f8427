"""The README's two commands are what CI runs and what a new user types."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README has a Quickstart code block"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_quickstart_has_exactly_two_commands():
    cmds = _commands()
    assert len(cmds) == 2, cmds
    assert "posefw bench" in cmds[0] and cmds[1].endswith("pytest")


def test_ci_runs_both_readme_commands():
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    main, tests = _commands()
    assert main in ci and tests in ci
    assert ci.index(main) < ci.index(tests)  # the main command first, before the test extras are installed
