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
from audit.bundle.attestation import Signers, open_envelope
from audit.errors import BundleError, MlauditError
from audit.findings import Finding, json_list

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    # Checks that passed with nothing to check, and why (no MLflow, no checkpoint...):
    # an auditor must not read their PASS as something proven.
    unchecked: dict[str, str] = field(default_factory=dict)
    edd: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    # The bundle's DSSE envelopes as read: a verification summary names them by digest.
    attestations: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return not self.findings

    def check_findings(self) -> list[Finding]:
        """One finding per check, for the shared renderers."""
        return [Finding(name, ok, self._detail(name, ok)) for name, ok in self.checks]

    def _detail(self, check: str, ok: bool) -> str:
        if not ok:
            return self._failures(check)
        why = self.unchecked.get(check)
        return f"nothing to check: {why}" if why else "ok"

    def _failures(self, check: str) -> str:
        count = sum(1 for f in self.findings if f.id == check)
        return f"{count} finding(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "passed": self.passed,
            "edd": self.edd,
            "decision": self.decision,
            "checks": [
                {"check": name, "passed": ok}
                | ({"nothing_to_check": self.unchecked[name]} if name in self.unchecked else {})
                for name, ok in self.checks
            ],
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
        self.tsa_cert: Path | None = None

    def nothing_to_check(self, why: str) -> None:
        self.report.unchecked[self.check] = why

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


def verify_bundle(
    path: Path, *, at: datetime | None = None, tsa_cert: Path | None = None
) -> BundleReport:
    """Every check on the bundle; with `tsa_cert` a verified checkpoint timestamp is required."""
    report = BundleReport(str(path))
    members = read_archive(path, Limits())
    ctx = _Context(members, report)
    ctx.tsa_cert = tsa_cert
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
    ctx.report.attestations[layout.ATTESTATION] = raw
    stmt, signers = open_envelope(raw, layout.ATTESTATION, _standard_keys(ctx))
    subjects = {s.get("name"): s.get("digest", {}).get("sha256") for s in stmt.get("subject", [])}
    expected = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in ctx.members.items()
        if name != layout.ATTESTATION
    }
    for name in sorted(set(subjects) | set(expected)):
        if subjects.get(name) != expected.get(name):
            ctx.fail(layout.ATTESTATION, f"/subject/{name}", "does not match the bundle member")
    _record_signers(ctx, layout.ATTESTATION, signers)


def _standard_keys(ctx: _Context) -> dict[str, Ed25519PublicKey]:
    """The public key of the standard DSSE signatures, when the bundle has one."""
    from audit.bundle.signing import public_from_sslib
    from audit.documents import parse_json

    raw = ctx.members.get(layout.SIGNER_SSLIB)
    if raw is None:
        return {}
    keyid, public = public_from_sslib(parse_json(raw, layout.SIGNER_SSLIB))
    return {keyid: public}


def _record_signers(ctx: _Context, name: str, signers: Signers) -> None:
    from audit.bundle.signing import openssh_blob

    if ctx.manifest.get("signed") and not signers.ssh:
        ctx.fail(name, "/signatures", "the manifest says signed but no signature")
    keys = _standard_keys(ctx)
    if keys and not signers.standard:
        ctx.fail(name, "/signatures", "the bundle holds a standard signing key but no signature")
    blobs = {openssh_blob(key) for key in keys.values()}
    if signers.standard and not blobs <= set(signers.ssh_blobs):
        ctx.fail(name, "/signatures", "the standard signature's key did not make the SSH signature")
    if name != layout.ATTESTATION:
        return
    if signers.ssh:
        ctx.report.notes.append("attestation signed by " + ", ".join(signers.ssh))
    else:
        ctx.report.notes.append("attestation is UNSIGNED (no --sign-key was given)")
    if signers.standard:
        ctx.report.notes.append(
            "standard DSSE signature (ed25519) verifies, keyid " + ", ".join(signers.standard)
        )


def _check_standard_attestations(ctx: _Context, at: datetime | None) -> None:
    """The in-toto test result: signatures, digests, and the gate's rules as its tests."""
    from audit.bundle.predicates import TEST_RESULT_TYPE

    raw = ctx.members.get(layout.TEST_RESULT)
    if raw is None:
        ctx.report.notes.append("no standard attestations (bundle made before they existed)")
        return
    ctx.report.attestations[layout.TEST_RESULT] = raw
    stmt, signers = open_envelope(raw, layout.TEST_RESULT, _standard_keys(ctx))
    _record_signers(ctx, layout.TEST_RESULT, signers)
    if stmt.get("predicateType") != TEST_RESULT_TYPE:
        ctx.fail(layout.TEST_RESULT, "/predicateType", f"is not {TEST_RESULT_TYPE}")
        return
    predicate = stmt.get("predicate") or {}
    named = [("/subject", d) for d in stmt.get("subject", [])]
    named += [("/predicate/configuration", d) for d in predicate.get("configuration", [])]
    for pointer, entry in named:
        _check_descriptor(ctx, pointer, entry)
    gate = ctx.json("gate") or {}
    rules = gate.get("rules", [])
    tests = {
        "passedTests": [r.get("rule") for r in rules if r.get("passed")],
        "failedTests": [r.get("rule") for r in rules if not r.get("passed")],
    }
    for key, expected in tests.items():
        if predicate.get(key) != expected:
            ctx.fail(layout.TEST_RESULT, f"/predicate/{key}", "differs from the gate's rules")


