"""Verify a fetched ledger: every record against its seal, seal contiguity, the checkpoint.

Findings are data (`Tamper`): each names the run, the sequence number and, where it
can be known, the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.findings import Finding
from audit.tracking import record as run_record
from audit.tracking.checkpoint import Checkpoint
from audit.tracking.ledger import Leaf, Ledger, RestRun
from audit.tracking.merkle import MerkleTree, verify_consistency

if TYPE_CHECKING:
    from mlflow.entities import Run


@dataclass(frozen=True)
class Tamper:
    """One way the ledger no longer matches its seals or checkpoint."""

    kind: str  # changed-value, deleted-run, inserted-run, reordered-seals, truncated-log,
    #            rewritten-history, unsealed-run, duplicate-seq, missing-seq, bad-checkpoint
    message: str
    run_id: str | None = None
    seq: int | None = None
    field: str | None = None

    def finding(self) -> Finding:
        where = f"run {self.run_id}" if self.run_id else ""
        if self.seq is not None:
            where = f"{where} seq {self.seq}".strip()
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return Finding(self.kind, False, self.message, where)

    def to_json(self) -> dict[str, Any]:
        return self.finding().to_dict() | {
            "kind": self.kind,
            "message": self.message,
            "run_id": self.run_id,
            "seq": self.seq,
            "field": self.field,
        }


@dataclass
class LedgerVerification:
    origin: str
    experiment_id: str
    size: int
    root: str
    runs_checked: int
    findings: list[Tamper] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint_size: int | None = None
    consistent_with_checkpoint: bool | None = None
    signer: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def all_findings(self) -> list[Finding]:
        """Every tamper found, then the verdict on the ledger as a whole (shared renderers)."""
        verdict = Finding(
            "ledger",
            self.ok,
            f"{self.runs_checked} runs, {self.size} seals, root {self.root}",
            self.origin,
        )
        return [t.finding() for t in self.findings] + [verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "experiment_id": self.experiment_id,
            "size": self.size,
            "root": self.root,
            "runs_checked": self.runs_checked,
            "checkpoint_size": self.checkpoint_size,
            "consistent_with_checkpoint": self.consistent_with_checkpoint,
            "signer": self.signer,
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
        }


def verify_ledger(ledger: Ledger, checkpoint: Checkpoint | None = None) -> LedgerVerification:
    """Recompute every record, check seal contiguity and, given a checkpoint, consistency."""
    result = LedgerVerification(
        ledger.origin, ledger.experiment_id, ledger.size, ledger.root, len(ledger.runs)
    )
    reference = _reference(checkpoint, result) if checkpoint is not None else None
    _check_runs(ledger, reference, result)
    _check_sequence(ledger, reference, result)
    if checkpoint is not None:
        _check_checkpoint(ledger, checkpoint, reference, result)
    return result


@dataclass
class _Reference:
    """What an older checkpoint says, once its own evidence has been checked."""

    leaves: list[Leaf]
    records: dict[str, Any]


def _reference(checkpoint: Checkpoint, result: LedgerVerification) -> _Reference:
    if checkpoint.signature is not None:
        from audit.tracking.checkpoint import check_signature

        result.signer = check_signature(checkpoint)  # a bad signature is an error, not a finding
    leaves: list[Leaf] = []
    if checkpoint.leaves is not None:
        candidate = [
            Leaf(int(x["seq"]), str(x["run_id"]), str(x["sha256"])) for x in checkpoint.leaves
        ]
        tree = MerkleTree.build([bytes.fromhex(leaf.sha256) for leaf in candidate])
        if len(candidate) == checkpoint.size and tree.root.hex() == checkpoint.root:
            leaves = candidate
        else:
            result.notes.append("the checkpoint's leaf list does not match its root; ignored")
    records: dict[str, Any] = {}
    by_run = {leaf.run_id: leaf for leaf in leaves}
    for run_id, document in (checkpoint.records or {}).items():
        leaf = by_run.get(run_id)
        digest = hashlib.sha256(_jcs(document)).hexdigest()
        if leaf is not None and leaf.sha256 == digest:
            records[run_id] = document
    return _Reference(leaves, records)


def _jcs(value: object) -> bytes:
    import rfc8785

    return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]


def _check_runs(ledger: Ledger, reference: _Reference | None, result: LedgerVerification) -> None:
    sealed = {leaf.run_id: leaf for leaf in ledger.leaves}
    for run in ledger.runs:
        run_id = run.info.run_id
        tags = run.data.tags
        leaf = sealed.get(run_id)
        if run.info.lifecycle_stage != "active":
            result.findings.append(
                Tamper(
                    "deleted-run",
                    f"run {run_id} is marked deleted, which the store never allows",
                    run_id,
                    leaf.seq if leaf else None,
                    "lifecycle_stage",
                )
            )
        if leaf is None:
            if run.info.status in run_record.TERMINAL_STATUSES:
                missing = [
                    t
                    for t in (run_record.SEAL_SEQ_TAG, run_record.SEAL_SHA256_TAG)
                    if t not in tags
                ]
                bad = [] if missing else [run_record.SEAL_SEQ_TAG]
                result.findings.append(
                    Tamper(
                        "unsealed-run",
                        f"run {run_id} is {run.info.status} but has no valid seal "
                        f"({', '.join(missing or bad)} {'missing' if missing else 'malformed'}): "
                        "its seal was dropped or the run was inserted behind the store",
                        run_id,
                        None,
                        "tags." + (missing or bad)[0],
                    )
                )
            continue
        digest = hashlib.sha256(ledger.records[run_id]).hexdigest()
        if digest != leaf.sha256:
            name, detail = _changed_field(ledger, run, reference)
            result.findings.append(
                Tamper(
                    "changed-value",
                    f"run {run_id} (seal {leaf.seq}): {detail}; the record no longer matches "
                    f"its seal (sealed {leaf.sha256[:12]}, now {digest[:12]})",
                    run_id,
                    leaf.seq,
                    name,
                )
            )


def _changed_field(
    ledger: Ledger, run: Run | RestRun, reference: _Reference | None
) -> tuple[str | None, str]:
    """Name what changed: against the checkpoint's record when it has one, else from the
    run's own inconsistencies (MLflow keeps each metric's latest value in a second table,
    which a hand edit of the history usually forgets)."""
    run_id = run.info.run_id
    current = json.loads(ledger.records[run_id])
    if reference is not None and run_id in reference.records:
        paths = _diff(reference.records[run_id], current, "")
        if paths:
            path, old, new = paths[0]
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            return path, f"{path} changed from {old!r} to {new!r}{more}"
    history = ledger.histories.get(run_id, {})
    for key, latest in sorted(run.data.metrics.items()):
        points = history.get(key, [])
        if not points:
            return f"metrics.{key}", f"metrics.{key} lost its history"
        last = max(points, key=lambda p: (p[0], p[1], p[2]))
        if last[2] != latest and not (latest != latest and last[2] != last[2]):
            return f"metrics.{key}", (
                f"metrics.{key} history ends at {last[2]!r} "
                f"but the run's latest value is {latest!r}"
            )
    return None, "a value changed (pass a checkpoint taken with --with-records to name it)"


def _diff(old: Any, new: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new)):
            inner = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append((inner, None, new[key]))
            elif key not in new:
                out.append((inner, old[key], None))
            else:
                out.extend(_diff(old[key], new[key], inner))
        return out
    return [] if old == new else [(path, old, new)]


def _check_sequence(
    ledger: Ledger, reference: _Reference | None, result: LedgerVerification
) -> None:
    old_by_seq = {leaf.seq: leaf for leaf in (reference.leaves if reference else [])}
    seen: dict[int, Leaf] = {}
    for leaf in ledger.leaves:
        if leaf.seq in seen:
            result.findings.append(
                Tamper(
                    "duplicate-seq",
                    f"seal {leaf.seq} is claimed by runs {seen[leaf.seq].run_id} "
                    f"and {leaf.run_id}: a run was inserted",
                    leaf.run_id,
                    leaf.seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )
        seen.setdefault(leaf.seq, leaf)
    top = max(seen) if seen else -1
    for seq in range(top + 1):
        if seq not in seen:
            old = old_by_seq.get(seq)
            who = f"run {old.run_id}" if old else "its run"
            result.findings.append(
                Tamper(
                    "missing-seq",
                    f"seal {seq} is missing ({who} was deleted or lost its seal)",
                    old.run_id if old else None,
                    seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )


def _check_checkpoint(
    ledger: Ledger, checkpoint: Checkpoint, reference: _Reference | None, result: LedgerVerification
) -> None:
    result.checkpoint_size = checkpoint.size
    if checkpoint.origin != ledger.origin:
        result.notes.append(f"checkpoint origin {checkpoint.origin} differs from {ledger.origin}")
    consistent = checkpoint.size <= ledger.size and verify_consistency(
        checkpoint.size,
        ledger.size,
        bytes.fromhex(checkpoint.root),
        ledger.tree.root,
        ledger.tree.consistency_proof(checkpoint.size),
    )
    result.consistent_with_checkpoint = consistent
    if consistent:
        return
    named = _name_rewrites(ledger, reference.leaves) if reference and reference.leaves else []
    if named:
        result.findings.extend(named)
    elif checkpoint.size > ledger.size:
        result.findings.append(
            Tamper(
                "truncated-log",
                f"the log has {ledger.size} seals but the checkpoint had {checkpoint.size}",
                seq=ledger.size,
            )
        )
    else:
        result.findings.append(
            Tamper(
                "rewritten-history",
                f"the first {checkpoint.size} seals no longer hash to the checkpoint's root: "
                "history was rewritten (the checkpoint has no leaf list to name the runs)",
            )
        )


def _name_rewrites(ledger: Ledger, old_leaves: list[Leaf]) -> list[Tamper]:
    """Compare the checkpoint's leaves with today's, seal by seal, and say what moved."""
    now = ledger.leaves
    now_by_run = {leaf.run_id: leaf for leaf in now}
    now_by_seq = {leaf.seq: leaf for leaf in now}
    old_runs = {leaf.run_id for leaf in old_leaves}
    gone = [old for old in old_leaves if old.run_id not in now_by_run]
    intact_prefix = all(now_by_seq.get(old.seq) == old for old in old_leaves if old.seq < len(now))
    if gone and intact_prefix and all(old.seq >= len(now) for old in gone):
        names = ", ".join(f"seal {leaf.seq} (run {leaf.run_id})" for leaf in gone[:5])
        return [
            Tamper(
                "truncated-log",
                f"the log has {len(now)} seals but the checkpoint had {len(old_leaves)}; "
                f"cut off: {names}",
                gone[0].run_id,
                gone[0].seq,
            )
        ]
    findings: list[Tamper] = []
    for old in old_leaves:
        new = now_by_seq.get(old.seq)
        if new == old:
            continue
        current = now_by_run.get(old.run_id)
        if current is None:
            findings.append(
                Tamper(
                    "deleted-run",
                    f"run {old.run_id} (seal {old.seq}) is gone from the log",
                    old.run_id,
                    old.seq,
                )
            )
        elif current.seq != old.seq:
            findings.append(
                Tamper(
                    "reordered-seals",
                    f"run {old.run_id} was seal {old.seq} and is now seal {current.seq}",
                    old.run_id,
                    old.seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )
        elif current.sha256 != old.sha256:
            findings.append(
                Tamper(
                    "rewritten-history",
                    f"run {old.run_id} (seal {old.seq}) was re-sealed with a different digest: "
                    "its record and seal were both rewritten",
                    old.run_id,
                    old.seq,
                    "tags." + run_record.SEAL_SHA256_TAG,
                )
            )
        if new is not None and new.run_id not in old_runs:
            findings.append(
                Tamper(
                    "inserted-run",
                    f"run {new.run_id} now sits at seal {new.seq}, inside the checkpointed history",
                    new.run_id,
                    new.seq,
                )
            )
    return findings
