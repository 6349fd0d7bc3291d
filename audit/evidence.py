"""The one evidence builder: what the gate and the audit bundle judge, from two sources.

Live (`gather` + `attach_ledger`): the study's files, the trust files from git, the
sealed runs from the tracking server. Offline (`offline_evidence`, used by `bundle
verify`): the same documents and the sealed records proven by their inclusion proofs,
all taken from a bundle's members. Both give one `StudyEvidence`; `gate_inputs` turns it
into the gate's plain inputs, so the gate and `bundle verify` judge alike.

Deliberate recomputation: `gate_inputs` recomputes the analysis (with the seed and
resample count analysis.json records) from the sealed values when sealed runs are
available, else from results.json; the gate then compares analysis.json with it, so a
hand-edited analysis or edited results cannot pass. Each document is parsed once.

The gate's recomputation is the cheap one (`descriptive=False`): every value a verdict
or the decision depends on (pairs, deltas, t-tests, bounds, verdicts, the decision) is
recomputed from the evidence; only what nothing decides on is left out (the Wilcoxon
cross-check, sample-size hints, factorial effects). `bundle verify` recomputes the full
analysis and compares it leaf by leaf. Within one process (`mlaudit finish`) an analysis
just computed from results.json is adopted as the recomputation only when the document
the gate would analyse (the sealed values) equals results.json and the method matches,
so the same computation is never run twice and never skipped when it could differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.documents import Analysis, GateResult, Results, read_analysis, read_results
from audit.edd import Edd, load_edd
from audit.errors import MlauditError, ProtocolError
from audit.gate import GateInputs, TrackingEvidence

if TYPE_CHECKING:
    from audit.edd.verify import EddVerification
    from audit.tracking.checkpoint import Checkpoint
    from audit.tracking.ledger import Ledger
    from audit.tracking.sealed import SealedComparison


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


@dataclass(frozen=True)
class TrackingSource:
    """Where the sealed runs are: a tracking server, and the checkpoint they must extend."""

    uri: str
    experiment: str | None = None
    checkpoint: Path | None = None


@dataclass(frozen=True)
class SealedRuns:
    """Sealed run records this study is judged against, and whether their ledger holds.

    `records` holds only proven records: verified against the live ledger, or proven
    by inclusion proofs against a bundle's checkpoint.
    """

    source: str  # the tracking URI, or "bundle"
    records: Mapping[str, Mapping[str, Any]]
    ledger_ok: bool
    problems: tuple[str, ...] = ()
    ledger: Ledger | None = None  # live only: what `bundle create` proves inclusion in
    checkpoint: Checkpoint | None = None


@dataclass
class StudyEvidence:
    edd: Edd
    verification: EddVerification
    results: Results
    analysis: Analysis
    expected_plan: dict[str, Any] | None
    plan_error: str | None
    sealed: SealedRuns | None = None
    _comparison: SealedComparison | None = field(default=None, repr=False)
    _recomputed: dict[str, Any] | None = field(default=None, repr=False)
    _recomputed_core: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def results_sha256(self) -> str:
        return self.results.sha256

    def sealed_comparison(self) -> SealedComparison | None:
        if self.sealed is None:
            return None
        if self._comparison is None:
            from audit.tracking.sealed import compare_with_sealed

            self._comparison = compare_with_sealed(self.results, self.sealed.records)
        return self._comparison


def run_time(results: Results) -> datetime | None:
    """When the protocol ran: approvals are judged as of then."""
    value = results.created_at
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def gather(files: StudyFiles, trust: TrustSource, *, at: datetime | None = None) -> StudyEvidence:
    """The live source: files and the trust ref (add sealed runs with `attach_ledger`)."""
    from audit.edd import verify_edd

    edd = load_edd(files.edd)
    results = read_results(files.results)
    analysis = read_analysis(files.analysis)
    verification = verify_edd(
        edd,
        trust_ref=trust.ref,
        repo=trust.repo,
        trust_dir=trust.directory,
        at=at or run_time(results),
    )
    return assemble(edd, verification, results, analysis)


def assemble(
    edd: Edd,
    verification: EddVerification,
    results: Results,
    analysis: Analysis,
    sealed: SealedRuns | None = None,
) -> StudyEvidence:
    """Evidence from parts either source has loaded; the signed plan is expanded here."""
    expected_plan, plan_error = _expected_plan(edd)
    return StudyEvidence(edd, verification, results, analysis, expected_plan, plan_error, sealed)


def _expected_plan(edd: Edd) -> tuple[dict[str, Any] | None, str | None]:
    from audit.protocol.plan import build_plan

    try:
        return build_plan(edd.document, source=str(edd.path)).to_dict(), None
    except ProtocolError as error:
        return None, error.user_message()


def attach_ledger(
    evidence: StudyEvidence,
    tracking_uri: str,
    *,
    experiment: str | None = None,
    checkpoint_file: Path | None = None,
) -> None:
    """The live sealed runs: fetch this study's experiment and verify its ledger."""
    evidence.sealed = fetch_sealed_runs(
        TrackingSource(tracking_uri, experiment, checkpoint_file), evidence.results
    )
    evidence._comparison = None
    evidence._recomputed = None
    evidence._recomputed_core = None


def fetch_sealed_runs(source: TrackingSource, results: Results) -> SealedRuns:
    from audit.documents import read_checkpoint
    from audit.tracking.ledger import fetch_ledger, resolve_experiment
    from audit.tracking.rest import connect_reader

    checkpoint = read_checkpoint(source.checkpoint) if source.checkpoint else None
    client = connect_reader(source.uri)
    experiment_id = resolve_experiment(client, source.experiment or results.experiment_id)
    ledger = fetch_ledger(client, source.uri, experiment_id)
    return _sealed_runs(ledger, source.uri, checkpoint)


