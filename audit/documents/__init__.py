"""The study documents as typed values, each with one strict reader and one atomic writer.

Public API:
    read_results / parse_results -> Results (with TrialRecord per trial)
    read_analysis / parse_analysis -> Analysis (with Comparison per comparison)
    read_gate_result / parse_gate_result -> GateResult (with RuleResult per rule)
    read_checkpoint / parse_checkpoint_document -> audit.tracking.checkpoint.Checkpoint
    parse_object(raw, file, schema) -> dict   (any other mlaudit JSON document)
    write_document(path, document, schema) -> bytes   (the one writer)

Every reader refuses duplicate keys, NaN/Infinity, non-UTF-8 text, nesting deeper
than MAX_DEPTH and schema violations, naming the file and the JSON pointer (exit 1).
"""

from __future__ import annotations

from audit.documents.analysis import Analysis, Comparison, parse_analysis, read_analysis
from audit.documents.checkpoint import parse_checkpoint_document, read_checkpoint
from audit.documents.gate_result import (
    EddRef,
    GateResult,
    RuleResult,
    parse_gate_result,
    read_gate_result,
)
from audit.documents.json_io import (
    MAX_DEPTH,
    dumps,
    parse_json,
    parse_object,
    read_bytes,
    write_document,
)
from audit.documents.results import Results, TrialRecord, parse_results, read_results

__all__ = [
    "MAX_DEPTH",
    "Analysis",
    "Comparison",
    "EddRef",
    "GateResult",
    "Results",
    "RuleResult",
    "TrialRecord",
    "dumps",
    "parse_analysis",
    "parse_checkpoint_document",
    "parse_gate_result",
    "parse_json",
    "parse_object",
    "parse_results",
    "read_analysis",
    "read_bytes",
    "read_checkpoint",
    "read_gate_result",
    "read_results",
    "write_document",
]
