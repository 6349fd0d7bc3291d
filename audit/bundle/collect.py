"""The evidence for a bundle, from the one evidence builder (audit.evidence, live source).

The study's documents are parsed once, the EDD verified once on the bytes that go into
the bundle, the ledger fetched and verified once; the sealed records and their
inclusion proofs come from that same ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.bundle.create import BundleInputs, SealedRecord
from audit.errors import BundleError, InputError, Location

if TYPE_CHECKING:
    from audit.documents import GateResult
    from audit.evidence import StudyEvidence


@dataclass(frozen=True)
class BundleRequest:
    edd: Path
    results_file: Path
    analysis_file: Path
    gate_file: Path
    report_md: Path | None = None
    report_html: Path | None = None
    trust_ref: str | None = None
    repo: Path | None = None
    trust_dir: Path | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    checkpoint_file: Path | None = None
    dvc_lock: Path | None = None
    lock_file: Path | None = None
    sign_key: Path | None = None
    sealed_file: Path | None = None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", location=Location(str(path))) from None


def collect_inputs(request: BundleRequest, evidence: StudyEvidence | None = None) -> BundleInputs:
    """The bundle's members from the one evidence builder: each document parsed once,
    the EDD verified once on the bytes that go into the bundle, the ledger fetched once.

    `evidence` is the study as `mlaudit finish` already gathered it from these files
    (and the ledger it already fetched): nothing is read, verified or fetched twice.
    """
    from audit.documents import dumps, read_gate_result
    from audit.edd.verify import approval_files
    from audit.evidence import StudyFiles, TrustSource, attach_ledger, gather

    gathered = evidence is not None
    if evidence is None:
        evidence = gather(
            StudyFiles(request.edd, request.results_file, request.analysis_file),
            TrustSource(request.trust_ref, request.repo, request.trust_dir),
        )
    if evidence.results.created_at is None:
        raise InputError(
            "results.json has no created_at: the time approvals are judged at offline is unknown",
            location=Location(evidence.results.source, "/created_at"),
        )
    gate = read_gate_result(request.gate_file)
    sealed_part = None
    if request.sealed_file is not None:
        # The sealed runs the gate judged (gate --sealed-out): no second fetch of the ledger.
        sealed_part = read_sealed_evidence(request.sealed_file, evidence)
    elif request.tracking_uri and not gathered:
        attach_ledger(
            evidence,
            request.tracking_uri,
            experiment=request.experiment,
            checkpoint_file=request.checkpoint_file,
        )
    _check_gate(evidence, gate)
    verification = evidence.verification
    reports = {
        name: _read(path)
        for name, path in (("report.md", request.report_md), ("report.html", request.report_html))
        if path is not None
    }
    if sealed_part is None:
        records, checkpoint_json = sealed_records(evidence)
    else:
        records, checkpoint_json = sealed_part
    checkpoint = dumps(checkpoint_json) if checkpoint_json is not None else None
    results = evidence.results.document
    from audit.bundle import metric_sources

    return BundleInputs(
        edd_name=request.edd.name,
        edd=evidence.edd.raw,
        approvals={p.name: _read(p) for p in approval_files(request.edd)},
        trust_files=dict(verification.trust_files),
        trust_source={
            "ref": verification.trust_ref,
            "commit": verification.trust_commit,
            "protected": verification.protected,
        },
        results=evidence.results.raw,
        analysis=evidence.analysis.raw,
        gate=gate.raw,
        reports=reports,
        records=records,
        checkpoint=checkpoint,
        environment=_environment(request, results),
        dvc_lock=_dvc_lock(request),
        metric_sources=metric_sources.collect(results, request.results_file.parent),
    )


def _check_gate(evidence: StudyEvidence, gate: GateResult) -> None:
    """A bundle never carries a gate.json that does not follow from the evidence it carries.

    The gate is judged again here, deliberately, from the same evidence `bundle verify`
    will judge it from; the tracking rule only when gate.json was judged with one.
    """
    from audit.evidence import gate_inputs
    from audit.gate import decide

    if gate.results_sha256 not in (None, evidence.results.sha256):
        raise BundleError(
            "gate.json was judged on another results.json",
            location=Location(gate.source, "/results_sha256"),
        )
    judged_tracking = any(r.rule == "tracking-sealed" for r in gate.rules)
    sealed = evidence.sealed
    if not judged_tracking:
        evidence.sealed = None
    try:
        fresh = {r.rule: r.passed for r in decide(gate_inputs(evidence)).rules}
    finally:
        evidence.sealed = sealed
    given = {r.rule: r.passed for r in gate.rules}
    if fresh != given:
        changed = sorted(k for k in set(fresh) | set(given) if fresh.get(k) != given.get(k))
        raise BundleError(
            "gate.json does not follow from the evidence (rules " + ", ".join(changed) + " differ);"
            " run `mlaudit gate` again",
            location=Location(gate.source, "/rules"),
        )


def _environment(request: BundleRequest, results: dict[str, Any]) -> dict[str, bytes]:
    environment = (results.get("provenance") or {}).get("environment") or {}
    files: dict[str, bytes] = {}
    distributions = environment.get("distributions") or []
    files["distributions.txt"] = "".join(f"{d}\n" for d in distributions).encode()
    image = environment.get("image_digest")
    if image:
        files["image-digest.txt"] = f"{image}\n".encode()
    lock = request.lock_file
    if lock is None and environment.get("lock_file"):
        candidate = request.edd.parent / str(environment["lock_file"])
        lock = candidate if candidate.is_file() else None
    if lock is not None:
        files[lock.name] = _read(lock)
    return files


def _dvc_lock(request: BundleRequest) -> bytes | None:
    if request.dvc_lock is not None:
        return _read(request.dvc_lock)
    candidate = request.edd.parent / "dvc.lock"
    return _read(candidate) if candidate.is_file() else None


def sealed_records(
    evidence: StudyEvidence,
) -> tuple[list[SealedRecord], dict[str, Any] | None]:
    """Every trial's sealed record with its inclusion proof in the (given or new) checkpoint."""
    sealed = evidence.sealed
    if sealed is None or sealed.ledger is None:
        return [], None
    from audit.tracking.proofs import inclusion_proof, take_checkpoint
    from audit.tracking.runspec import sealed_execution_run, sealed_trial_runs

    if not sealed.ledger_ok:
        problems = "; ".join(sealed.problems[:5])
        raise BundleError(f"the tracking ledger does not verify: {problems}")
    ledger = sealed.ledger
    checkpoint = sealed.checkpoint or take_checkpoint(ledger)
    in_checkpoint = {
        leaf.run_id: sealed.records[leaf.run_id]
        for leaf in ledger.leaves[: checkpoint.size]
        if leaf.run_id in sealed.records
    }
    results = evidence.results.document
    found = sealed_trial_runs(results, in_checkpoint)
    missing = sorted(trial for trial, run in found.items() if run is None)
    if missing:
        raise BundleError(
            f"{len(missing)} trial(s) of this study have no sealed run in the checkpoint: "
            + ", ".join(missing[:5])
        )
    parent = sealed_execution_run(results, in_checkpoint)
    wanted = sorted({*(r for r in found.values() if r), *([str(parent)] if parent else [])})
    records = []
    for run_id in wanted:
        proof = inclusion_proof(ledger, run_id, checkpoint.size)
        records.append(
            SealedRecord(
                experiment_id=ledger.experiment_id,
                run_id=run_id,
                seq=proof.seq,
                sha256=proof.sha256,
                record=sealed.records[run_id],
                leaf_index=proof.index,
                inclusion_proof=proof.path,
            )
        )
    checkpoint_json = checkpoint.to_json()
    checkpoint_json.pop("records", None)
    checkpoint_json.pop("taken_at", None)  # keep the bundle deterministic for the same inputs
    return records, checkpoint_json


