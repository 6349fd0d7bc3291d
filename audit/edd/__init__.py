"""Experiment Design Documents: loading, validation, canonical digest, approvals, trust.

Public API (everything else in audit.edd.* is internal):
    load_edd(path, *, at=None) -> Edd
    planned_trial_count(document) -> int
    verify_edd(edd, *, trust_ref=None, repo=None, trust_dir=None, at=None) -> EddVerification
    verify_signature / sign_with_ssh_keygen / SshPublicKey  (audit.edd.sshsig)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit.edd.load import canonical_bytes, load_edd
from audit.edd.model import Edd
from audit.edd.trials import planned_arm_count, planned_arm_names, planned_trial_count

if TYPE_CHECKING:
    from audit.edd.verify import Approval, EddVerification, verify_edd

__all__ = [
    "Approval",
    "Edd",
    "EddVerification",
    "canonical_bytes",
    "load_edd",
    "planned_arm_count",
    "planned_arm_names",
    "planned_trial_count",
    "verify_edd",
]


def __getattr__(name: str) -> Any:
    # Verification pulls in signature code; load it only when asked for.
    if name in ("Approval", "EddVerification", "verify_edd"):
        from audit.edd import verify

        return getattr(verify, name)
    raise AttributeError(name)
