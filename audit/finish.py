"""`mlaudit finish`: analyze -> checkpoint -> gate -> report -> bundle -> verify, one process.

Each step writes the same file, byte for byte, as its own command does (`ablate analyze`,
`track checkpoint`, `gate`, `report render`, `bundle create`, with the paths given here);
what is shared is only what those commands would each redo: the imports, the study's
documents parsed once, the EDD's approvals verified once, the tracking ledger fetched once
(the checkpoint is taken from it and the gate and the bundle judge it), and the analysis
computed once (adopted as the gate's recomputation only when the sealed values equal
results.json, see audit.evidence.adopt_analysis). The gate's result is the outcome; the
report and the bundle are made whatever it says, as CI makes them after a failed gate.
Last, the bundle is checked as `bundle verify` checks it (the same checks on the file
written, recomputations included), so the job needs no second process for it.

The ledger is fetched in a thread while the analysis is computed: the fetch mostly
waits for the server, the analysis mostly computes. A checkpoint may so be written
even when the analysis then fails; it is the same file `track checkpoint` writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.bundle.verify import BundleReport
    from audit.documents import GateResult
    from audit.evidence import StudyEvidence

# Standard names in the output folder, as `bundle create --dir` expects them.
NAMES = {
    "results": "results.json",
    "analysis": "analysis.json",
    "checkpoint": "checkpoint.json",
    "gate": "gate.json",
    "junit": "gate.junit.xml",
    "report_md": "report.md",
    "report_html": "report.html",
    "bundle": "audit.bundle.tar.gz",
}


@dataclass(frozen=True)
class FinishRequest:
    out_dir: Path
    edd: Path
    trust_ref: str | None = None
    repo: Path | None = None
    trust_dir: Path | None = None
    at: datetime | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    # An already published checkpoint to extend; without one (and with a tracking URI)
    # a checkpoint is taken from the ledger fetched here and written to out_dir.
    checkpoint: Path | None = None
    with_records: bool = False
    seed: int | None = None
    resamples: int | None = None
    budget: str | None = None
    bundle: Path | None = None
    sign_key: Path | None = None
    verify: bool = True  # check the bundle written, as `bundle verify` does

    def path(self, name: str) -> Path:
        return self.out_dir / NAMES[name]


@dataclass
class FinishOutcome:
    analysis: dict[str, Any]
    gate: GateResult
    checkpoint: Path | None
    bundle: Path
    records: int
    reports: dict[str, int] = field(default_factory=dict)  # format -> characters
    verification: BundleReport | None = None  # None when not asked for


Step = Callable[[str], None]


def finish(request: FinishRequest, on_step: Step | None = None) -> FinishOutcome:
    """Run every step after the trials, in order, sharing state between them."""
    from concurrent.futures import ThreadPoolExecutor

    say = on_step or (lambda _name: None)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger") as pool:
        taking = pool.submit(_checkpoint, request)
        say("analyze")
        analysis = _analyze(request)
        if request.tracking_uri or request.checkpoint:
            say("checkpoint")
        else:
            say("checkpoint: none (no --tracking-uri: the trials were not logged and sealed)")
        ledger, checkpoint = taking.result()
    say("gate")
    evidence, gate = _gate(request, analysis, ledger, checkpoint)
    say("report")
    reports = _reports(request, checkpoint)
    say("bundle")
    bundle, records = _bundle(request, evidence, checkpoint)
    verification = None
    if request.verify:
        from audit.bundle.verify import verify_bundle

        say("verify")
        verification = verify_bundle(bundle, at=request.at)
    return FinishOutcome(analysis, gate, checkpoint, bundle, records, reports, verification)


def _analyze(request: FinishRequest) -> dict[str, Any]:
    from audit.documents import read_results, write_document
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    results = request.path("results")
    document = read_results(results)
    analysis = analyze_results(
        document.document,
        results_sha256=document.sha256,
        seed=DEFAULT_SEED if request.seed is None else request.seed,
        resamples=DEFAULT_RESAMPLES if request.resamples is None else request.resamples,
        source=str(results),
    )
    write_document(request.path("analysis"), analysis, schema="analysis")
    return analysis


def _checkpoint(request: FinishRequest) -> tuple[Any, Path | None]:
    """The ledger (fetched once) and the checkpoint the gate and the bundle prove against."""
    if not request.tracking_uri:
        return None, request.checkpoint
    from audit.documents import read_results, write_document
    from audit.errors import TamperError
    from audit.tracking.ledger import fetch_ledger, resolve_experiment
    from audit.tracking.ledger_verify import verify_ledger
    from audit.tracking.rest import connect_reader

    client = connect_reader(request.tracking_uri)
    experiment = request.experiment or read_results(request.path("results")).experiment_id
    ledger = fetch_ledger(client, request.tracking_uri, resolve_experiment(client, experiment))
    if request.checkpoint is not None:
        return ledger, request.checkpoint
    # As `track checkpoint`: never vouch for a log that is already broken.
    verification = verify_ledger(ledger)
    if not verification.ok:
        problems = "; ".join(f.message for f in verification.findings[:5])
        raise TamperError(f"the tracking ledger does not verify, no checkpoint taken: {problems}")
    from audit.tracking.proofs import take_checkpoint

    taken = take_checkpoint(ledger, with_records=request.with_records)
    path = request.path("checkpoint")
    write_document(path, taken.to_json(), schema="checkpoint")
    return ledger, path


def _gate(
    request: FinishRequest, analysis: dict[str, Any], ledger: Any, checkpoint: Path | None
) -> tuple[StudyEvidence, GateResult]:
    from audit.documents import write_document
    from audit.evidence import (
        StudyFiles,
        TrustSource,
        adopt_analysis,
        gate_inputs,
        gather,
        sealed_runs_from_ledger,
    )
    from audit.gate import decide
    from audit.report.junit import render_junit

    evidence = gather(
        StudyFiles(request.edd, request.path("results"), request.path("analysis")),
        TrustSource(request.trust_ref, request.repo, request.trust_dir),
        at=request.at,
    )
    if ledger is not None and request.tracking_uri:
        evidence.sealed = sealed_runs_from_ledger(ledger, request.tracking_uri, checkpoint)
    adopt_analysis(evidence, analysis)
    result = decide(gate_inputs(evidence))
    write_document(request.path("gate"), result.to_dict(), schema="gate")
    request.path("junit").write_text(
        render_junit(result.findings(), f"mlaudit gate {evidence.edd.id}"), encoding="utf-8"
    )
    return evidence, result


def _reports(request: FinishRequest, checkpoint: Path | None) -> dict[str, int]:
    """report.md and report.html from one read of their inputs (as `report render` reads)."""
    from audit.report import load_inputs, read_gate
    from audit.report import render as render_report

    inputs = load_inputs(request.path("analysis"), request.path("results"), checkpoint)
    gate_file = request.path("gate")
    gate = read_gate(gate_file)
    inputs.sources["gate"] = str(gate_file)
    sizes = {}
    for fmt in ("md", "html"):
        budget = request.budget if fmt == "md" else None
        text = render_report(inputs, fmt, gate=gate, budget=budget)
        request.path(f"report_{fmt}").write_text(text, encoding="utf-8")
        sizes[fmt] = len(text)
    return sizes


def _bundle(
    request: FinishRequest, evidence: StudyEvidence, checkpoint: Path | None
) -> tuple[Path, int]:
    from audit.bundle.collect import BundleRequest, collect_inputs
    from audit.bundle.create import write_bundle

    bundle_request = BundleRequest(
        edd=request.edd,
        results_file=request.path("results"),
        analysis_file=request.path("analysis"),
        gate_file=request.path("gate"),
        report_md=request.path("report_md"),
        report_html=request.path("report_html"),
        trust_ref=request.trust_ref,
        repo=request.repo,
        trust_dir=request.trust_dir,
        tracking_uri=request.tracking_uri,
        experiment=request.experiment,
        checkpoint_file=checkpoint,
        sign_key=request.sign_key,
    )
    inputs = collect_inputs(bundle_request, evidence=evidence)
    output = request.bundle or request.path("bundle")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as handle:
        write_bundle(inputs, handle, request.sign_key)
    partial.replace(output)
    return output, len(inputs.records)
