"""Offline verification of an audit bundle: no network, no server.

Each check appends findings (file, field, message) instead of stopping at the
first problem, so an auditor sees every discrepancy at once.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.bundle import layout
from audit.bundle.archive import Limits, read_archive
from audit.bundle.attestation import open_envelope
from audit.errors import BundleError, MlauditError

if TYPE_CHECKING:
    from audit.edd import Edd
    from audit.edd.verify import Verification


@dataclass(frozen=True)
class Finding:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.field}: {self.message}"
            if self.field
            else f"{self.file}: {self.message}"
        )

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message}


@dataclass
class BundleReport:
    path: str
    checks: list[tuple[str, bool]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    edd: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "passed": self.passed,
            "edd": self.edd,
            "decision": self.decision,
            "checks": [{"check": name, "passed": ok} for name, ok in self.checks],
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
        }


class _Context:
    def __init__(self, members: Mapping[str, bytes], report: BundleReport) -> None:
        self.members = members
        self.report = report
        self.manifest: dict[str, Any] = {}
        self.edd: Edd | None = None
        self.verification: Verification | None = None
        self.recomputed: dict[str, Any] | None = None
        self.unsealed: list[str] = []
        self.records_ok = True

    def fail(self, file: str, field_: str, message: str) -> None:
        self.report.findings.append(Finding(file, field_, message))

    def json(self, role: str) -> dict[str, Any] | None:
        path = self.manifest.get("layout", {}).get(role)
        if not isinstance(path, str) or path not in self.members:
            self.fail(layout.MANIFEST, f"/layout/{role}", "missing from the bundle")
            return None
        try:
            data = json.loads(self.members[path])
        except ValueError as error:
            self.fail(path, "", f"not valid JSON: {error}")
            return None
        if not isinstance(data, dict):
            self.fail(path, "", "is not a JSON object")
            return None
        return data


def verify_bundle(path: Path, *, at: datetime | None = None) -> BundleReport:
    report = BundleReport(str(path))
    members = read_archive(path, Limits())
    ctx = _Context(members, report)
    for name, check in CHECKS:
        before = len(report.findings)
        try:
            check(ctx, at)
        except MlauditError as error:
            ctx.fail(str(error.location or path), "", error.user_message())
        report.checks.append((name, len(report.findings) == before))
        if name == "manifest" and len(report.findings) > before:
            break  # nothing else can be trusted without an intact manifest
    return report


def _check_manifest(ctx: _Context, at: datetime | None) -> None:
    from audit._resources import schema_problems

    raw = ctx.members.get(layout.MANIFEST)
    if raw is None:
        raise BundleError("the bundle has no manifest.json")
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        raise BundleError(f"manifest.json is not valid JSON: {error}") from None
    for pointer, message in schema_problems(manifest, "bundle-manifest"):
        ctx.fail(layout.MANIFEST, pointer, message)
    if ctx.report.findings:
        return
    ctx.manifest = manifest
    ctx.report.edd = dict(manifest["edd"])
    ctx.report.decision = dict(manifest["decision"])
    listed = manifest["files"]
    for name, digest in sorted(listed.items()):
        if name not in ctx.members:
            ctx.fail(name, "", "listed in the manifest but missing from the bundle")
        elif hashlib.sha256(ctx.members[name]).hexdigest() != digest:
            ctx.fail(name, "", "content does not match its sha256 in the manifest")
    unlisted = set(ctx.members) - set(listed) - {layout.MANIFEST, layout.ATTESTATION}
    for name in sorted(unlisted):
        ctx.fail(name, "", "present in the bundle but not listed in the manifest")


def _check_attestation(ctx: _Context, at: datetime | None) -> None:
    raw = ctx.members.get(layout.ATTESTATION)
    if raw is None:
        ctx.fail(layout.ATTESTATION, "", "missing")
        return
    stmt, signers = open_envelope(raw)
    subjects = {s.get("name"): s.get("digest", {}).get("sha256") for s in stmt.get("subject", [])}
    expected = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in ctx.members.items()
        if name != layout.ATTESTATION
    }
    for name in sorted(set(subjects) | set(expected)):
        if subjects.get(name) != expected.get(name):
            ctx.fail(layout.ATTESTATION, f"/subject/{name}", "does not match the bundle member")
    if ctx.manifest.get("signed") and not signers:
        ctx.fail(layout.ATTESTATION, "/signatures", "the manifest says signed but no signature")
    if signers:
        ctx.report.notes.append("attestation signed by " + ", ".join(signers))
    else:
        ctx.report.notes.append("attestation is UNSIGNED (no --sign-key was given)")


def _verification_time(ctx: _Context, at: datetime | None) -> datetime:
    if at is not None:
        return at
    return datetime.fromisoformat(str(ctx.manifest["verified_at"]).replace("Z", "+00:00"))


def _check_edd(ctx: _Context, at: datetime | None) -> None:
    from audit.edd import load_edd, verify_edd

    edd_path = ctx.manifest["layout"].get("edd")
    if edd_path not in ctx.members:
        ctx.fail(layout.MANIFEST, "/layout/edd", "the EDD is missing")
        return
    with tempfile.TemporaryDirectory(prefix="mlaudit-bundle-") as tmp:
        root = Path(tmp)
        edd_file = root / "edd" / Path(edd_path).name
        (root / "edd" / "approvals").mkdir(parents=True)
        edd_file.write_bytes(ctx.members[edd_path])
        for name, data in ctx.members.items():
            if name.startswith(layout.APPROVALS_DIR + "/"):
                (root / "edd" / "approvals" / Path(name).name).write_bytes(data)
        trust = root / "trust" / ".mlaudit"
        trust.mkdir(parents=True)
        for name in layout.TRUST_FILES:
            member = f"{layout.TRUST_DIR}/{name}"
            if member in ctx.members:
                (trust / name).write_bytes(ctx.members[member])
        edd = load_edd(edd_file)
        ctx.edd = edd
        if edd.digest != ctx.manifest["edd"]["digest"]:
            ctx.fail(edd_path, "", "EDD digest differs from the manifest's /edd/digest")
        results = ctx.json("results")
        if results is not None and results.get("edd", {}).get("digest") != edd.digest:
            ctx.fail(layout.RESULTS, "/edd/digest", "results were produced from another EDD")
        verification = verify_edd(edd_file, trust_dir=trust, at=_verification_time(ctx, at))
        ctx.verification = verification
        if not verification.passed:
            for reason in verification.reasons or ["approvals do not reach the quorum"]:
                ctx.fail(edd_path, "/approvals", reason)


def _check_records(ctx: _Context, at: datetime | None) -> None:
    import rfc8785

    from audit.tracking.merkle import verify_inclusion
    from audit.tracking.record import record_sha256
    from audit.tracking.runspec import sealed_trial_runs

    names = sorted(n for n in ctx.members if n.startswith(layout.RECORDS_DIR + "/"))
    results = ctx.json("results") or {}
    if not names:
        if results.get("tracking") or any(
            t.get("mlflow_run_id") for t in results.get("trials", [])
        ):
            ctx.fail(layout.RECORDS_DIR, "", "the study was logged to MLflow but no sealed records")
        else:
            ctx.report.notes.append("no tracking records (the study was not logged to MLflow)")
        return
    checkpoint = ctx.json("checkpoint")
    if checkpoint is None:
        return
    root = bytes.fromhex(str(checkpoint.get("root")))
    size = int(checkpoint["size"])
    proven: dict[str, dict[str, Any]] = {}
    for name in names:
        entry = json.loads(ctx.members[name])
        # JCS is idempotent, so re-serialising the parsed record gives the sealed bytes.
        digest = record_sha256(rfc8785.dumps(entry["record"]))
        if digest != entry["sha256"]:
            ctx.fail(name, "/record", "recomputed record digest differs from its seal")
            ctx.records_ok = False
            continue
        proof = [bytes.fromhex(p) for p in entry["inclusion_proof"]]
        if not verify_inclusion(bytes.fromhex(digest), entry["leaf_index"], size, proof, root):
            ctx.fail(name, "/inclusion_proof", "does not prove inclusion in the checkpoint")
            ctx.records_ok = False
            continue
        proven[str(entry["run_id"])] = entry["record"]
    for trial, run_id in sorted(sealed_trial_runs(results, proven).items()):
        if run_id is None:
            ctx.fail(layout.RESULTS, "/trials", f"trial {trial} has no proven sealed record")
            ctx.unsealed.append(trial)


def _check_analysis(ctx: _Context, at: datetime | None) -> None:
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    results_path = ctx.manifest["layout"].get("results", layout.RESULTS)
    results = ctx.json("results")
    analysis = ctx.json("analysis")
    if results is None or analysis is None:
        return
    digest = hashlib.sha256(ctx.members[results_path]).hexdigest()
    if analysis.get("results_sha256") != digest:
        ctx.fail(layout.ANALYSIS, "/results_sha256", "analysis was computed from other results")
    method = analysis.get("method") or {}
    fresh = analyze_results(
        results,
        results_sha256=digest,
        seed=int(method.get("seed", DEFAULT_SEED)),
        resamples=int(method.get("resamples", DEFAULT_RESAMPLES)),
    )
    ctx.recomputed = fresh
    # Software versions say where the analysis ran, not what it found: an auditor's
    # newer numpy must not read as tampering. Differences are noted instead.
    given_software = (analysis.get("method") or {}).pop("software", None)
    fresh_software = (fresh.get("method") or {}).pop("software", None)
    if given_software != fresh_software:
        ctx.report.notes.append(
            f"analysis was computed with {given_software}, re-computed with {fresh_software}"
        )
    _compare(ctx, layout.ANALYSIS, analysis, fresh)


def _compare(ctx: _Context, file: str, given: Any, fresh: Any, pointer: str = "") -> None:
    """Report the first differing leaves between a bundled document and a recomputed one."""
    if isinstance(given, dict) and isinstance(fresh, dict):
        for key in sorted(set(given) | set(fresh)):
            _compare(ctx, file, given.get(key), fresh.get(key), f"{pointer}/{key}")
    elif isinstance(given, list) and isinstance(fresh, list) and len(given) == len(fresh):
        for index, (a, b) in enumerate(zip(given, fresh, strict=True)):
            _compare(ctx, file, a, b, f"{pointer}/{index}")
    elif isinstance(given, float) and isinstance(fresh, float):
        if abs(given - fresh) > 1e-9 * max(1.0, abs(given), abs(fresh)):
            ctx.fail(file, pointer, f"is {given!r}, recomputed {fresh!r}")
    elif given != fresh:
        ctx.fail(file, pointer, f"is {given!r}, recomputed {fresh!r}")


def _check_gate(ctx: _Context, at: datetime | None) -> None:
    """Judge the gate again from the bundled evidence; every rule must come out the same."""
    from audit.gate import GateInputs, TrackingEvidence, decide

    gate = ctx.json("gate")
    results = ctx.json("results")
    analysis = ctx.json("analysis")
    if gate is None or results is None or analysis is None:
        return
    if bool(gate.get("passed")) != bool(ctx.manifest["decision"]["passed"]):
        ctx.fail(layout.MANIFEST, "/decision/passed", "differs from the gate result")
    if ctx.edd is None or ctx.verification is None:
        ctx.fail(layout.GATE, "", "cannot be recomputed: the EDD did not load")
        return
    expected_plan, plan_error = _expected_plan(ctx.edd)
    tracking = None
    # The sealed records are checked on their own above; the gate's tracking rule is
    # re-judged only when the gate was run against a tracking server.
    if any(r.get("rule") == "tracking-sealed" for r in gate.get("rules", [])):
        tracking = TrackingEvidence("bundle", tuple(ctx.unsealed), ctx.records_ok)
    results_path = ctx.manifest["layout"].get("results", layout.RESULTS)
    inputs = GateInputs(
        edd=ctx.edd,
        verification_passed=ctx.verification.passed,
        verification_reasons=tuple(ctx.verification.reasons),
        results=results,
        results_sha256=hashlib.sha256(ctx.members[results_path]).hexdigest(),
        analysis=analysis,
        recomputed_analysis=ctx.recomputed,
        expected_plan=expected_plan,
        plan_error=plan_error,
        tracking=tracking,
    )
    fresh = {r.rule: r.passed for r in decide(inputs).rules}
    given = {str(r.get("rule")): bool(r.get("passed")) for r in gate.get("rules", [])}
    for rule in sorted(set(fresh) | set(given)):
        if fresh.get(rule) != given.get(rule):
            ctx.fail(
                layout.GATE,
                f"/rules/{rule}",
                f"recorded {_verdict(given.get(rule))}, recomputed {_verdict(fresh.get(rule))}",
            )
    if bool(gate.get("passed")) != all(fresh.values()):
        ctx.fail(layout.GATE, "/passed", "differs from the recomputed decision")


def _verdict(passed: bool | None) -> str:
    return "absent" if passed is None else ("pass" if passed else "fail")


def _expected_plan(edd: Edd) -> tuple[dict[str, Any] | None, str | None]:
    from audit.errors import ProtocolError
    from audit.protocol.plan import build_plan

    try:
        return build_plan(edd.document).to_dict(), None
    except ProtocolError as error:
        return None, error.user_message()


CHECKS: tuple[tuple[str, Callable[[_Context, datetime | None], None]], ...] = (
    ("manifest", _check_manifest),
    ("attestation", _check_attestation),
    ("edd-and-approvals", _check_edd),
    ("tracking-records", _check_records),
    ("analysis-recomputed", _check_analysis),
    ("gate-recomputed", _check_gate),
)
