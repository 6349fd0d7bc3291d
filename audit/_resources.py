"""Locate the JSON Schemas that ship with mlaudit.

In a wheel they sit inside the package (audit/schemas); in a source checkout or
an editable install they are the top-level schemas/ folder users also read.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def schemas_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "schemas", _PACKAGE_DIR.parent / "schemas"):
        if (candidate / "edd.schema.json").is_file():
            return candidate
    raise FileNotFoundError("mlaudit's JSON Schemas are missing from this installation")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load `schemas/<name>.schema.json` (e.g. name="edd")."""
    path = schemas_dir() / f"{name}.schema.json"
    with path.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema
