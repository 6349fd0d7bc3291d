"""A README-style model card with Hugging Face model-index metadata (YAML front matter).

The model-index has one result: the candidate arm's mean per metric and each paired
difference with its confidence interval (in the metric's `args`), on the DVC-tracked
data (hashes in the dataset's `args`). The EDD names no Hub task, so the task type is
`ablation-study`; a provider publishing to the Hub replaces it with the Hub task id.
The YAML is written by PyYAML's safe dumper (it quotes whatever EDD text needs it);
the Markdown body escapes every untrusted string like the PR report does.
"""

from __future__ import annotations

from typing import Any

from audit.bundle.exports.performance import candidate_means, deltas, limitations
from audit.bundle.exports.study import ExportStudy
from audit.report.escape import md_code, md_text

TASK_TYPE = "ablation-study"


def _metrics(study: ExportStudy) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = [
        {"type": name, "value": mean, "name": f"{name} of arm {arm} (mean over {n} seeds)"}
        for name, (arm, mean, n) in sorted(candidate_means(study).items())
    ]
    for d in deltas(study):
        args: dict[str, Any] = {"paired_seeds": d.n, "verdict": d.verdict}
        if d.low is not None and d.high is not None:
            args["confidence_interval"] = [d.low, d.high]
            args["confidence_level"] = d.level
        metrics.append(
            {
                "type": d.metric,
                "value": d.value,
                "name": f"{d.metric} delta {d.target}: {d.candidate} - {d.comparator}",
                "args": args,
            }
        )
    return metrics


def _front_matter(study: ExportStudy) -> dict[str, Any]:
    data = (study.results.get("provenance") or {}).get("data") or {}
    dataset: dict[str, Any] = {"type": "dvc", "name": ", ".join(sorted(data)) or "unspecified"}
    if data:
        dataset["args"] = {"dvc_hashes": dict(sorted(data.items()))}
    return {
        "tags": ["mlaudit", "ablation-study"],
        "model-index": [
            {
                "name": study.edd_id,
                "results": [
                    {
                        "task": {"type": TASK_TYPE, "name": f"Ablation study {study.edd_id}"},
                        "dataset": dataset,
                        "metrics": _metrics(study),
                    }
                ],
            }
        ],
    }


def _body(study: ExportStudy) -> str:
    verdict = "PASSED" if study.passed else "FAILED"
    lines = [
        f"# {md_text(study.edd.get('title') or study.edd_id)}",
        "",
        f"Study {md_code(study.edd_id)} v{study.edd_version}, EDD digest "
        f"{md_code(study.edd_digest)}. Merge gate: **{verdict}**.",
        "",
        "## Hypothesis",
        "",
        md_text(study.edd.get("hypothesis", ""), limit=4000),
        "",
        "## Evaluation",
        "",
        "| metric | comparison | delta | CI | seeds | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for d in deltas(study):
        ci = f"[{d.low:.6g}, {d.high:.6g}]" if d.low is not None and d.high is not None else ""
        lines.append(
            f"| {md_code(d.metric)} | {md_code(d.candidate)} - {md_code(d.comparator)} "
            f"| {d.value:.6g} | {ci} | {d.n} | {md_text(d.verdict)} |"
        )
    lines += ["", "## Limitations", ""]
    lines += [f"- {md_text(note, limit=1000)}" for note in limitations(study)]
    lines += [
        "",
        "The EDD has no free-text limitations field: these are derived from the evidence.",
        "The provider must still state intended use, users, and out-of-scope uses.",
        "",
    ]
    return "\n".join(lines)


def model_card(study: ExportStudy) -> str:
    import yaml

    front = yaml.safe_dump(
        _front_matter(study), sort_keys=True, allow_unicode=True, default_flow_style=False
    )
    return f"---\n{front}---\n\n{_body(study)}"
