"""Gather the evidence for a bundle from files, the trust ref and the tracking server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.bundle.create import BundleInputs, SealedRecord
from audit.errors import BundleError, InputError, Location


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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", location=Location(str(path))) from None


def collect_inputs(request: BundleRequest) -> BundleInputs:
    from audit.edd import verify_edd
    from audit.edd.verify import approval_files
    from audit.evidence import read_json, run_time

    results_bytes, results = read_json(request.results_file)
    gate_bytes, _ = read_json(request.gate_file)
    analysis_bytes, _ = read_json(request.analysis_file)
    verification = verify_edd(
        request.edd,
        trust_ref=request.trust_ref,
        repo=request.repo,
        trust_dir=request.trust_dir,
        at=run_time(results),
    )
    reports = {
        name: _read(path)
        for name, path in (("report.md", request.report_md), ("report.html", request.report_html))
        if path is not None
    }
    records, checkpoint = _records(request, results)
    return BundleInputs(
        edd_name=request.edd.name,
        edd=_read(request.edd),
        approvals={p.name: _read(p) for p in approval_files(request.edd)},
        trust_files=dict(verification.trust_files),
        trust_source={
            "ref": verification.trust_ref,
            "commit": verification.trust_commit,
            "protected": verification.protected,
        },
        results=results_bytes,
        analysis=analysis_bytes,
        gate=gate_bytes,
        reports=reports,
        records=records,
        checkpoint=checkpoint,
        environment=_environment(request, results),
        dvc_lock=_dvc_lock(request),
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


def _records(
    request: BundleRequest, results: dict[str, Any]
) -> tuple[list[SealedRecord], bytes | None]:
    """Every trial's sealed record with its inclusion proof in the (given or new) checkpoint."""
    if not request.tracking_uri:
        return [], None
    from audit.evidence import read_json
    from audit.tracking.checkpoint import parse_checkpoint
    from audit.tracking.client import connect
    from audit.tracking.ledger import (
        fetch_ledger,
        inclusion_proof,
        resolve_experiment,
        take_checkpoint,
        verify_ledger,
    )

    client = connect(request.tracking_uri)
    recorded = (results.get("tracking") or {}).get("experiment_id")
    ledger = fetch_ledger(
        client, request.tracking_uri, resolve_experiment(client, request.experiment or recorded)
    )
    checkpoint = None
    if request.checkpoint_file is not None:
        _, document = read_json(request.checkpoint_file)
        checkpoint = parse_checkpoint(document, str(request.checkpoint_file))
    verification = verify_ledger(ledger, checkpoint)
    if not verification.ok:
        problems = "; ".join(f.message for f in verification.findings[:5])
        raise BundleError(f"the tracking ledger does not verify: {problems}")
    if checkpoint is None:
        checkpoint = take_checkpoint(ledger)
    from audit.tracking.runspec import sealed_execution_run, sealed_trial_runs

    in_checkpoint = {
        leaf.run_id: json.loads(ledger.records[leaf.run_id])
        for leaf in ledger.leaves[: checkpoint.size]
        if leaf.run_id in ledger.records
    }
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
                record=json.loads(ledger.records[run_id]),
                leaf_index=proof.index,
                inclusion_proof=proof.path,
            )
        )
    checkpoint_json = checkpoint.to_json()
    checkpoint_json.pop("records", None)
    checkpoint_json.pop("taken_at", None)  # keep the bundle deterministic for the same inputs
    return records, (json.dumps(checkpoint_json, indent=2, sort_keys=True) + "\n").encode()
