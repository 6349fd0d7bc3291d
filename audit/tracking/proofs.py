"""Checkpoints and RFC 9162 proofs over a fetched ledger (for reports and audit bundles)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from audit.errors import TrackingError
from audit.tracking.checkpoint import Checkpoint
from audit.tracking.ledger import Ledger
from audit.tracking.merkle import verify_inclusion


def take_checkpoint(
    ledger: Ledger, *, with_records: bool = False, now: datetime | None = None
) -> Checkpoint:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    leaves = [
        {"seq": leaf.seq, "run_id": leaf.run_id, "sha256": leaf.sha256} for leaf in ledger.leaves
    ]
    records = None
    if with_records:
        records = {leaf.run_id: json.loads(ledger.records[leaf.run_id]) for leaf in ledger.leaves}
    return Checkpoint(
        origin=ledger.origin,
        experiment_id=ledger.experiment_id,
        size=ledger.size,
        root=ledger.root,
        tracking_uri=ledger.tracking_uri,
        taken_at=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        leaves=leaves,
        records=records,
    )


@dataclass(frozen=True)
class InclusionProof:
    """Evidence that one sealed run is leaf `index` of the tree of `tree_size` with `root`."""

    run_id: str
    seq: int
    sha256: str
    index: int
    tree_size: int
    root: str
    path: list[str]

    def verify(self) -> bool:
        return verify_inclusion(
            bytes.fromhex(self.sha256),
            self.index,
            self.tree_size,
            [bytes.fromhex(p) for p in self.path],
            bytes.fromhex(self.root),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "sha256": self.sha256,
            "leaf_index": self.index,
            "tree_size": self.tree_size,
            "root": self.root,
            "path": list(self.path),
        }


def inclusion_proof(ledger: Ledger, run_id: str, tree_size: int | None = None) -> InclusionProof:
    """RFC 9162 inclusion proof of a sealed run (for the audit bundle)."""
    size = ledger.size if tree_size is None else tree_size
    for index, leaf in enumerate(ledger.leaves[:size]):
        if leaf.run_id == run_id:
            path = [node.hex() for node in ledger.tree.inclusion_proof(index, size)]
            return InclusionProof(
                run_id, leaf.seq, leaf.sha256, index, size, ledger.tree.root_at(size).hex(), path
            )
    raise TrackingError(f"run {run_id} is not among the first {size} sealed runs")


def inclusion_proofs(ledger: Ledger, run_ids: Iterable[str] | None = None) -> list[InclusionProof]:
    wanted = set(run_ids) if run_ids is not None else None
    return [
        inclusion_proof(ledger, leaf.run_id)
        for leaf in ledger.leaves
        if wanted is None or leaf.run_id in wanted
    ]


def consistency_proof(ledger: Ledger, old_size: int) -> list[str]:
    return [node.hex() for node in ledger.tree.consistency_proof(old_size)]