def _check_descriptor(ctx: _Context, pointer: str, entry: Any) -> None:
    name = entry.get("name") if isinstance(entry, dict) else None
    digest = (entry.get("digest") or {}).get("sha256") if isinstance(entry, dict) else None
    if digest is None:
        return  # a gitCommit: not a bundle member
    data = ctx.members.get(str(name))
    if data is None:
        ctx.fail(layout.TEST_RESULT, f"{pointer}/{name}", "names a member the bundle lacks")
    elif hashlib.sha256(data).hexdigest() != digest:
        ctx.fail(layout.TEST_RESULT, f"{pointer}/{name}", "does not match the bundle member")


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
            ctx.nothing_to_check("the study was not logged to MLflow")
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


def _check_timestamp(ctx: _Context, at: datetime | None) -> None:
    """The checkpoint's RFC 3161 token: checked offline against the TSA certificate given."""
    from audit.documents import parse_checkpoint_document
    from audit.tracking.checkpoint import check_timestamp

    path = ctx.path("checkpoint")
    if path is None:
        if ctx.tsa_cert is not None:
            ctx.fail(layout.CHECKPOINT, "", "--tsa-cert given but the bundle has no checkpoint")
        ctx.nothing_to_check("the bundle has no checkpoint")
        return
    checkpoint = parse_checkpoint_document(ctx.members[path], path)
    if checkpoint.timestamp is None:
        if ctx.tsa_cert is not None:
            ctx.fail(path, "/timestamp", "--tsa-cert given but the checkpoint is not timestamped")
        ctx.nothing_to_check("the checkpoint is not timestamped")
        return
    if ctx.tsa_cert is None:
        claimed = checkpoint.timestamp.get("gen_time")
        ctx.report.notes.append(
            f"checkpoint carries an RFC 3161 timestamp ({claimed}); not checked: give --tsa-cert"
        )
        ctx.nothing_to_check("the timestamp is checked only with --tsa-cert")
        return
    try:
        when = check_timestamp(checkpoint, ctx.tsa_cert)
    except MlauditError as error:
        ctx.fail(path, "/timestamp", error.message)
        return
    ctx.report.notes.append(
        f"checkpoint existed by {when}: RFC 3161 timestamp verified with openssl ts "
        f"against {ctx.tsa_cert.name}"
    )


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
    else:
        ctx.nothing_to_check("no sealed records to compare results.json with")
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


def _check_exports(ctx: _Context, at: datetime | None) -> None:
    """The compliance exports must be what this evidence renders to (audit.bundle.exports)."""
    from audit import __version__
    from audit.bundle.exports import export_problems

    if ctx.edd is None or any(ctx.json(role) is None for role in ("results", "analysis", "gate")):
        ctx.report.notes.append("exports not re-rendered: the evidence did not load")
        return
    problems = export_problems(ctx.members, ctx.manifest["layout"])
    built_by = ctx.manifest.get("mlaudit_version")
    if problems and built_by != __version__:
        # Another mlaudit may render differently; the manifest's digests still hold them.
        ctx.report.notes.append(f"exports were written by mlaudit {built_by}; not re-rendered")
        return
    for path, message in problems:
        ctx.fail(path, "", message)


def _verdict(passed: bool | None) -> str:
    return "absent" if passed is None else ("pass" if passed else "fail")


def _check_data_pins(ctx: _Context, at: datetime | None) -> None:
    """Git LFS / lakeFS pins follow from their objects and match the sealed dataset inputs."""
    from audit.bundle.data_pins import data_pin_problems

    results = ctx.json("results")
    if results is None:
        return
    path = str(ctx.path("results"))
    for pointer, message in data_pin_problems(results, ctx.proven):
        ctx.fail(path, pointer, message)


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
    ("standard-attestations", _check_standard_attestations),
    ("edd-and-approvals", _check_edd),
    ("tracking-records", _check_records),
    ("checkpoint-timestamp", _check_timestamp),
    ("results-sealed", _check_evidence),
    ("data-pins", _check_data_pins),
    ("metric-sources", _check_metric_sources),
    ("analysis-recomputed", _check_analysis),
    ("gate-recomputed", _check_gate),
    ("exports", _check_exports),
)
