"""Decide whether an EDD is approved: signatures, allowed_signers, policy, from a trust root.

`verify_edd` is the one entry point the CLI, the protocol engine and the gate
call. It takes the loaded EDD, never a path: the canonical bytes the approvals are
checked against are the very bytes the caller then runs or judges. Each approval
is judged on its own (results as data); the decision then counts distinct
approvers (one per principal and one per key), leaves owners out unless the
policy allows them, and checks required roles, seeds and not_after.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audit.edd.allowed_signers import (
    SignerEntry,
    check_key,
    keys_for,
    parse_allowed_signers,
    parse_revoked_keys,
)
from audit.edd.model import Edd
from audit.edd.policy import Policy, parse_policy
from audit.edd.semantics import parse_rfc3339
from audit.edd.sshsig import CONTENT_MISMATCH, MAX_SIGNATURE_BYTES, verify_signature
from audit.edd.trust import (
    ALLOWED_SIGNERS,
    POLICY,
    REVOKED_KEYS,
    TrustRoot,
    locate_project,
    trust_from_dir,
    trust_from_git,
)
from audit.errors import InputError, Location, SignatureError, UsageError
from audit.findings import Finding, json_list

NAMESPACE = "mlaudit-edd"
APPROVALS_DIR = "approvals"
MAX_APPROVALS = 256
# ASCII only and no leading '.' or '-': the name becomes a file name and an
# ssh-keygen -I argument, and look-alike characters must not pass for a principal.
PRINCIPAL = re.compile(r"^[A-Za-z0-9_%+@][A-Za-z0-9._%+@-]{0,127}$")


def check_principal_name(name: str) -> str:
    if not PRINCIPAL.match(name) or ".." in name:
        raise UsageError(
            f"principal {name!r} must be 1-128 ASCII letters, digits or ._%+@- "
            "and must not start with '.' or '-'"
        )
    return name


@dataclass(frozen=True)
class Approval:
    """One approvals/*.sig file and what became of it."""

    principal: str
    role: str
    key_fingerprint: str
    verdict: str
    reason: str
    file: str
    counted: bool = False


@dataclass
class EddVerification:
    """The outcome of `verify_edd`, ready to render or to put in an audit bundle."""

    passed: bool
    approvals: list[Approval]
    reasons: list[str]
    trust_ref: str | None
    trust_commit: str | None
    protected: bool
    trust_files: dict[str, bytes]
    edd_id: str = ""
    edd_version: int = 0
    edd_digest: str = ""
    at: str = ""
    quorum: int = 0
    approvers: int = 0
    warnings: list[str] = field(default_factory=list)
    trust_project: str = ""  # the project folder whose .mlaudit/ was read ("" = top level)

    def hint(self) -> str:
        """What to do next when the EDD was edited after it was signed; "" otherwise."""
        if self.passed or not any(a.reason == CONTENT_MISMATCH for a in self.approvals):
            return ""
        return (
            "the EDD changed after it was signed: if the edit is meant, raise its `version` "
            "and have each approver sign it again (`mlaudit edd sign`)"
        )

    def findings(self) -> list[Finding]:
        """One finding per approval file, then the policy decision (shared renderers)."""
        rows = [
            Finding(f"approval {a.principal}", a.counted, f"{a.verdict}: {a.reason}", a.file)
            for a in self.approvals
        ]
        decision = Finding("approved", self.passed, "; ".join(self.reasons), self.edd_id)
        return [*rows, decision]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = json_list(self.findings())
        data["approvals"] = [asdict(a) for a in self.approvals]
        data["trust_files"] = {
            name: {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
            for name, blob in sorted(self.trust_files.items())
        }
        return data


def verify_edd(
    edd: Edd,
    *,
    trust_ref: str | None = None,
    repo: Path | None = None,
    trust_dir: Path | None = None,
    at: datetime | None = None,
) -> EddVerification:
    """Verify the approvals (approvals/*.sig beside `edd.path`) of a loaded EDD.

    Exactly one of `trust_ref` (read from git for the project at or above
    `repo`, default: the EDD's folder; see `locate_project`) or `trust_dir`
    (unprotected) must be given. Raises ValidationFailed for an invalid
    policy, TrustError when the trust root is unusable.
    """
    moment = _aware(at)
    trust = _trust_root(edd.path, trust_ref, repo, trust_dir)
    signers = parse_allowed_signers(trust.files[ALLOWED_SIGNERS], trust.label(ALLOWED_SIGNERS))
    policy = parse_policy(trust.files[POLICY], trust.label(POLICY))
    revoked = (
        parse_revoked_keys(trust.files[REVOKED_KEYS], trust.label(REVOKED_KEYS))
        if REVOKED_KEYS in trust.files
        else set()
    )
    approvals = _judge_all(edd, signers, policy, revoked, moment)
    reasons = _decide(edd, policy, approvals, moment)
    return EddVerification(
        passed=not reasons,
        approvals=approvals,
        reasons=reasons or [_summary(policy, approvals)],
        trust_ref=trust.ref,
        trust_commit=trust.commit,
        protected=trust.protected,
        trust_files=dict(trust.files),
        edd_id=edd.id,
        edd_version=edd.version,
        edd_digest=edd.digest,
        at=moment.isoformat(),
        quorum=policy.quorum,
        approvers=sum(a.counted for a in approvals),
        warnings=list(trust.warnings),
        trust_project=trust.project,
    )


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def _trust_root(
    edd_path: Path, trust_ref: str | None, repo: Path | None, trust_dir: Path | None
) -> TrustRoot:
    if (trust_ref is None) == (trust_dir is None):
        raise UsageError("give exactly one of --trust-ref (protected) or --trust-dir (local)")
    if trust_dir is not None:
        return trust_from_dir(trust_dir)
    assert trust_ref is not None
    start = repo if repo is not None else edd_path.resolve().parent
    return trust_from_git(locate_project(start, trust_ref), trust_ref)


def approval_files(edd_path: Path) -> list[Path]:
    folder = edd_path.parent / APPROVALS_DIR
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix == ".sig")
    if len(files) > MAX_APPROVALS:
        raise InputError(
            f"more than {MAX_APPROVALS} approval files", location=Location(str(folder))
        )
    return files


def _judge_all(
    edd: Edd,
    signers: list[SignerEntry],
    policy: Policy,
    revoked: set[bytes],
    at: datetime,
) -> list[Approval]:
    owners = {owner.casefold() for owner in edd.owners}
    owner_keys = set().union(*(keys_for(signers, o) for o in edd.owners))
    seen_principals: dict[str, str] = {}
    seen_keys: dict[str, str] = {}
    approvals = []
    for path in approval_files(edd.path):
        approval = _judge(path, edd, signers, policy, revoked, at)
        if approval.verdict == "valid":
            approval = _count(
                approval, policy, owners, owner_keys, signers, seen_principals, seen_keys
            )
        approvals.append(approval)
    return approvals


def _judge(
    path: Path,
    edd: Edd,
    signers: list[SignerEntry],
    policy: Policy,
    revoked: set[bytes],
    at: datetime,
) -> Approval:
    principal = path.stem
    role = ",".join(policy.roles_of(principal)) or "-"

    def row(fingerprint: str, verdict: str, reason: str) -> Approval:
        file = f"{APPROVALS_DIR}/{path.name}"
        return Approval(principal, role, fingerprint, verdict, reason, file)

    try:
        check_principal_name(principal)
    except UsageError as error:
        return row("-", "invalid", error.message)
    if path.is_symlink() or not path.is_file():
        return row("-", "invalid", "not a regular file")
    try:
        with path.open("rb") as handle:
            armored = handle.read(MAX_SIGNATURE_BYTES + 1)
        key = verify_signature(armored, edd.canonical, NAMESPACE)
    except SignatureError as error:
        return row("-", "invalid", error.message)
    if key.blob in revoked:
        return row(key.fingerprint, "revoked", "key is listed in revoked_keys")
    check = check_key(signers, principal, key, NAMESPACE, at)
    return row(key.fingerprint, check.verdict, check.reason)


def _count(
    approval: Approval,
    policy: Policy,
    owners: set[str],
    owner_keys: set[bytes],
    signers: list[SignerEntry],
    seen_principals: dict[str, str],
    seen_keys: dict[str, str],
) -> Approval:
    principal = approval.principal.casefold()
    if not policy.owners_may_approve and (
        principal in owners or _key_blob(signers, approval.key_fingerprint) in owner_keys
    ):
        return _with(approval, "owner", "owners may not approve their own EDD (policy)")
    if principal in seen_principals:
        return _with(
            approval, "duplicate", f"principal already counted via {seen_principals[principal]}"
        )
    if approval.key_fingerprint in seen_keys:
        return _with(
            approval,
            "duplicate",
            f"same key already counted for {seen_keys[approval.key_fingerprint]}",
        )
    seen_principals[principal] = approval.file
    seen_keys[approval.key_fingerprint] = approval.principal
    return replace(approval, counted=True)


def _key_blob(signers: list[SignerEntry], fingerprint: str) -> bytes | None:
    for entry in signers:
        if entry.key.fingerprint == fingerprint:
            return entry.key.blob
    return None


def _with(approval: Approval, verdict: str, reason: str) -> Approval:
    return replace(approval, verdict=verdict, reason=reason, counted=False)


def _decide(edd: Edd, policy: Policy, approvals: list[Approval], at: datetime) -> list[str]:
    reasons = []
    counted = [a for a in approvals if a.counted]
    if len(counted) < policy.quorum:
        reasons.append(
            f"quorum not met: {len(counted)} distinct approver(s), policy needs {policy.quorum}"
        )
    held = {role for a in counted for role in policy.roles_of(a.principal)}
    for role in policy.required_roles:
        if role not in held:
            reasons.append(f"required role {role!r} has no counted approval")
    if len(edd.seeds) < policy.min_seeds:
        reasons.append(
            f"the EDD plans {len(edd.seeds)} seed(s); policy min_seeds is {policy.min_seeds}"
        )
    if parse_rfc3339(edd.document["not_after"]) <= at:
        reasons.append(f"the EDD expired at {edd.document['not_after']}")
    return reasons


def _summary(policy: Policy, approvals: list[Approval]) -> str:
    counted = sum(a.counted for a in approvals)
    roles = ", ".join(policy.required_roles) or "none"
    return (
        f"approved: {counted} distinct approver(s) (quorum {policy.quorum}); "
        f"required roles covered: {roles}"
    )
