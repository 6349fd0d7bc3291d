"""Compliance exports every bundle carries, in the formats auditors' tools read.

- exports/oscal-assessment-results.json: NIST OSCAL 1.1.3 assessment-results
- exports/cyclonedx-mlbom.json: CycloneDX 1.6 ML-BOM with a modelCard
- exports/model-card.md: README-style model card with Hugging Face model-index metadata
- exports/evidence-map.md and .html: EU AI Act Annex IV / SR 11-7 evidence map

Each is a pure function of the bundle's evidence members (everything but the manifest,
the attestations, index.html and the exports themselves), so the same evidence gives
the same bytes, and `bundle verify` renders them again to check they follow from it.
The exports are ordinary members: the manifest lists them and the attestation covers them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from audit.bundle import layout

EXPORTS_DIR = "exports"
OSCAL = f"{EXPORTS_DIR}/oscal-assessment-results.json"
CYCLONEDX = f"{EXPORTS_DIR}/cyclonedx-mlbom.json"
MODEL_CARD = f"{EXPORTS_DIR}/model-card.md"
EVIDENCE_MAP_MD = f"{EXPORTS_DIR}/evidence-map.md"
EVIDENCE_MAP_HTML = f"{EXPORTS_DIR}/evidence-map.html"

# Manifest layout role of each export.
ROLES = {
    "export_oscal": OSCAL,
    "export_cyclonedx": CYCLONEDX,
    "export_model_card": MODEL_CARD,
    "export_evidence_map_md": EVIDENCE_MAP_MD,
    "export_evidence_map_html": EVIDENCE_MAP_HTML,
}


def evidence_members(members: Mapping[str, bytes]) -> dict[str, bytes]:
    """The members the exports describe: not the ones written about the evidence."""
    return {
        name: data
        for name, data in members.items()
        if name not in (layout.MANIFEST, layout.INDEX)
        and not name.startswith(("attestation/", EXPORTS_DIR + "/"))
    }


def render_exports(members: Mapping[str, bytes], roles: Mapping[str, str]) -> dict[str, bytes]:
    """Every export, keyed by its member path, from the bundle's evidence members."""
    from audit.bundle.exports.cyclonedx import ml_bom
    from audit.bundle.exports.evidence_map import evidence_map_html, evidence_map_markdown
    from audit.bundle.exports.hf_card import model_card
    from audit.bundle.exports.oscal import assessment_results
    from audit.bundle.exports.study import read_study
    from audit.documents import dumps

    study = read_study(evidence_members(members), roles)
    evidence_map = evidence_map_markdown(study)
    return {
        OSCAL: dumps(assessment_results(study)),
        CYCLONEDX: dumps(ml_bom(study)),
        MODEL_CARD: model_card(study).encode("utf-8"),
        EVIDENCE_MAP_MD: evidence_map.encode("utf-8"),
        EVIDENCE_MAP_HTML: evidence_map_html(study, evidence_map).encode("utf-8"),
    }


def add_exports(members: MutableMapping[str, bytes], roles: MutableMapping[str, str]) -> None:
    """Write every export into the bundle being built and name each in the layout."""
    members.update(render_exports(members, roles))
    roles.update(ROLES)


def export_problems(
    members: Mapping[str, bytes], roles: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(member, problem) for each export that does not follow from the bundle's evidence.

    A bundle from before the exports existed has none and no problems.
    """
    names = {n for n in members if n.startswith(EXPORTS_DIR + "/")}
    names |= {path for role, path in ROLES.items() if roles.get(role) == path}
    if not names:
        return []
    try:
        fresh = render_exports(members, roles)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # Evidence of a shape the exports cannot read (a hostile bundle): a finding, not a crash.
        return [(EXPORTS_DIR, f"cannot be rendered from this bundle's evidence: {error!r}")]
    problems = []
    for path in sorted(names):
        if path not in members:
            problems.append((path, "named in the manifest's layout but missing"))
        elif path not in fresh:
            problems.append((path, "is not an export mlaudit writes"))
        elif members[path] != fresh[path]:
            problems.append((path, "does not follow from the bundle's evidence (rendered again)"))
    return problems
