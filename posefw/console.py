"""The one rich Console every command prints through.

Piped or redirected, rich falls back to 80 columns and cuts wide tables, hints included; here
the width is the terminal's when there is one and 200 columns otherwise.
"""

from __future__ import annotations

import sys
from typing import Any


def console(**kwargs: Any):
    from rich.console import Console

    if not sys.stdout.isatty() and "width" not in kwargs:
        kwargs["width"] = 200
    return Console(**kwargs)


def status_markup(info: Any) -> str:
    """A backend's status for a rich table: green when available, else red with the reason."""
    from rich.markup import escape

    if info.status == "available":
        return "[green]available[/green]"
    return f"[red]{info.status}[/red]: {escape(info.reason)}"
