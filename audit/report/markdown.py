"""The Markdown report: decision first, then evidence, within a size budget.

Every untrusted string is written through audit.report.escape; the only raw
HTML here is our own (<details>, <summary>, the hidden marker), and the only
links are built by audit.report.links from a validated base URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import __version__
from audit.report.budget import Section, SizeBudget, fit
from audit.report.escape import html_text, md_code, md_text
from audit.report.inputs import ReportInputs
from audit.report.links import mlflow_run_url, safe_http_base
from audit.report.marker import Marker
from audit.report.numbers import (
    MISSING,
    as_number,
    estimate_value,
    fmt,
    fmt_ci,
    fmt_p,
    fmt_percent,
    fmt_seconds,
)
from audit.report.verdict import Verdict

VERDICT_BADGES = {
    "improves": "✅ improves",
    "non-inferior": "✅ non-inferior",
    "not-shown": "❌ not shown",
    "underpowered": "⚠️ underpowered",
    "attrition": "⚠️ attrition",
    "no-claim": "➖ no claim",
}
GOAL_WORDS = {"maximize": "higher is better", "minimize": "lower is better"}
MAX_REASONS = 20
CUT_ROWS = 25
CHART_MAX_BARS = 30
DEFAULT_POINTER = "the `mlaudit-report` artifact of this CI run"


@dataclass(frozen=True)
class MarkdownOptions:
    """How to render: size budget, sticky key, where the full report lives."""

    budget: SizeBudget | None = None
    key: str | None = None
    details_url: str | None = None  # validated http(s) URL of the full report
    # HTML report: collapsed parts are converted to HTML here and stashed; the
    # Markdown carries a placeholder comment that html.py swaps back. Python-Markdown
    # never sees their bulk (its inline and raw-HTML passes dominate render time).
    html_mode: bool = False
    stash: list[str] = field(default_factory=list, compare=False)


# -- small builders ------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def stash_placeholder(index: int) -> str:
    return f"<!-- mlaudit:raw {index} -->"


def details(summary: str, body: str, options: MarkdownOptions, body_html: str | None = None) -> str:
    """A collapsed section; `body_html` (HTML mode only) replaces converting `body`."""
    if options.html_mode:
        if body_html is None:
            from audit.report.markdown_html import markdown_to_html

            body_html = markdown_to_html(body)
        options.stash.append(f"<details>\n<summary>{summary}</summary>\n{body_html}\n</details>")
        return stash_placeholder(len(options.stash) - 1)
    # The blank lines make GitHub and GitLab parse the body as Markdown.
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def cut_note(shown: int, total: int, what: str) -> str:
    return f"_… {total - shown} more {what} in the full report._"


def bullet_list(items: Sequence[str], limit: int = MAX_REASONS) -> str:
    lines = [f"- {md_text(item)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"- _… {len(items) - limit} more_")
    return "\n".join(lines)


def table_levels(
    heading: str,
    headers: Sequence[str],
    rows: list[list[str]],
    what: str,
    wrap: Callable[[str], str] = lambda body: body,
    empty: str = "",
) -> list[str]:
    """Full table, the first rows only, then one line: each a complete block."""
    if not rows:
        return [f"{heading}\n\n{empty}" if empty else ""]
    full = f"{heading}\n\n" + wrap(table(headers, rows))
    levels = [full]
    if len(rows) > CUT_ROWS:
        cut = table(headers, rows[:CUT_ROWS]) + "\n\n" + cut_note(CUT_ROWS, len(rows), what)
        levels.append(f"{heading}\n\n" + wrap(cut))
    levels.append(f"{heading}\n\n_{len(rows)} {what}: shown in the full report._")
    return levels


# -- the decision ---------------------------------------------------------------


def claim_text(claim: object) -> str:
    if not isinstance(claim, dict) or not claim.get("claim"):
        return "—"
    parts = [md_text(claim["claim"], 40)]
    # A non-inferiority claim is judged by its margin, an improvement by its minimum effect.
    if claim.get("claim") == "non-inferior":
        if as_number(claim.get("margin")) is not None:
            parts.append(f"margin {fmt(claim['margin'])}")
    elif as_number(claim.get("min_effect")) is not None:
        parts.append(f"≥ {fmt(claim['min_effect'])}")
    return " ".join(parts)


def claim_judged(comparison: dict[str, Any]) -> bool | None:
    """Whether the comparison's EDD claim was shown; None when it makes no claim."""
    claim = comparison.get("claim")
    if not isinstance(claim, dict) or not claim.get("claim"):
        return None
    verdict = comparison.get("verdict")
    if claim.get("claim") == "non-inferior":
        return verdict in ("non-inferior", "improves")
    return verdict == "improves"


def decision_sentence(analysis: dict[str, Any]) -> str:
    decision = analysis["decision"]
    summary = decision.get("summary")
    if isinstance(summary, str) and summary.strip():
        return md_text(summary, 300)
    judged_claims = decision.get("claims")
    if isinstance(judged_claims, list):
        claims = [bool(c.get("supported")) for c in judged_claims if isinstance(c, dict)]
    else:
        judged = [claim_judged(c) for c in analysis["comparisons"]]
        claims = [j for j in judged if j is not None]
    shown = sum(1 for j in claims if j)
    sentence = f"{shown} of {len(claims)} signed claims shown"
    if analysis["attrition"]:
        sentence += f"; {len(analysis['attrition'])} trials lost to attrition"
    return sentence + "."


HEADLINE_WORDS = {
    "passed": "✅ mlaudit: PASSED",
    "failed": "❌ mlaudit: FAILED",
    "not-gated": "⚠️ mlaudit: NOT GATED",
}
RULE_MARKS = {True: "✅", False: "❌"}
NOT_GATED_NOTE = (
    "> [!WARNING]\n> Not gated: this report was rendered without a gate result, so it is not "
    "a merge decision. Run `mlaudit gate -o gate.json`, then `mlaudit report render --gate "
    "gate.json`."
)


def headline(inputs: ReportInputs, verdict: Verdict) -> str:
    """The gate's outcome, the kind of failure, then what the statistics showed."""
    edd = inputs.analysis["edd"]
    # Gated: the EDD the gate verified names the study, not a field of the analysis.
    edd_id, version = (
        (verdict.gate.edd.id, verdict.gate.edd.version)
        if verdict.gate and verdict.gate.edd
        else (edd.get("id"), edd.get("version"))
    )
    name = f"{md_text(edd_id, 80)} v{fmt(version)}"
    start = f"## {HEADLINE_WORDS[verdict.state]} — {name}: "
    statistics = decision_sentence(inputs.analysis)
    if verdict.gate is None:
        return start + "no gate result. Statistics alone: " + statistics
    if verdict.gate.passed:
        rules = len(verdict.gate.rules)
        return start + f"the gate passed all {rules} rules. Statistics: " + statistics
    return start + md_text(verdict.failure_kind(), 400) + ". Statistics: " + statistics


def gate_table(verdict: Verdict) -> str:
    gate = verdict.gate
    assert gate is not None
    rows = [
        [RULE_MARKS[r.passed], md_code(r.rule, 64), md_text(r.kind, 40), md_text(r.evidence, 300)]
        for r in gate.rules
    ]
    return "**Gate rules:**\n\n" + table(["", "Rule", "Kind", "Evidence"], rows)


def gate_bullets(verdict: Verdict) -> str:
    gate = verdict.gate
    assert gate is not None
    failed = [f"{r.rule} ({r.kind}): {r.evidence}" for r in gate.failed_rules]
    return "**Failed gate rules:**\n\n" + bullet_list(failed, limit=5) if failed else ""


def overview(inputs: ReportInputs) -> str:
    analysis = inputs.analysis
    edd = analysis["edd"]
    digest = str(edd.get("digest", ""))
    parts = [
        f"EDD {md_code(edd.get('id'))} version {fmt(edd.get('version'))}",
        f"digest {md_code(digest[:16])}",
        f"alpha {fmt(analysis.get('alpha'))}",
        f"correction {md_code(analysis.get('correction'))}",
    ]
    title = (inputs.results or {}).get("edd", {}).get("document", {}).get("title")
    line = " · ".join(parts)
    if isinstance(title, str) and title:
        line = f"**{md_text(title, 200)}** — " + line
    return line


def header_levels(inputs: ReportInputs, verdict: Verdict) -> list[str]:
    base = headline(inputs, verdict) + "\n\n" + overview(inputs)
    if verdict.gate is not None:
        short = gate_bullets(verdict)
        return [base + "\n\n" + gate_table(verdict), base + ("\n\n" + short if short else "")]
    # Not gated: the statistics' own reasons, labelled as such, under the warning.
    base += "\n\n" + NOT_GATED_NOTE
    reasons = [str(r) for r in inputs.analysis["decision"].get("reasons", [])]
    if not reasons:
        return [base]
    full = base + "\n\n**Statistics:**\n\n" + bullet_list(reasons)
    short = base + "\n\n**Statistics:**\n\n" + bullet_list(reasons, limit=3)
    return [full, short] if len(reasons) > 3 else [full]


# -- comparisons ------------------------------------------------------------------

COMPARISON_HEADERS = [
    "Target",
    "Candidate vs comparator",
    "n",
    "Δ mean",
    "CI",
    "Relative",
    "p (adj.)",
    "d_z",
    "P(sup.)",
    "Claim",
    "Verdict",
]


def comparison_row(c: dict[str, Any]) -> list[str]:
    ci = c.get("ci") or {}
    level = as_number(ci.get("level"))
    ci_text = fmt_ci(ci)
    if level is not None and ci_text != MISSING:
        ci_text = f"{level * 100:.0f}% {ci_text}"
    p_raw, p_adj = estimate_value(c.get("p_value")), estimate_value(c.get("p_adjusted"))
    p_text = fmt_p(p_adj if p_adj is not None else p_raw)
    if p_adj is not None:
        p_text += f" (raw {fmt_p(p_raw)})"
    kind = "reference" if c.get("kind") == "reference" else "component"
    verdict = str(c.get("verdict"))
    return [
        f"{md_text(c.get('target'), 80)} ({kind})",
        f"{md_code(c.get('candidate_arm'), 80)} vs {md_code(c.get('comparator_arm'), 80)}",
        fmt(c.get("n")),
        fmt(estimate_value(c.get("delta")), signed=True),
        ci_text,
        fmt_percent(estimate_value(c.get("relative"))),
        p_text,
        fmt(estimate_value(c.get("effect_size")), 3, signed=True),
        fmt(estimate_value(c.get("prob_superiority")), 3),
        claim_text(c.get("claim")),
        VERDICT_BADGES.get(verdict, md_text(verdict, 40)),
    ]


def metric_heading(name: object, goal: object, level: str = "###") -> str:
    words = GOAL_WORDS.get(str(goal), "")
    suffix = f" ({words})" if words else ""
    return f"{level} {md_text(name, 120)}{suffix}"


def comparisons_for(analysis: dict[str, Any], primary: bool) -> dict[str, list[dict[str, Any]]]:
    primary_names = {m["name"] for m in analysis["metrics"] if m.get("primary")}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for c in analysis["comparisons"]:
        is_primary = c.get("primary", c.get("metric") in primary_names)
        if bool(is_primary) == primary:
            grouped.setdefault(str(c.get("metric")), []).append(c)
    return grouped


def primary_levels(analysis: dict[str, Any]) -> list[str]:
    grouped = comparisons_for(analysis, primary=True)
    if not grouped:
        return ["### Primary metric\n\n_No comparisons on a primary metric._"]
    full, short = [], []
    for metric, rows in grouped.items():
        heading = metric_heading(metric, rows[0].get("goal"))
        body = [comparison_row(c) for c in rows]
        full.append(f"{heading}\n\n{table(COMPARISON_HEADERS, body)}")
        cut = body[:CUT_ROWS]
        text = table(COMPARISON_HEADERS, cut)
        if len(body) > CUT_ROWS:
            text += "\n\n" + cut_note(CUT_ROWS, len(body), "comparisons")
        short.append(f"{heading}\n\n{text}")
    return ["\n\n".join(full), "\n\n".join(short)]


def secondary_levels(analysis: dict[str, Any], options: MarkdownOptions) -> list[str]:
    grouped = comparisons_for(analysis, primary=False)
    if not grouped:
        return [""]
    blocks = [
        f"{metric_heading(m, rows[0].get('goal'), '####')}\n\n"
        + table(COMPARISON_HEADERS, [comparison_row(c) for c in rows])
        for m, rows in grouped.items()
    ]
    count = sum(len(rows) for rows in grouped.values())
    heading = "### Secondary metrics"
    body = details(f"{count} comparisons on secondary metrics", "\n\n".join(blocks), options)
    return [f"{heading}\n\n{body}", f"{heading}\n\n_{count} comparisons: in the full report._"]


def reasons_levels(analysis: dict[str, Any], options: MarkdownOptions) -> list[str]:
    """Per claim, every condition marked ✅ held or ❌ failed, and the power analysis's seeds."""
    from audit.report.conditions import claim_conditions, seed_hint

    rows = []
    for c in analysis["comparisons"]:
        target, metric = md_text(c.get("target"), 80), md_text(c.get("metric"), 80)
        conditions = claim_conditions(c)
        if conditions:
            rows += [
                [target, metric, f"{'✅' if k.held else '❌'} {md_text(k.text, 300)}"]
                for k in conditions
            ]
        else:
            rows += [[target, metric, md_text(r, 300)] for r in c.get("reasons") or []]
        hint = seed_hint(c) if conditions else None
        if hint:
            rows.append([target, metric, f"ℹ️ {fmt(c.get('n'))} paired seeds run; {hint}"])
    if not rows:
        return [""]
    body = details("Why each verdict", table(["Target", "Metric", "Condition"], rows), options)
    return [body, ""]


# -- claim tests (statistics v2): the rule, both family readings, hints, shape warnings --

CLAIM_TEST_HEADERS = [
    "Claim",
    "Tested (good direction)",
    "One-sided bound",
    "p",
    "At alpha (decision)",
    "Family",
    "Seeds for 80% power",
]


def _claim_family_cell(c: dict[str, Any]) -> str:
    family = c.get("family")
    if not isinstance(family, dict):
        return MISSING
    mark = "✅" if family.get("supported") else "❌"
    return f"{mark} {md_text(family.get('correction'), 20)} p {fmt_p(family.get('p_adjusted'))}"


def _seed_hint_cell(c: dict[str, Any]) -> str:
    hint = c.get("sample_size_hint")
    if not isinstance(hint, dict):
        return MISSING
    needed = hint.get("seeds_needed")
    effect = as_number(hint.get("planning_effect"))
    if needed is None or effect is None:
        return md_text(hint.get("note") or hint.get("basis") or MISSING, 120)
    text = f"{fmt(needed)} at effect {fmt(effect)}"
    power_now = as_number(hint.get("power_at_n"))
    if power_now is not None:
        text += f" (now {fmt(c.get('n'))} seeds: {power_now:.0%})"
    return text


def claim_test_row(c: dict[str, Any]) -> list[str]:
    bound = c.get("claim_bound") or {}
    level = as_number(bound.get("level"))
    bound_text = fmt(bound.get("value"), signed=True)
    if level is not None and bound_text != MISSING:
        bound_text = f"{level:.0%} lower: {bound_text}"
    p_value = c.get("p_value") or {}
    verdict = str(c.get("verdict"))
    return [
        f"{md_text(c.get('target'), 80)} / {md_text(c.get('metric'), 80)}",
        md_text(p_value.get("hypotheses") or p_value.get("null") or MISSING, 160),
        bound_text,
        fmt_p(p_value.get("value")),
        VERDICT_BADGES.get(verdict, md_text(verdict, 40)),
        _claim_family_cell(c),
        _seed_hint_cell(c),
    ]


def shape_warnings(analysis: dict[str, Any]) -> list[str]:
    """The skew / outlier / degenerate-sample warnings of the claimed comparisons."""
    lines = []
    for c in analysis["comparisons"]:
        shape = c.get("diagnostics")
        if not c.get("claim") or not isinstance(shape, dict) or not shape.get("warning"):
            continue
        where = f"{md_text(c.get('target'), 80)} / {md_text(c.get('metric'), 80)}"
        lines.append(f"- ⚠️ {where}: {md_text(shape['warning'], 400)}")
    return lines


def claim_tests_levels(analysis: dict[str, Any]) -> list[str]:
    rows = [claim_test_row(c) for c in analysis["comparisons"] if c.get("claim")]
    if not rows or not isinstance(analysis.get("decision_rule"), dict):
        return [""]
    intro = (
        "Each claim is a one-sided paired t-test in the metric's good direction at "
        f"alpha {fmt(analysis.get('alpha'))}; the decision needs every claim "
        "(intersection-union), so each is tested at alpha. The family column reads the "
        f"claims with the {md_code(analysis.get('correction'))} correction; it is shown, "
        "not used by the decision."
    )
    heading = "### Claim tests"
    warnings = shape_warnings(analysis)
    body = f"{intro}\n\n{table(CLAIM_TEST_HEADERS, rows)}"
    if warnings:
        body += "\n\n" + "\n".join(warnings)
    short = f"{heading}\n\n" + (
        "\n".join(warnings) if warnings else "_Claim-test details are in the full report._"
    )
    return [f"{heading}\n\n{body}", short]


# -- chart --------------------------------------------------------------------------


def chart_placeholder(index: int) -> str:
    """Where the HTML renderer puts the index-th plot (an SVG) after conversion."""
    return f"<!-- mlaudit:chart {index} -->"


def chart_levels(analysis: dict[str, Any], options: MarkdownOptions) -> list[str]:
    """A text forest plot per primary metric: each delta with its CI, 0 always on the axis."""
    from audit.report.textchart import Interval, forest_text, safe_label

    blocks = []
    grouped = comparisons_for(analysis, primary=True)
    if options.html_mode:
        places = "\n\n".join(chart_placeholder(i) for i in range(len(grouped)))
        return ["### Deltas with confidence intervals\n\n" + places] if grouped else [""]
    for metric, rows in grouped.items():
        points = []
        for c in rows[:CHART_MAX_BARS]:
            delta = estimate_value(c.get("delta"))
            ci = c.get("ci") or {}
            low, high = as_number(ci.get("low")), as_number(ci.get("high"))
            if delta is None or low is None or high is None:
                continue
            points.append(Interval(safe_label(c.get("target")), delta, low, high))
        if not points:
            continue
        legend = f"{md_text(metric, 80)}: ● mean delta, ├─┤ confidence interval, │ zero"
        blocks.append(f"{legend}\n\n```text\n{forest_text(points)}\n```")
    if not blocks:
        return [""]
    return ["### Deltas with confidence intervals\n\n" + "\n\n".join(blocks), ""]


# -- evidence from results.json -------------------------------------------------------


def approvals_levels(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            md_text(a.get("principal"), 120),
            md_text(a.get("role") or "—", 60),
            md_code(a.get("key_fingerprint") or "—", 120),
            md_text(a.get("verdict"), 40)
            + (f": {md_text(a['reason'], 200)}" if a.get("reason") else ""),
        ]
        for a in results.get("approvals") or []
    ]
    trust = results.get("trust") or {}
    trust_line = ""
    if trust:
        protected = "protected" if trust.get("protected") else "NOT protected (--trust-dir)"
        trust_line = (
            f"Trust files from {md_code(trust.get('ref') or '—')} at "
            f"{md_code(str(trust.get('commit') or '—')[:40])}, {protected}."
        )
    heading = "### Approvals" + (f"\n\n{trust_line}" if trust_line else "")
    return table_levels(
        heading,
        ["Principal", "Role", "Key fingerprint", "Verdict"],
        rows,
        "approvals",
        empty="_No approvals recorded._",
    )


def provenance_levels(results: dict[str, Any], options: MarkdownOptions) -> list[str]:
    prov = results.get("provenance") or {}
    git = prov.get("git") or {}
    env = prov.get("environment") or {}
    rows = [
        ["Commit", md_code(git.get("commit") or "—")],
        ["Tree", md_code(git.get("tree") or "—")],
        ["Working tree", "dirty ⚠️" if git.get("dirty") else "clean"],
        ["Image digest", md_code(env.get("image_digest") or "—")],
        ["Environment lock", md_text(env.get("lock_file") or "—", 120)],
        ["Lock sha256", md_code(env.get("lock_sha256") or "—")],
        ["Python", md_text(env.get("python") or "—", 60)],
        ["Platform", md_text(env.get("platform") or "—", 120)],
        ["Distributions sha256", md_code(env.get("distributions_sha256") or "—")],
        ["Fingerprint", md_code(prov.get("fingerprint") or "—")],
    ]
    dvc_clean = prov.get("dvc_status_clean")
    if dvc_clean is not None:
        rows.append(["DVC status", "clean" if dvc_clean else "changed ⚠️"])
    data = prov.get("data") or {}
    data_rows = [[md_text(path, 200), md_code(digest)] for path, digest in sorted(data.items())]
    full = "### Provenance\n\n" + table(["What", "Value"], rows)
    if data_rows:
        full += "\n\n" + details(
            f"Data hashes ({len(data_rows)})", table(["Path", "Hash"], data_rows), options
        )
    full += data_pins_section(prov.get("data_pins") or {}, options)
    compact = "### Provenance\n\n" + table(["What", "Value"], [rows[0], rows[3], rows[9]])
    return [full, compact]


