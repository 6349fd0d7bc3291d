"""Assemble an audit bundle from evidence given as plain bytes and values.

The core never reads files or talks to servers: the CLI gathers the evidence
(EDD, approvals, trust files, results, analysis, gate, reports, sealed run
records with inclusion proofs, environment, dvc.lock) and passes it in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from audit import __version__
from audit.bundle import layout
from audit.bundle.archive import check_member_name, write_archive
from audit.bundle.attestation import envelope, statement
from audit.bundle.index import render_index
from audit.bundle.signing import BundleSigner


@dataclass(frozen=True)
class SealedRecord:
    """One trial's sealed MLflow record and its place in the Merkle ledger."""

    experiment_id: str
    run_id: str
    seq: int
    sha256: str
    record: Mapping[str, Any]
    leaf_index: int
    inclusion_proof: Sequence[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "sha256": self.sha256,
            "leaf_index": self.leaf_index,
            "inclusion_proof": list(self.inclusion_proof),
            "record": dict(self.record),
        }


@dataclass(frozen=True)
class BundleInputs:
    edd_name: str
    edd: bytes
    approvals: Mapping[str, bytes]
    trust_files: Mapping[str, bytes]
    trust_source: Mapping[str, Any]
    results: bytes
    analysis: bytes
    gate: bytes
    reports: Mapping[str, bytes] = field(default_factory=dict)
    records: Sequence[SealedRecord] = ()
    checkpoint: bytes | None = None
    environment: Mapping[str, bytes] = field(default_factory=dict)
    dvc_lock: bytes | None = None
    metric_sources: Mapping[str, bytes] = field(default_factory=dict)  # member name -> bytes


def _json_bytes(data: Any) -> bytes:
    from audit.documents import dumps

    return dumps(data)


def _content_members(inputs: BundleInputs) -> tuple[dict[str, bytes], dict[str, str]]:
    members: dict[str, bytes] = {}
    roles: dict[str, str] = {}

    def put(path: str, data: bytes, role: str | None = None) -> None:
        check_member_name(path)
        members[path] = data
        if role:
            roles[role] = path

    put(f"{layout.EDD_DIR}/{Path(inputs.edd_name).name}", inputs.edd, "edd")
    for name, sig in sorted(inputs.approvals.items()):
        put(f"{layout.APPROVALS_DIR}/{Path(name).name}", sig)
    for name, data in sorted(inputs.trust_files.items()):
        put(f"{layout.TRUST_DIR}/{Path(name).name}", data)
    put(layout.TRUST_SOURCE, _json_bytes(dict(inputs.trust_source)), "trust_source")
    put(layout.RESULTS, inputs.results, "results")
    put(layout.ANALYSIS, inputs.analysis, "analysis")
    put(layout.GATE, inputs.gate, "gate")
    if "report.md" in inputs.reports:
        put(layout.REPORT_MD, inputs.reports["report.md"], "report_md")
    if "report.html" in inputs.reports:
        put(layout.REPORT_HTML, inputs.reports["report.html"], "report_html")
    for record in inputs.records:
        path = f"{layout.RECORDS_DIR}/{record.experiment_id}/{record.seq:08d}-{record.run_id}.json"
        put(path, _json_bytes(record.to_json()))
    if inputs.checkpoint is not None:
        put(layout.CHECKPOINT, inputs.checkpoint, "checkpoint")
    for name, data in sorted(inputs.environment.items()):
        put(f"{layout.ENVIRONMENT_DIR}/{Path(name).name}", data)
    if inputs.dvc_lock is not None:
        put(layout.DVC_LOCK, inputs.dvc_lock, "dvc_lock")
    for name, data in sorted(inputs.metric_sources.items()):
        put(name, data)
    return members, roles


def build_members(inputs: BundleInputs, sign_key: Path | None = None) -> dict[str, bytes]:
    """Every member of the bundle, keyed by its path; deterministic for the same inputs."""
    members, roles = _content_members(inputs)
    from audit.bundle.exports import add_exports
    from audit.documents import parse_object

    add_exports(members, roles)  # OSCAL, CycloneDX, model card, evidence map (listed below)

    results = parse_object(inputs.results, layout.RESULTS, "results")
    gate = parse_object(inputs.gate, layout.GATE, "gate")
    edd_meta = {k: results["edd"][k] for k in ("id", "version", "digest")}
    members[layout.INDEX] = render_index(edd_meta, gate, sorted([*members, layout.INDEX]))
    roles["index"] = layout.INDEX
    signer = BundleSigner.load(sign_key) if sign_key is not None else None
    _add_attestations(members, roles, gate, results, signer)
    manifest = {
        "schema": "mlaudit/bundle/v1",
        "mlaudit_version": __version__,
        "edd": edd_meta,
        "decision": {"passed": bool(gate.get("passed")), "reasons": list(gate.get("reasons", []))},
        "verified_at": verified_at(results),
        "trust": {
            "ref": inputs.trust_source.get("ref"),
            "commit": inputs.trust_source.get("commit"),
            "protected": bool(inputs.trust_source.get("protected", False)),
        },
        "signed": sign_key is not None,
        "layout": roles,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
    }
    members[layout.MANIFEST] = _json_bytes(manifest)
    predicate = {"edd": edd_meta, "decision": manifest["decision"], "signed": sign_key is not None}
    stmt = statement(members, predicate)
    members[layout.ATTESTATION] = _json_bytes(envelope(stmt, signer))
    return members


def _add_attestations(
    members: dict[str, bytes],
    roles: dict[str, str],
    gate: Mapping[str, Any],
    results: Mapping[str, Any],
    signer: BundleSigner | None,
) -> None:
    """The standard attestations, and the public key their standard signatures need.

    Added before the manifest, so the manifest and the main statement cover them.
    """
    from audit.bundle.predicates import TEST_RESULT_TYPE, gate_test_result

    public = signer.standard_public if signer is not None else None
    if public is not None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from audit.bundle.signing import sslib_key, sslib_keyid

        line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        members[layout.SIGNER_PUB] = line + b" mlaudit-bundle-signer\n"
        key = {"keyid": sslib_keyid(public), **sslib_key(public)}
        members[layout.SIGNER_SSLIB] = _json_bytes(key)
        roles["signer_sslib"] = layout.SIGNER_SSLIB
    subjects, predicate = gate_test_result(members, gate, results)
    stmt = statement({}, predicate, TEST_RESULT_TYPE, subjects)
    members[layout.TEST_RESULT] = _json_bytes(envelope(stmt, signer))
    roles["test_result"] = layout.TEST_RESULT


def verified_at(results: Mapping[str, Any]) -> str:
    """The moment approvals are judged at offline: when the protocol ran."""
    value = results.get("created_at")
    if not isinstance(value, str) or not value:
        from audit.errors import InputError, Location

        raise InputError(
            "no created_at: the time approvals are judged at offline is unknown",
            location=Location("results.json", "/created_at"),
        )
    return value


def write_bundle(inputs: BundleInputs, target: BinaryIO, sign_key: Path | None = None) -> None:
    write_archive(build_members(inputs, sign_key), target)
