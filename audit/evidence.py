"""Gather what the gate and the audit bundle judge: files, verification, recomputation, ledger.

This is the one place that reads the study's files and asks the tracking
server; the gate rules and the bundle builder then work on plain values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit._resources import read_json_file
from audit.edd import Edd, load_edd
from audit.errors import InputError, Location, MlauditError, ProtocolError
from audit.gate import GateInputs, TrackingEvidence

if TYPE_CHECKING:
    from audit.edd.verify import Verification
    from audit.tracking.checkpoint import Checkpoint
    from audit.tracking.ledger import Ledger
    from audit.tracking.ledger import Verification as LedgerVerification


@dataclass(frozen=True)
class StudyFiles:
    edd: Path
    results: Path
    analysis: Path


@dataclass(frozen=True)
class TrustSource:
    ref: str | None = None
    repo: Path | None = None
    directory: Path | None = None


@dataclass
class Evidence:
    edd: Edd
    verification: Verification
    results_bytes: bytes
    results: dict[str, Any]
    analysis_bytes: bytes
    analysis: dict[str, Any]
    recomputed_analysis: dict[str, Any] | None
    recompute_error: str | None
    expected_plan: dict[str, Any] | None
    plan_error: str | None
    ledger: Ledger | None = None
    ledger_verification: LedgerVerification | None = None
    checkpoint: Checkpoint | None = None

    @property
    def results_sha256(self) -> str:
        return hashlib.sha256(self.results_bytes).hexdigest()


def read_json(path: Path) -> tuple[bytes, dict[str, Any]]:
    raw, data = read_json_file(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", location=Location(str(path)))
    return raw, data


def run_time(results: dict[str, Any]) -> datetime | None:
    """When the protocol ran: approvals are judged as of then."""
    value = results.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def gather(files: StudyFiles, trust: TrustSource, *, at: datetime | None = None) -> Evidence:
    from audit.edd import verify_edd

    edd = load_edd(files.edd)
    results_bytes, results = read_json(files.results)
    analysis_bytes, analysis = read_json(files.analysis)
    verification = verify_edd(
        files.edd,
        trust_ref=trust.ref,
        repo=trust.repo,
        trust_dir=trust.directory,
        at=at or run_time(results),
    )
    expected_plan, plan_error = _expected_plan(edd, str(files.edd))
    evidence = Evidence(
        edd=edd,
        verification=verification,
        results_bytes=results_bytes,
        results=results,
        analysis_bytes=analysis_bytes,
        analysis=analysis,
        recomputed_analysis=None,
        recompute_error=None,
        expected_plan=expected_plan,
        plan_error=plan_error,
    )
    try:
        evidence.recomputed_analysis = _recompute(evidence, str(files.results))
    except MlauditError as error:
        # results.json itself is broken: the gate must fail, saying why.
        evidence.recompute_error = error.user_message()
    return evidence


def _expected_plan(edd: Edd, source: str) -> tuple[dict[str, Any] | None, str | None]:
    from audit.protocol.plan import build_plan

    try:
        return build_plan(edd.document, source=source).to_dict(), None
    except ProtocolError as error:
        return None, error.user_message()


def _recompute(evidence: Evidence, source: str) -> dict[str, Any]:
    """The analysis as results.json gives it, with the seed and resamples analysis.json used."""
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    method = evidence.analysis.get("method") or {}
    return analyze_results(
        evidence.results,
        results_sha256=evidence.results_sha256,
        seed=int(method.get("seed", DEFAULT_SEED)),
        resamples=int(method.get("resamples", DEFAULT_RESAMPLES)),
        source=source,
    )


def attach_ledger(
    evidence: Evidence,
    tracking_uri: str,
    *,
    experiment: str | None = None,
    checkpoint_file: Path | None = None,
) -> None:
    """Fetch and verify the sealed runs of this study's experiment."""
    from audit.tracking.checkpoint import parse_checkpoint
    from audit.tracking.client import connect
    from audit.tracking.ledger import fetch_ledger, resolve_experiment, verify_ledger

    checkpoint = None
    if checkpoint_file is not None:
        _, document = read_json(checkpoint_file)
        checkpoint = parse_checkpoint(document, str(checkpoint_file))
    client = connect(tracking_uri)
    recorded = (evidence.results.get("tracking") or {}).get("experiment_id")
    experiment_id = resolve_experiment(client, experiment or recorded)
    evidence.ledger = fetch_ledger(client, tracking_uri, experiment_id)
    evidence.ledger_verification = verify_ledger(evidence.ledger, checkpoint)
    evidence.checkpoint = checkpoint


def tracking_evidence(evidence: Evidence) -> TrackingEvidence | None:
    from audit.tracking.runspec import sealed_trial_runs

    ledger = evidence.ledger
    if ledger is None or evidence.ledger_verification is None:
        return None
    records = {
        leaf.run_id: json.loads(ledger.records[leaf.run_id])
        for leaf in ledger.leaves
        if leaf.run_id in ledger.records
    }
    found = sealed_trial_runs(evidence.results, records)
    unsealed = tuple(trial for trial, run in found.items() if run is None)
    verification = evidence.ledger_verification
    problems = tuple(f.message for f in verification.findings)
    return TrackingEvidence(ledger.tracking_uri, unsealed, verification.ok, problems)


def gate_inputs(evidence: Evidence) -> GateInputs:
    return GateInputs(
        edd=evidence.edd,
        verification_passed=evidence.verification.passed,
        verification_reasons=tuple(evidence.verification.reasons),
        results=evidence.results,
        results_sha256=evidence.results_sha256,
        analysis=evidence.analysis,
        recomputed_analysis=evidence.recomputed_analysis,
        recompute_error=evidence.recompute_error,
        expected_plan=evidence.expected_plan,
        plan_error=evidence.plan_error,
        tracking=tracking_evidence(evidence),
    )
