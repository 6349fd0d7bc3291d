"""The privileged publisher's own gate: recompute the decision from an artifact's documents.

One call into the gate (`audit.evidence.judge_study`, what `mlaudit gate` decides).
The trust files come from the default branch the publisher checked out, never
from the artifact; approvals are judged as of now, not as of a time the
artifact states. Nothing here runs the study's code: the gate only reads files,
verifies signatures and recomputes the statistics.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from audit.documents.gate_result import GateResult
from audit.publish.artifact import StudyDocuments


def recompute_gate(
    study: StudyDocuments, trust_ref: str, repo: Path | None, at: datetime
) -> GateResult:
    """The gate's result for `study`, judged with the trust files of `trust_ref` in `repo`."""
    from audit.evidence import StudyFiles, TrustSource, judge_study

    return judge_study(
        StudyFiles(study.edd, study.results, study.analysis),
        TrustSource(ref=trust_ref, repo=repo),
        at=at,
    )