def sealed_runs_from_ledger(ledger: Ledger, uri: str, checkpoint_file: Path | None) -> SealedRuns:
    """The sealed runs of a ledger already fetched in this process (`mlaudit finish`)."""
    from audit.documents import read_checkpoint

    checkpoint = read_checkpoint(checkpoint_file) if checkpoint_file else None
    return _sealed_runs(ledger, uri, checkpoint)


def _sealed_runs(ledger: Ledger, uri: str, checkpoint: Checkpoint | None) -> SealedRuns:
    import hashlib
    import json

    from audit.tracking.ledger_verify import verify_ledger

    verification = verify_ledger(ledger, checkpoint)
    # Only records that still match their seal are evidence; a run changed below
    # MLflow is a ledger finding, and its trial counts as unsealed, not as a value.
    records = {
        leaf.run_id: json.loads(ledger.records[leaf.run_id])
        for leaf in ledger.leaves
        if leaf.run_id in ledger.records
        and hashlib.sha256(ledger.records[leaf.run_id]).hexdigest() == leaf.sha256
    }
    problems = tuple(f.message for f in verification.findings)
    return SealedRuns(uri, records, verification.ok, problems, ledger, checkpoint)


def recompute_analysis(evidence: StudyEvidence) -> dict[str, Any]:
    """The analysis from the sealed values (or results.json), as analysis.json's method ran it.

    Computed once per study evidence: the gate and `bundle verify` both judge this one.
    """
    if evidence._recomputed is None:
        evidence._recomputed = _recompute(evidence, descriptive=True)
    return evidence._recomputed


def recompute_decision(evidence: StudyEvidence) -> dict[str, Any]:
    """What the gate compares: the full recomputation when there is one, else the cheap one
    (every decision-bearing value recomputed, the descriptive extras left out)."""
    if evidence._recomputed is not None:
        return evidence._recomputed
    if evidence._recomputed_core is None:
        evidence._recomputed_core = _recompute(evidence, descriptive=False)
    return evidence._recomputed_core


def adopt_analysis(evidence: StudyEvidence, analysis: Mapping[str, Any]) -> bool:
    """Use an analysis computed in this process from results.json as the recomputation.

    Only when it is exactly what `recompute_analysis` would compute: the document the
    gate analyses (the sealed values, when there are sealed runs) equals results.json,
    and the analysis was made with the seed and resample count analysis.json records,
    from these results bytes. Otherwise nothing is adopted and the gate recomputes.
    """
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

    method = analysis.get("method") or {}
    same_method = (
        method.get("seed") == evidence.analysis.method("seed", DEFAULT_SEED)
        and method.get("resamples") == evidence.analysis.method("resamples", DEFAULT_RESAMPLES)
        and analysis.get("results_sha256") == evidence.results.sha256
    )
    if not same_method or _analysed_document(evidence) != evidence.results.document:
        return False
    evidence._recomputed = dict(analysis)
    return True


def _analysed_document(evidence: StudyEvidence) -> Mapping[str, Any]:
    if evidence.sealed is None:
        return evidence.results.document
    from audit.tracking.sealed import sealed_document

    return sealed_document(evidence.results, evidence.sealed.records)


def _recompute(evidence: StudyEvidence, *, descriptive: bool) -> dict[str, Any]:
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    return analyze_results(
        _analysed_document(evidence),
        results_sha256=evidence.results.sha256,
        seed=evidence.analysis.method("seed", DEFAULT_SEED),
        resamples=evidence.analysis.method("resamples", DEFAULT_RESAMPLES),
        source=evidence.results.source,
        descriptive=descriptive,
    )


def tracking_evidence(evidence: StudyEvidence) -> TrackingEvidence | None:
    comparison = evidence.sealed_comparison()
    if evidence.sealed is None or comparison is None:
        return None
    return TrackingEvidence(
        evidence.sealed.source,
        comparison.unsealed,
        evidence.sealed.ledger_ok,
        evidence.sealed.problems,
        differences=tuple(str(d) for d in comparison.differences),
    )


def gate_inputs(evidence: StudyEvidence) -> GateInputs:
    recomputed: dict[str, Any] | None = None
    recompute_error = None
    try:
        recomputed = recompute_decision(evidence)
    except MlauditError as error:
        # results.json itself is broken: the gate must fail, saying why.
        recompute_error = error.user_message()
    return GateInputs(
        edd=evidence.edd,
        verification_passed=evidence.verification.passed,
        verification_reasons=tuple(evidence.verification.reasons),
        results=evidence.results.document,
        results_sha256=evidence.results.sha256,
        analysis=evidence.analysis.document,
        recomputed_analysis=recomputed,
        recompute_error=recompute_error,
        expected_plan=evidence.expected_plan,
        plan_error=evidence.plan_error,
        tracking=tracking_evidence(evidence),
    )


def judge_study(
    files: StudyFiles,
    trust: TrustSource,
    *,
    at: datetime | None = None,
    tracking: TrackingSource | None = None,
) -> GateResult:
    """The gate's result for a study's documents: what `mlaudit gate` decides, as a value."""
    from audit.gate import decide

    evidence = gather(files, trust, at=at)
    if tracking is not None:
        attach_ledger(
            evidence,
            tracking.uri,
            experiment=tracking.experiment,
            checkpoint_file=tracking.checkpoint,
        )
    return decide(gate_inputs(evidence))
