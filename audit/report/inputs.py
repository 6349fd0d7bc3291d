"""Load and check what a report is made of: analysis.json, results.json, a checkpoint.

Inputs are validated against their schemas here, once, so the renderers can
trust the shapes (never the contents: strings stay untrusted and are escaped
where they are written).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit._resources import check_schema
from audit.errors import InputError, Location, ValidationFailed

_HEX = re.compile(r"[0-9a-fA-F]{16,128}")


@dataclass(frozen=True)
class ReportInputs:
    """Everything one report shows; `results` and `checkpoint` are optional."""

    analysis: dict[str, Any]
    results: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", location=Location(str(path))) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read: {error}", location=Location(str(path))) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not JSON: {error.msg} at line {error.lineno} column {error.colno}",
            location=Location(str(path)),
        ) from None


def validate(document: Any, schema_name: str, file: str) -> None:
    """Raise ValidationFailed listing every schema problem (pointer, message)."""
    check_schema(document, schema_name, file)


def load_analysis(path: Path) -> dict[str, Any]:
    document = read_json(path)
    validate(document, "analysis", str(path))
    assert isinstance(document, dict)
    return document


def load_results(path: Path) -> dict[str, Any]:
    document = read_json(path)
    validate(document, "results", str(path))
    assert isinstance(document, dict)
    return document


def check_checkpoint(document: Any, file: str) -> dict[str, Any]:
    """A ledger checkpoint (`mlaudit track checkpoint`): origin, size, root."""
    if not isinstance(document, dict):
        raise ValidationFailed(file, [("", "a checkpoint must be a JSON object")])
    problems: list[tuple[str, str]] = []
    if not isinstance(document.get("origin"), str):
        problems.append(("/origin", "must be a string"))
    size = document.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append(("/size", "must be a non-negative integer"))
    root = document.get("root")
    if not isinstance(root, str) or not _HEX.fullmatch(root):
        problems.append(("/root", "must be a hex digest"))
    if problems:
        raise ValidationFailed(file, problems)
    return document


def load_checkpoint(path: Path) -> dict[str, Any]:
    return check_checkpoint(read_json(path), str(path))


def check_consistent(inputs: ReportInputs) -> None:
    """analysis.json and results.json must describe the same signed EDD."""
    if inputs.results is None:
        return
    a_edd, r_edd = inputs.analysis["edd"], inputs.results["edd"]
    if a_edd.get("digest") != r_edd.get("digest"):
        raise InputError(
            "analysis and results are for different EDDs (digest differs)",
            location=Location(inputs.sources.get("results", "results.json"), "/edd/digest"),
        )


def load_inputs(
    analysis: Path, results: Path | None = None, checkpoint: Path | None = None
) -> ReportInputs:
    sources = {"analysis": str(analysis)}
    if results:
        sources["results"] = str(results)
    if checkpoint:
        sources["checkpoint"] = str(checkpoint)
    inputs = ReportInputs(
        analysis=load_analysis(analysis),
        results=load_results(results) if results else None,
        checkpoint=load_checkpoint(checkpoint) if checkpoint else None,
        sources=sources,
    )
    check_consistent(inputs)
    return inputs