def data_pins_section(pins: dict[str, Any], options: MarkdownOptions) -> str:
    """Git LFS objects and lakeFS commits the run read (audit.provenance.pins)."""
    text = ""
    lfs_rows = [
        [
            md_text(obj.get("path"), 200),
            md_code(obj.get("oid")),
            fmt(obj.get("size"), 20),
            "yes" if obj.get("canonical") else "no ⚠️",
            "yes" if obj.get("matches") else "no ⚠️",
        ]
        for pin in pins.get("git_lfs") or []
        for obj in pin.get("objects") or []
    ]
    if lfs_rows:
        headers = ["Path", "LFS oid", "Size", "Canonical pointer", "File matches"]
        text += "\n\n" + details(
            f"Git LFS objects ({len(lfs_rows)})", table(headers, lfs_rows), options
        )
    lakefs_rows = [
        [
            md_text(pin.get("uri"), 200),
            md_text(pin.get("ref_kind"), 20),
            md_code(pin.get("commit_id")),
            fmt(pin.get("object_count"), 20),
            md_code(pin.get("manifest_sha256")),
        ]
        for pin in pins.get("lakefs") or []
    ]
    if lakefs_rows:
        headers = ["URI", "Ref", "Commit", "Objects", "Manifest sha256"]
        text += "\n\n" + details(
            f"lakeFS data ({len(lakefs_rows)})", table(headers, lakefs_rows), options
        )
    return text


def reproducibility_levels(results: dict[str, Any]) -> list[str]:
    repro = results.get("reproducibility")
    if not isinstance(repro, dict):
        return ["### Reproducibility\n\n_No reproducibility check was run._"]
    status = "✅ reproduced" if repro.get("passed") else "❌ NOT reproduced"
    line = (
        f"### Reproducibility\n\n{status}: {md_code(repro.get('arm'))} seed "
        f"{fmt(repro.get('seed'))} was re-run"
    )
    tolerance = repro.get("tolerance") or {}
    if tolerance:
        line += " with tolerance " + ", ".join(
            f"{md_text(k, 20)} {fmt(v)}" for k, v in sorted(tolerance.items())
        )
    line += "."
    if repro.get("reason"):
        line += f" {md_text(repro['reason'], 300)}"
    rows = [
        [md_text(name, 80), fmt(m.get("original")), fmt(m.get("rerun")), fmt(m.get("abs_diff"))]
        for name, m in sorted((repro.get("metrics") or {}).items())
        if isinstance(m, dict)
    ]
    if rows:
        return [
            line + "\n\n" + table(["Metric", "Original", "Re-run", "Abs. difference"], rows),
            line,
        ]
    return [line]


def attrition_levels(inputs: ReportInputs) -> list[str]:
    rows = [
        [md_code(a.get("arm")), fmt(a.get("seed")), md_text(a.get("reason"), 300)]
        for a in inputs.analysis["attrition"]
    ]
    failed = [
        [
            md_code(t.get("trial_id"), 120),
            md_text(t.get("status"), 20),
            fmt(t.get("exit_code")),
            md_text(t.get("reason") or "—", 300),
        ]
        for t in (inputs.results or {}).get("trials", [])
        if t.get("status") != "succeeded"
    ]
    if not rows and not failed:
        return ["### Attrition and failed trials\n\n_None: every planned trial succeeded._"]
    parts, short = ["### Attrition and failed trials"], ["### Attrition and failed trials"]
    if rows:
        parts.append(table(["Arm", "Seed", "Reason"], rows))
        short.append(table(["Arm", "Seed", "Reason"], rows[:10]))
        if len(rows) > 10:
            short.append(cut_note(10, len(rows), "attrition records"))
    if failed:
        parts.append(table(["Trial", "Status", "Exit code", "Reason"], failed))
        short.append(table(["Trial", "Status", "Exit code", "Reason"], failed[:10]))
        if len(failed) > 10:
            short.append(cut_note(10, len(failed), "failed trials"))
    minimal = (
        f"### Attrition and failed trials\n\n_{len(rows)} attrition records, "
        f"{len(failed)} trials not succeeded: listed in the full report._"
    )
    return ["\n\n".join(parts), "\n\n".join(short), minimal]


def budget_levels(results: dict[str, Any]) -> list[str]:
    budget = results.get("budget") or {}
    minutes = as_number(budget.get("wall_seconds"))
    rows = [
        [_trials_label(results), fmt(budget.get("trials_run")), fmt(budget.get("max_trials"))],
        [
            "Wall time (min)",
            fmt(minutes / 60 if minutes is not None else None, 3),
            fmt(budget.get("max_wall_minutes")),
        ],
    ]
    if budget.get("trial_timeout_seconds") is not None:
        rows.append(["Per-trial timeout (s)", "—", fmt(budget.get("trial_timeout_seconds"))])
    note = " ⚠️ The budget was exhausted." if budget.get("exhausted") else ""
    return ["### Budget: used vs signed" + note + "\n\n" + table(["", "Used", "Signed"], rows)]


