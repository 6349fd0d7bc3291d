"""Offline verification of an audit bundle: no network, no server.

Each check appends findings (file, field, message) instead of stopping at the
first problem, so an auditor sees every discrepancy at once. The study's evidence
is built by the one evidence builder (audit.evidence) from the bundle's members:
documents through the strict readers, sealed records proven by inclusion proofs,
then compared with results.json trial by trial and judged by the same gate.
"""

from __future__ import annotations

import hashlib
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
from audit.findings import Finding, json_list

if TYPE_CHECKING:
    from audit.edd import Edd
    from audit.edd.verify import EddVerification
    from audit.evidence import StudyEvidence

# Which schema each document role of the manifest's layout must satisfy.
_ROLE_SCHEMAS = {"results": "results", "analysis": "analysis", "gate": "gate"}


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

    def check_findings(self) -> list[Finding]:
        """One finding per check, for the shared renderers."""
        return [Finding(name, ok, "ok" if ok else self._failures(name)) for name, ok in self.checks]

    def _failures(self, check: str) -> str:
        count = sum(1 for f in self.findings if f.id == check)
        return f"{count} finding(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "passed": self.passed,
            "edd": self.edd,
            "decision": self.decision,
            "checks": [{"check": name, "passed": ok} for name, ok in self.checks],
            "findings": json_list(self.findings),
            "notes": self.notes,
        }


class _Context:
    def __init__(self, members: Mapping[str, bytes], report: BundleReport) -> None:
        self.members = members
        self.report = report
        self.manifest: dict[str, Any] = {}
        self.edd: Edd | None = None
        self.verification: EddVerification | None = None
        self.proven: dict[str, dict[str, Any]] = {}
        self.records_ok = True
        self.record_problems: list[str] = []
        self.evidence: StudyEvidence | None = None
        self._documents: dict[str, dict[str, Any] | None] = {}
        self.check = ""

    def fail(self, file: str, field_: str, message: str) -> None:
        pointer = f"{file}:{field_}" if field_ else file
        self.report.findings.append(Finding(self.check, False, message, pointer))

    def path(self, role: str) -> str | None:
        path = self.manifest.get("layout", {}).get(role)
        return path if isinstance(path, str) and path in self.members else None

    def json(self, role: str) -> dict[str, Any] | None:
        """A document member through the one strict reader; parsed once, problems reported once."""
        if role in self._documents:
            return self._documents[role]
        from audit.documents import parse_object
        from audit.errors import ValidationFailed

        document = None
        path = self.path(role)
        if path is None:
            self.fail(layout.MANIFEST, f"/layout/{role}", "missing from the bundle")
        else:
            try:
                document = parse_object(self.members[path], path, _ROLE_SCHEMAS.get(role))
            except ValidationFailed as error:
                for pointer, message in error.problems:
                    self.fail(path, pointer, message)
            except MlauditError as error:
                self.fail(path, "", error.message)
        self._documents[role] = document
        return document


def verify_bundle(path: Path, *, at: datetime | None = None) -> BundleReport:
    report = BundleReport(str(path))
    members = read_archive(path, Limits())
    ctx = _Context(members, report)
    for name, check in CHECKS:
        ctx.check = name
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
    from audit.documents import parse_json

    raw = ctx.members.get(layout.MANIFEST)
    if raw is None:
        raise BundleError("the bundle has no manifest.json")
    manifest = parse_json(raw, layout.MANIFEST)
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
        verification = verify_edd(edd, trust_dir=trust, at=_verification_time(ctx, at))
        ctx.verification = verification
        if not verification.passed:
            for reason in verification.reasons or ["approvals do not reach the quorum"]:
                ctx.fail(edd_path, "/approvals", reason)


def _check_records(ctx: _Context, at: datetime | None) -> None:
    """Prove each sealed record, then compare results.json with the proven ones."""
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
        ctx.records_ok = False
        return
    from audit.documents import parse_checkpoint_document

    try:
        cp = parse_checkpoint_document(ctx.members[str(ctx.path("checkpoint"))], layout.CHECKPOINT)
    except MlauditError as error:
        ctx.fail(layout.CHECKPOINT, "", error.message)
        ctx.records_ok = False
        return
    for name in names:
        _prove_record(ctx, name, cp.size, bytes.fromhex(cp.root))


def _prove_record(ctx: _Context, name: str, size: int, root: bytes) -> None:
    from audit.documents import parse_json
    from audit.tracking.sealed import prove_record

    problem: str | None
    try:
        entry = parse_json(ctx.members[name], name)
    except MlauditError as error:
        entry, problem = None, f"not a sealed record entry: {error.message}"
    else:
        problem = (
            prove_record(entry, size, root)
            if isinstance(entry, dict)
            else "not a sealed record entry"
        )
    if problem is None and isinstance(entry, dict):
        ctx.proven[str(entry["run_id"])] = entry["record"]
        return
    field_ = {
        "recomputed record digest differs from its seal": "/record",
        "does not prove inclusion in the checkpoint": "/inclusion_proof",
    }.get(str(problem), "")
    ctx.fail(name, field_, str(problem))
    ctx.records_ok = False
    ctx.record_problems.append(f"{name}: {problem}")


