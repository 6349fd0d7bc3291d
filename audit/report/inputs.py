"""Load and check what a report is made of: analysis.json, results.json, a checkpoint.

Inputs are validated against their schemas here, once, so the renderers can
trust the shapes (never the contents: strings stay untrusted and are escaped
where they are written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit._resources import check_schema
from audit.errors import InputError, Location, ValidationFailed


@dataclass(frozen=True)
class ReportInputs:
    """Everything one report shows; `results` and `checkpoint` are optional."""

    analysis: dict[str, Any]
    results: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    """Any JSON file, through the one strict reader (audit.documents)."""
    from audit.documents import parse_json, read_bytes

    return parse_json(read_bytes(path), str(path))


def validate(document: Any, schema_name: str, file: str) -> None:
    """Raise ValidationFailed listing every schema problem (pointer, message)."""
    check_schema(document, schema_name, file)


def load_analysis(path: Path) -> dict[str, Any]:
    from audit.documents import read_analysis

    return read_analysis(path).document


def load_results(path: Path) -> dict[str, Any]:
    from audit.documents import read_results

    return read_results(path).document


def check_checkpoint(document: Any, file: str) -> dict[str, Any]:
    """A ledger checkpoint (`mlaudit track checkpoint`), checked against its schema."""
    from audit.tracking.checkpoint import parse_checkpoint

    if not isinstance(document, dict):
        raise ValidationFailed(file, [("", "a checkpoint must be a JSON object")])
    parse_checkpoint(document, file)
    check_schema(document, "checkpoint", file)
    return document


def load_checkpoint(path: Path) -> dict[str, Any]:
    from audit.documents import parse_object, read_bytes

    return check_checkpoint(parse_object(read_bytes(path), str(path)), str(path))


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