def _trials_label(results: dict[str, Any]) -> str:
    """Say that the determinism re-run is one of the trials run, so the counts add up."""
    repro = results.get("reproducibility")
    if isinstance(repro, dict) and (as_number(repro.get("attempts")) or 0) > 0:
        return "Trials (incl. 1 determinism re-run)"
    return "Trials"


def arms_levels(inputs: ReportInputs) -> list[str]:
    """Mean ± SD of the primary metric per arm, from the succeeded trials."""
    from audit.report.arms import arm_summaries

    results = inputs.results or {}
    primary = [m for m in inputs.analysis["metrics"] if m.get("primary")]
    if not primary or not results.get("trials"):
        return [""]
    metric = str(primary[0].get("name"))
    rows = [
        [
            md_code(s.arm, 80),
            fmt(s.n),
            f"{fmt(s.mean)} ± {fmt(s.sd)}" if s.mean is not None else MISSING,
            fmt(s.not_succeeded),
        ]
        for s in arm_summaries(results["trials"], metric)
    ]
    heading = f"### {md_text(metric, 120)} per arm (mean ± SD over seeds)"
    return [heading + "\n\n" + table(["Arm", "n", "Mean ± SD", "Not succeeded"], rows), ""]


def checkpoint_levels(checkpoint: dict[str, Any] | None) -> list[str]:
    if checkpoint is None:
        return [""]
    return [
        "### Ledger checkpoint\n\n"
        + table(
            ["Origin", "Size", "Root"],
            [
                [
                    md_text(checkpoint.get("origin"), 200),
                    fmt(checkpoint.get("size"), 20),
                    md_code(checkpoint.get("root")),
                ]
            ],
        )
    ]


