"""Reading what the user hands over: JSON files named by an option, KEY=VALUE options, and
arrays as JSON lists. Commands, conformance and the benchmark share these; none imports the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_json(path: str, option: str):
    """Parse a JSON file named by a command-line option, with errors that name the option."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{option}: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option}: {path} is not valid JSON: {exc}") from None


def parse_options(items: list[str], option: str) -> dict[str, Any]:
    """KEY=VALUE strings -> dict; VALUE is read as JSON (true, 3, "x") and falls back to a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def json_array(a: np.ndarray) -> list:
    """A float array as nested lists for JSON, NaN written as null."""
    return np.where(np.isnan(a), None, a).tolist()