SEALED_SCHEMA_ID = "mlaudit/sealed/v1"


def sealed_evidence_document(evidence: StudyEvidence) -> dict[str, Any]:
    """sealed.json: the sealed records the gate judged, with their proofs and checkpoint."""
    records, checkpoint = sealed_records(evidence)
    if checkpoint is None:
        raise InputError("no sealed runs to write: give --tracking-uri")
    return {
        "schema": SEALED_SCHEMA_ID,
        "results_sha256": evidence.results.sha256,
        "checkpoint": checkpoint,
        "records": [r.to_json() for r in records],
    }


def read_sealed_evidence(
    path: Path, evidence: StudyEvidence
) -> tuple[list[SealedRecord], dict[str, Any]]:
    """Read sealed.json, prove every record offline, and attach the proven runs to `evidence`.

    The offline source of the evidence builder: nothing is fetched, and a record that
    does not prove itself against the checkpoint stops the bundle.
    """
    from audit.documents import parse_object, read_bytes
    from audit.evidence import SealedRuns
    from audit.tracking.checkpoint import parse_checkpoint
    from audit.tracking.sealed import prove_record

    file = str(path)
    document = parse_object(read_bytes(path), file, "sealed")
    if document["results_sha256"] != evidence.results.sha256:
        raise BundleError(
            "was written for another results.json", location=Location(file, "/results_sha256")
        )
    checkpoint = parse_checkpoint(document["checkpoint"], file)
    root = bytes.fromhex(checkpoint.root)
    records: list[SealedRecord] = []
    for index, entry in enumerate(document["records"]):
        problem = prove_record(entry, checkpoint.size, root)
        if problem is not None:
            raise BundleError(problem, location=Location(file, f"/records/{index}"))
        records.append(
            SealedRecord(
                experiment_id=entry["experiment_id"],
                run_id=entry["run_id"],
                seq=entry["seq"],
                sha256=entry["sha256"],
                record=entry["record"],
                leaf_index=entry["leaf_index"],
                inclusion_proof=entry["inclusion_proof"],
            )
        )
    proven = {r.run_id: dict(r.record) for r in records}
    evidence.sealed = SealedRuns(file, proven, ledger_ok=True, checkpoint=checkpoint)
    return records, dict(document["checkpoint"])
