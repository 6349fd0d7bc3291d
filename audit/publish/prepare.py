"""What to post, prepared three ways: a report and its gate result (direct), a study staged
for the privileged publisher (--to-artifact), and that publisher's own judgement of the
staged study (--from-artifact).

In every case the status and the check show a gate result held as data. On the
fork-safe path nothing posted is taken from the artifact: the gate is recomputed
with the default branch's trust files and the comment is rendered here, with the
same renderer and budget as a direct publish, so an honest fork's comment is the
comment a direct publish of the same study would post.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from audit.documents.gate_result import GateResult
from audit.publish.artifact import Handover, StudyDocuments, read_artifact, write_artifact
from audit.publish.body import require_marker
from audit.publish.outcome import PublishRequest
from audit.report.escape import marker_key
from audit.report.verdict import Verdict, read_gate

# The budget CI renders the PR comment with (`report render --budget github-comment`).
COMMENT_BUDGET = "github-comment"


def read_report(path: Path) -> str:
    from audit.errors import InputError, Location, unreadable_input

    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise unreadable_input(error, str(path)) from None
    except UnicodeDecodeError as error:
        raise InputError(f"cannot read: {error}", location=Location(str(path))) from None


def direct_request(
    report: Path, gate: Path | None, key: str | None, timestamp: str, *, dry_run: bool
) -> PublishRequest:
    """A report rendered by this pipeline, with the gate result it showed (None: not gated)."""
    text = read_report(report)
    marker = require_marker(text, str(report))
    return PublishRequest(
        body=text,
        key=marker_key(key or marker.key),
        verdict=Verdict(read_gate(gate) if gate else None),
        timestamp=timestamp,
        dry_run=dry_run,
    )


def stage_artifact(
    directory: Path, study: StudyDocuments, pr_number: int, head_sha: str
) -> list[Path]:
    """The unprivileged job's part: the study's documents and the PR they are for."""
    return write_artifact(directory, Handover(pr_number, head_sha), study)


def render_comment(study: StudyDocuments, gate: GateResult) -> str:
    """The PR comment for `study` showing `gate`, as `report render --budget` makes it."""
    from audit.report import load_inputs, render

    inputs = load_inputs(study.analysis, study.results, study.checkpoint)
    inputs.sources["gate"] = "(gate recomputed by the publisher)"
    return render(inputs, "md", gate=gate, budget=COMMENT_BUDGET)


def artifact_request(
    directory: Path,
    private: Path,
    *,
    trust_ref: str,
    repo: Path | None,
    at: datetime,
    timestamp: str,
    dry_run: bool,
) -> PublishRequest:
    """The privileged publisher's own request: judged and rendered here, from data only.

    The status key is the id of the EDD the gate judged, never a field of the artifact.
    """
    from audit.publish.judge import recompute_gate

    handover, study = read_artifact(directory, private)
    gate = recompute_gate(study, trust_ref, repo, at)
    return PublishRequest(
        body=render_comment(study, gate),
        key=marker_key(judged_edd_id(gate)),
        verdict=Verdict(gate),
        timestamp=timestamp,
        sha=handover.head_sha,
        pr_number=handover.pr_number,
        dry_run=dry_run,
        untrusted=True,
    )


def judged_edd_id(gate: GateResult) -> str:
    """The id of the EDD the gate verified: the only source of a status key."""
    if gate.edd is None:
        from audit.errors import InternalError

        raise InternalError("the recomputed gate result names no EDD")
    return gate.edd.id
