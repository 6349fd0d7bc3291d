"""The privileged publisher's own gate: recompute the decision from an artifact's documents.

One function, one call into the gate, so the call can be swapped in one place
(the lead may replace it with a facade such as `audit.evidence.judge_study`).
The trust files come from the default branch the publisher checked out, never
from the artifact; approvals are judged as of now, not as of a time the
artifact states. Nothing here runs the study's code: the gate only reads files,
verifies signatures and recomputes the statistics.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from audit.publish.artifact import StudyDocuments
from audit.report.verdict import GateResult, parse_gate


def recompute_gate(
    study: StudyDocuments, trust_ref: str, repo: Path | None, at: datetime
) -> GateResult:
    """The gate's result for `study`, judged with the trust files of `trust_ref` in `repo`."""
    from audit.evidence import StudyFiles, TrustSource, gate_inputs, gather
    from audit.gate import decide

    evidence = gather(
        StudyFiles(study.edd, study.results, study.analysis),
        TrustSource(ref=trust_ref, repo=repo),
        at=at,
    )
    decision = decide(gate_inputs(evidence))
    document = decision.to_dict() | {
        "edd": {
            "id": evidence.edd.id,
            "version": evidence.edd.version,
            "digest": evidence.edd.digest,
        },
        "results_sha256": evidence.results_sha256,
    }
    return parse_gate(document, "(gate recomputed by the publisher)")