def _check_evidence(ctx: _Context, at: datetime | None) -> None:
    """The offline source of the one evidence builder: documents and proven sealed runs."""
    from audit.documents import parse_analysis, parse_results
    from audit.evidence import SealedRuns, assemble

    results_path, analysis_path = ctx.path("results"), ctx.path("analysis")
    if ctx.json("results") is None or ctx.json("analysis") is None:
        return
    if ctx.edd is None or ctx.verification is None or not results_path or not analysis_path:
        ctx.fail(layout.GATE, "", "cannot be judged: the EDD did not load")
        return
    results = parse_results(ctx.members[results_path], results_path)
    analysis = parse_analysis(ctx.members[analysis_path], analysis_path)
    sealed = None
    if any(n.startswith(layout.RECORDS_DIR + "/") for n in ctx.members):
        sealed = SealedRuns("bundle", ctx.proven, ctx.records_ok, tuple(ctx.record_problems))
    ctx.evidence = assemble(ctx.edd, ctx.verification, results, analysis, sealed)
    comparison = ctx.evidence.sealed_comparison()
    for difference in comparison.differences if comparison else ():
        ctx.fail(
            layout.RESULTS,
            difference.pointer,
            f"trial {difference.trial}: {difference.field}: {difference.message}",
        )
    for trial in comparison.unsealed if comparison else ():
        ctx.fail(layout.RESULTS, "/trials", f"trial {trial} has no proven sealed record")


def _check_analysis(ctx: _Context, at: datetime | None) -> None:
    """analysis.json must equal the analysis recomputed from the (sealed) evidence, leaf by leaf."""
    from audit.evidence import recompute_analysis

    evidence = ctx.evidence
    if evidence is None:
        return
    if evidence.analysis.results_sha256 != evidence.results.sha256:
        ctx.fail(layout.ANALYSIS, "/results_sha256", "analysis was computed from other results")
    fresh = dict(recompute_analysis(evidence))
    given = dict(evidence.analysis.document)
    # Software versions say where the analysis ran, not what it found: an auditor's
    # newer numpy must not read as tampering. Differences are noted instead.
    given["method"] = dict(given.get("method") or {})
    fresh["method"] = dict(fresh.get("method") or {})
    given_software = given["method"].pop("software", None)
    fresh_software = fresh["method"].pop("software", None)
    if given_software != fresh_software:
        ctx.report.notes.append(
            f"analysis was computed with {given_software}, re-computed with {fresh_software}"
        )
    _compare(ctx, layout.ANALYSIS, given, fresh)


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
    from audit.evidence import gate_inputs
    from audit.gate import decide

    gate = ctx.json("gate")
    if gate is None:
        return
    if bool(gate.get("passed")) != bool(ctx.manifest["decision"]["passed"]):
        ctx.fail(layout.MANIFEST, "/decision/passed", "differs from the gate result")
    evidence = ctx.evidence
    if evidence is None:
        ctx.fail(layout.GATE, "", "cannot be recomputed: the evidence did not load")
        return
    sealed = evidence.sealed
    # The sealed records are checked on their own above; the gate's tracking rule is
    # re-judged only when the gate was run against a tracking server.
    if not any(r.get("rule") == "tracking-sealed" for r in gate.get("rules", [])):
        evidence.sealed = None
    try:
        fresh = {r.rule: r.passed for r in decide(gate_inputs(evidence)).rules}
    finally:
        evidence.sealed = sealed
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


def _check_metric_sources(ctx: _Context, at: datetime | None) -> None:
    """Each trial's metric source files against results.json, and its digest against the seal."""
    from audit.bundle import metric_sources

    results = ctx.json("results")
    if results is not None:
        notes = metric_sources.check(results, ctx.members, ctx.proven, ctx.fail)
        if notes:
            ctx.report.notes.append(
                f"{len(notes)} metric source file(s) not in the bundle, e.g. {notes[0]}"
            )


CHECKS: tuple[tuple[str, Callable[[_Context, datetime | None], None]], ...] = (
    ("manifest", _check_manifest),
    ("attestation", _check_attestation),
    ("edd-and-approvals", _check_edd),
    ("tracking-records", _check_records),
    ("results-sealed", _check_evidence),
    ("metric-sources", _check_metric_sources),
    ("analysis-recomputed", _check_analysis),
    ("gate-recomputed", _check_gate),
)
