"""Registration of the heavier sub-commands; each handler module is imported only when run."""

from __future__ import annotations

import argparse


def _lazy(module: str, func: str = "main"):
    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), func)(args)

    return run


def add_all(sub) -> None:
    """Sub-commands added by later modules register here (bench, conformance, export, ...)."""
    for name, module, adder in _COMMANDS:
        try:
            import importlib

            mod = importlib.import_module(module)
        except ImportError:
            continue
        getattr(mod, adder)(sub)


_COMMANDS: list[tuple[str, str, str]] = []
