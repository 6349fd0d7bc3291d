"""The evidence map: which bundle files evidence which review requirement, and what is missing.

For reviewers under the EU AI Act (Annex IV technical documentation) and for model-risk
review in the manner of SR 11-7. Requirement texts are quoted only where they were
checked against the published text (docs/compliance-exports.md names the source);
anything else is marked as a paraphrase. Every string from the study is escaped as in
the PR report; the HTML is the Markdown through the report's converter, under the
report's no-load Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from audit.bundle.exports import sources
from audit.bundle.exports.sources import rule_evidence, select
from audit.bundle.exports.study import ExportStudy
from audit.report.escape import html_text, md_code, md_text


@dataclass(frozen=True)
class Requirement:
    ref: str
    text: str
    quoted: bool  # True: verbatim, checked; False: a paraphrase, and the page says so
    evidence: tuple[str, ...]  # selectors (audit.bundle.exports.sources)
    covers: str
    missing: str


ANNEX_IV = (
    Requirement(
        "Annex IV 2(b)",
        "the design specifications of the system, namely the general logic of the AI system "
        "and of the algorithms; the key design choices including the rationale and "
        "assumptions made, […]",
        True,
        sources.DESIGN,
        "The signed EDD: hypothesis, the components compared and how each is ablated, the "
        "metrics, the decision rule with its alpha and margins, the budget; approved under "
        "the trust policy of the protected branch.",
        "The general logic of the AI system and its algorithms; the persons or groups it is "
        "intended for; classification choices; expected output quality; trade-offs. The EDD "
        "documents the design of this change only.",
    ),
    Requirement(
        "Annex IV 2(d)",
        "where relevant, the data requirements in terms of datasheets describing the "
        "training methodologies and techniques and the training data sets used, including a "
        "general description of these data sets, information about their provenance, scope "
        "and main characteristics; how the data was obtained and selected; labelling "
        "procedures (e.g. for supervised learning), data cleaning methodologies (e.g. "
        "outliers detection);",
        True,
        sources.DATA,
        "Which data every trial used, pinned by DVC hashes (dvc.lock and results.json "
        "provenance), and the data descriptions in the EDD.",
        "Datasheets: provenance, scope and main characteristics of the data, how it was "
        "obtained and selected, labelling procedures, cleaning methods.",
    ),
    Requirement(
        "Annex IV 2(g)",
        "the validation and testing procedures used, including information about the "
        "validation and testing data used and their main characteristics; metrics used to "
        "measure accuracy, robustness and compliance with other relevant requirements set "
        "out in Chapter III, Section 2, as well as potentially discriminatory impacts; test "
        "logs and all test reports dated and signed by the responsible persons, including "
        "with regard to pre-determined changes as referred to under point (f);",
        True,
        sources.TESTING,
        "The procedure as signed (EDD), every trial (results.json: the test log, dated), "
        "the sealed MLflow records with their Merkle proofs, the statistics (analysis.json: "
        "paired differences, confidence intervals, p-values), the gate decision and the "
        "dated report. Approvals are SSH signatures by named persons over the EDD.",
        "Robustness and discriminatory-impact metrics unless the EDD declared them; a report "
        "signed by the responsible persons (the approvals sign the plan, not the results; "
        "the bundle's own signature, if any, is by the key that built it).",
    ),
    Requirement(
        "Annex IV 6",
        "A description of the relevant changes the provider made to the system through its "
        "lifecycle.",
        False,
        sources.CHANGES,
        "This change: the git commit and tree the trials ran from, whether the tree was "
        "clean, and the commit of the trust root the approvals were checked against.",
        "The history of earlier changes and of changes after this study.",
    ),
)

SR_11_7 = (
    Requirement(
        "SR 11-7: conceptual soundness",
        "Validation evaluates the quality of the model's design and construction, and the "
        "theory and assumptions it rests on.",
        False,
        ("role:edd", "role:analysis"),
        "The hypothesis and ablation plan stated and signed before any compute, and the "
        "statistical method and decision rule the analysis records.",
        "Model documentation and theory, suitability of the data, and the developer's "
        "testing beyond this ablation study.",
    ),
    Requirement(
        "SR 11-7: outcomes analysis",
        "Validation compares the model's outputs with actual outcomes.",
        False,
        ("role:results", "role:analysis", "role:gate"),
        "Every arm's metrics per seed, the paired differences with confidence intervals, "
        "the determinism re-run and the gate decision, all recomputed by `bundle verify`.",
        "Outcomes on production or out-of-time data, and ongoing monitoring after release.",
    ),
    Requirement(
        "SR 11-7: effective challenge",
        "Models are critically analysed by objective, informed parties with the influence "
        "to have their findings acted on.",
        False,
        sources.APPROVALS,
        "Signed approvals under the quorum and required roles of the protected branch's "
        "policy; the owners and approvers below show who challenged whom.",
        "Evidence of the approvers' competence, organisational independence and authority; "
        "the validators' own report.",
    ),
)


FOLDER_LISTING_LIMIT = 5


def _link(path: str) -> str:
    return f"[{md_code(path)}](../{quote(path)})"


def _links(paths: Sequence[str]) -> str:
    """One link per file; a folder of many (one sealed record per trial) as one link."""
    if not paths:
        return "none in this bundle"
    folders: dict[str, int] = {}
    for path in paths:
        folder = path.rsplit("/", 1)[0]
        folders[folder] = folders.get(folder, 0) + 1
    shown: list[str] = []
    listed: set[str] = set()
    for path in paths:
        folder = path.rsplit("/", 1)[0]
        if folders[folder] <= FOLDER_LISTING_LIMIT:
            shown.append(_link(path))
        elif folder not in listed:
            listed.add(folder)
            shown.append(f"{_link(folder + '/')} ({folders[folder]} files)")
    return "<br>".join(shown)


def _requirement_rows(study: ExportStudy, requirements: Sequence[Requirement]) -> list[str]:
    rows = ["| requirement | evidence in this bundle | the provider must still supply |"]
    rows.append("|---|---|---|")
    for r in requirements:
        # The requirement texts are this module's constants, not study input.
        text = f"“{r.text}”" if r.quoted else f"(paraphrase, not the official wording) {r.text}"
        rows.append(
            f"| **{r.ref}**: {text} | {r.covers}<br>{_links(select(study, r.evidence))} "
            f"| {r.missing} |"
        )
    return rows


def _gate_rows(study: ExportStudy) -> list[str]:
    rows = ["| gate rule | result | evidence |", "|---|---|---|"]
    for rule in study.gate.get("rules", []):
        if not isinstance(rule, Mapping):
            continue
        result = "pass" if rule.get("passed") else "**fail**"
        rows.append(
            f"| {md_code(rule.get('rule'))} | {result} "
            f"| {md_text(rule.get('evidence'), limit=500)}<br>"
            f"{_links(rule_evidence(study, str(rule.get('kind') or '')))} |"
        )
    return rows


def _independence(study: ExportStudy) -> list[str]:
    owners = [str(o) for o in study.edd.get("owners", [])]
    approvals = [a for a in study.results.get("approvals") or [] if isinstance(a, Mapping)]
    lines = ["Owners: " + (", ".join(md_code(o) for o in owners) or "none named") + ".", ""]
    lines += ["| approver | role | key | verdict | also an owner |", "|---|---|---|---|---|"]
    for a in approvals:
        principal = str(a.get("principal"))
        lines.append(
            f"| {md_code(principal)} | {md_text(a.get('role') or '-')} "
            f"| {md_code(a.get('key_fingerprint') or '-')} | {md_text(a.get('verdict'))} "
            f"| {'yes' if principal in owners else 'no'} |"
        )
    independent = [
        a
        for a in approvals
        if a.get("verdict") == "valid" and str(a.get("principal")) not in owners
    ]
    lines += [
        "",
        f"{len(independent)} valid approval(s) by someone other than an owner.",
    ]
    return lines


def _changes(study: ExportStudy) -> list[str]:
    provenance: Mapping[str, Any] = study.results.get("provenance") or {}
    git = provenance.get("git") or {}
    trust = study.results.get("trust") or {}
    lines = [
        f"- Code: commit {md_code(git.get('commit') or 'unknown')}, tree "
        f"{md_code(git.get('tree') or 'unknown')}, "
        f"{'DIRTY working tree' if git.get('dirty') else 'clean working tree'}.",
        f"- Trust root: {md_code(trust.get('ref') or 'unknown')} at commit "
        f"{md_code(trust.get('commit') or 'unknown')}"
        f"{' (protected branch)' if trust.get('protected') else ''}.",
    ]
    for path, digest in sorted((provenance.get("data") or {}).items()):
        lines.append(f"- Data {md_code(path)}: DVC hash {md_code(digest)}.")
    return lines


def evidence_map_markdown(study: ExportStudy) -> str:
    verdict = "PASSED" if study.passed else "FAILED"
    lines = [
        f"# Evidence map: {md_text(study.edd.get('title') or study.edd_id)}",
        "",
        f"Study {md_code(study.edd_id)} v{study.edd_version}; EDD digest "
        f"{md_code(study.edd_digest)}; merge gate **{verdict}**; run at "
        f"{md_code(study.created_at)}; evidence digest {md_code(study.digest)}.",
        "",
        "This page links review requirements to the files of this audit bundle that evidence "
        "them, and says what the provider must still supply. It is an index for reviewers, "
        "not a conformity assessment. Quoted texts are verbatim from Annex IV of Regulation "
        "(EU) 2024/1689; rows marked as a paraphrase are not the official wording. "
        "Check every file with `mlaudit bundle verify`.",
        "",
        "## EU AI Act: Annex IV technical documentation",
        "",
        *_requirement_rows(study, ANNEX_IV),
        "",
        "## Model risk review (SR 11-7)",
        "",
        *_requirement_rows(study, SR_11_7),
        "",
        "## Owners and approvers",
        "",
        *_independence(study),
        "",
        "## Lifecycle: what this change ran from",
        "",
        *_changes(study),
        "",
        "## Gate rules and their evidence",
        "",
        *_gate_rows(study),
        "",
    ]
    return "\n".join(lines)


def evidence_map_html(study: ExportStudy, markdown_text: str) -> str:
    from audit.report.html import CSP, STYLESHEET
    from audit.report.markdown_html import markdown_to_html

    body = markdown_to_html(markdown_text, output_format="html")
    title = html_text(f"Evidence map: {study.edd_id} v{study.edd_version}", 200)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLESHEET}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