def tracking_base(results: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    tracking = (results or {}).get("tracking") or {}
    return safe_http_base(tracking.get("uri")), tracking


def mlflow_levels(results: dict[str, Any]) -> list[str]:
    base, tracking = tracking_base(results)
    if base is None:
        return [""]
    line = f"### MLflow\n\nTracking server: <{base}>"
    parent = mlflow_run_url(base, tracking.get("experiment_id"), tracking.get("parent_run_id"))
    if parent:
        line += f" · [parent run]({parent})"
    return [line, ""]


def trial_rows(inputs: ReportInputs, html: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the per-trial table, as Markdown or (html=True) as HTML."""
    results = inputs.results or {}
    metric_names = [str(m["name"]) for m in inputs.analysis["metrics"]][:4]
    base, tracking = tracking_base(results)
    text = (lambda v, n: html_text(v, n)) if html else md_text
    code = (lambda v, n: f"<code>{html_text(v, n)}</code>") if html else md_code
    headers = ["Trial", "Arm", "Seed", "Status", "Duration (s)"]
    headers += [text(name, 40) for name in metric_names]
    headers += ["Cached from", "MLflow"]
    trials = results.get("trials", [])
    # W&B / ClearML runs the trials made themselves (audit.protocol.foreign_runs).
    foreign = any(t.get("foreign_runs") for t in trials)
    if foreign:
        headers.append("W&B / ClearML")
    rows = []
    for t in trials:
        metrics = t.get("metrics") or {}
        link = "—"
        if base:
            url = mlflow_run_url(base, tracking.get("experiment_id"), t.get("mlflow_run_id"))
            if url:
                link = f'<a href="{html_text(url)}">run</a>' if html else f"[run]({url})"
        rows.append(
            [
                code(t.get("trial_id"), 120),
                code(t.get("arm"), 80),
                fmt(t.get("seed"), 20),
                text(t.get("status"), 20),
                fmt_seconds(t.get("duration_seconds")),
                *[fmt(metrics.get(name), 6) for name in metric_names],
                code(t.get("cached_from") or "—", 120),
                link,
                *([_foreign_cell(t.get("foreign_runs"), text, code)] if foreign else []),
            ]
        )
    return headers, rows


def _foreign_cell(runs: Any, text: Any, code: Any) -> str:
    if not isinstance(runs, dict) or not runs:
        return "—"
    parts = []
    for tool, ids in sorted(runs.items()):
        shown = ", ".join(code(i, 80) for i in (ids if isinstance(ids, list) else [ids])[:3])
        parts.append(f"{text(tool, 20)} {shown}")
    return "; ".join(parts)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A raw HTML table of already-escaped cells: Python-Markdown passes it through as is,
    which keeps the 200-row trial table out of its (slow) inline processing."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def trials_levels(inputs: ReportInputs, options: MarkdownOptions) -> list[str]:
    headers, rows = trial_rows(inputs, html=options.html_mode)
    if not rows:
        return [""]
    html_body = html_table(headers, rows) if options.html_mode else None
    counts: dict[str, int] = {}
    for t in (inputs.results or {}).get("trials", []):
        status = str(t.get("status"))
        counts[status] = counts.get(status, 0) + 1
    summary_text = ", ".join(f"{n} {md_text(s, 20)}" for s, n in sorted(counts.items()))
    heading = "### Trials"
    title = f"Per-trial details: {summary_text}"
    full = details(title, "" if html_body else table(headers, rows), options, html_body)
    if options.html_mode:  # the HTML report is never cut
        return [f"{heading}\n\n{full}"]
    cut_body = table(headers, rows[:CUT_ROWS]) + "\n\n" + cut_note(CUT_ROWS, len(rows), "trials")
    cut = details(title, cut_body, options)
    return [
        f"{heading}\n\n{full}",
        f"{heading}\n\n{cut}",
        f"{heading}\n\n{len(rows)} trials: {summary_text}. Details are in the full report.",
    ]


def footer(inputs: ReportInputs, options: MarkdownOptions) -> str:
    key = options.key or str(inputs.analysis["edd"].get("id") or "default")
    sha = str(inputs.analysis.get("results_sha256", ""))[:12]
    return (
        f"<sub>mlaudit {__version__} · analysis of results {md_code(sha)}</sub>\n\n"
        + Marker(key).render()
    )


def pointer(options: MarkdownOptions) -> str:
    where = DEFAULT_POINTER
    base = safe_http_base(options.details_url) if options.details_url else None
    if base:
        where = f"<{base}>"
    budget = options.budget
    size = f" ({budget.where}, {budget.limit:,} characters)" if budget else ""
    return (
        f"> [!NOTE]\n> Parts of this report were shortened to fit the size limit{size}.\n"
        f"> The full report is {where}."
    )


def build_sections(
    inputs: ReportInputs, options: MarkdownOptions, verdict: Verdict
) -> list[Section]:
    """The report's sections in reading order; priority = which shrinks first."""
    analysis, results = inputs.analysis, inputs.results
    sections = [
        Section("decision", header_levels(inputs, verdict), priority=90),
        Section("primary", primary_levels(analysis), priority=80),
        Section("claim-tests", claim_tests_levels(analysis), priority=75),
        Section("arms", arms_levels(inputs), priority=45),
        Section("chart", chart_levels(analysis, options), priority=30),
        Section("verdict-reasons", reasons_levels(analysis, options), priority=20),
        Section("secondary", secondary_levels(analysis, options), priority=25),
    ]
    if results is not None:
        sections += [
            Section("approvals", approvals_levels(results), priority=60),
            Section("provenance", provenance_levels(results, options), priority=40),
            Section("reproducibility", reproducibility_levels(results), priority=70),
        ]
    sections.append(Section("attrition", attrition_levels(inputs), priority=50))
    if results is not None:
        sections += [
            Section("budget", budget_levels(results), priority=70),
            Section("mlflow", mlflow_levels(results), priority=35),
        ]
    sections.append(Section("checkpoint", checkpoint_levels(inputs.checkpoint), priority=70))
    if results is not None:
        sections.append(Section("trials", trials_levels(inputs, options), priority=10))
    sections.append(Section("footer", [footer(inputs, options)], priority=100))
    return sections


def render_markdown(
    inputs: ReportInputs, options: MarkdownOptions | None = None, verdict: Verdict | None = None
) -> str:
    """The report as GitHub/GitLab-flavoured Markdown, within `options.budget`.

    The headline shows `verdict` (the gate's result); without one it says "not gated".
    """
    options = options or MarkdownOptions()
    verdict = verdict or Verdict(None)
    sections = build_sections(inputs, options, verdict)
    fallback = (
        headline(inputs, verdict)
        + "\n\n"
        + pointer(options).replace("Parts of this report were shortened", "This report was cut")
        + "\n\n"
        + footer(inputs, options)
        + "\n"
    )
    return fit(sections, options.budget, pointer(options), fallback).text
