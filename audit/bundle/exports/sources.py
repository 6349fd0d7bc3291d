"""Which bundle members evidence what: one table shared by every export.

A gate rule's kind (gate.json) names what it judges; this maps each kind to the
members an auditor opens to check it. The evidence map, OSCAL observations and
findings all read from here, so they never disagree about where evidence lives.
"""

from __future__ import annotations

from audit.bundle import layout
from audit.bundle.exports.study import ExportStudy

# Member selectors: a role of the manifest's layout, or a folder ("dir:" prefix).
_EDD = ("role:edd", f"dir:{layout.APPROVALS_DIR}")
_TRUST = (f"dir:{layout.TRUST_DIR}",)
_RESULTS = ("role:results",)
_LEDGER = (f"dir:{layout.RECORDS_DIR}", "role:checkpoint")
_ENVIRONMENT = (f"dir:{layout.ENVIRONMENT_DIR}", "role:dvc_lock")

RULE_SOURCES: dict[str, tuple[str, ...]] = {
    "approvals": (*_EDD, *_TRUST, *_RESULTS),
    "protocol": ("role:edd", *_RESULTS, "role:dvc_lock"),
    "budget": ("role:edd", *_RESULTS),
    "attrition": ("role:edd", *_RESULTS),
    "provenance": (*_RESULTS, *_ENVIRONMENT),
    "reproducibility": ("role:edd", *_RESULTS),
    "claims": ("role:edd", *_RESULTS, "role:analysis"),
    "ledger": (*_RESULTS, *_LEDGER),
}

# Requirement areas of the evidence map -> selectors.
DESIGN = ("role:edd", *_TRUST)
DATA = ("role:dvc_lock", *_RESULTS)
TESTING = (
    *_RESULTS,
    "role:analysis",
    "role:gate",
    *_LEDGER,
    "role:report_md",
    "role:report_html",
    f"dir:{layout.APPROVALS_DIR}",
)
APPROVALS = (f"dir:{layout.APPROVALS_DIR}", *_TRUST)
CHANGES = (*_RESULTS, "role:trust_source")
ENVIRONMENT = _ENVIRONMENT


def select(study: ExportStudy, selectors: tuple[str, ...]) -> list[str]:
    """The members the selectors name, in order, each once; absent ones are skipped."""
    found: list[str] = []
    for selector in selectors:
        kind, _, name = selector.partition(":")
        names = study.member(name) if kind == "role" else study.members_under(name)
        found.extend(n for n in names if n not in found)
    return found


def rule_evidence(study: ExportStudy, kind: str) -> list[str]:
    """The members that evidence one gate rule (the gate judged the study from these)."""
    return select(study, RULE_SOURCES.get(kind, ("role:gate",)))
