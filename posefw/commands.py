"""Sub-commands that live in their own modules; each registers its parser here.

A module named here defines ``add_parser(subparsers)``; its heavy imports happen only when
the command runs, so ``posefw --help`` stays fast and works without optional stacks.
"""

from __future__ import annotations

import importlib

MODULES = (
    "posefw.conformance.cli",
    "posefw.bench",
    "posefw.commands_model",
    "posefw.commands_run",
    "posefw.commands_serve",
)


def add_all(sub) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
