"""`mlaudit report render`: analysis.json (+ results, checkpoint, gate) as a report.

The decision the report shows is the gate's result (--gate gate.json); a report
rendered without one says "not gated".
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import UsageError

FORMATS = ("md", "html", "json", "junit")
# The format a file name asks for: `-o report.html` alone renders HTML.
SUFFIX_FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".xml": "junit",
}
BUDGET_NAMES = ("github-comment", "github-check", "step-summary", "gitlab-note")


@click.command("render")
@click.argument("analysis", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--results", type=click.Path(path_type=Path, dir_okay=False), help="results.json.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ledger checkpoint JSON from `mlaudit track checkpoint`.",
)
@click.option(
    "--gate",
    "gate_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The gate result (`mlaudit gate -o gate.json`): the decision the report shows. "
    "Without it the report says NOT GATED.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="md for the PR/MR, html for the bundle, json for machines, junit for test widgets. "
    "Default: what the output's name ends in (.md, .html, .json, .xml for JUnit), else md.",
)
@click.option(
    "--budget",
    type=click.Choice(BUDGET_NAMES),
    help="Fit the Markdown into this size limit (collapsing details, pointing to the artifact).",
)
@click.option("--key", help="Sticky-comment key in the hidden marker (default: the EDD id).")
@click.option("--details-url", help="http(s) URL of the full report, named when cut to fit.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="Where to write the report ('-' for stdout).",
)
@json_option
def render(
    analysis: Path,
    results: Path | None,
    checkpoint: Path | None,
    gate_file: Path | None,
    fmt: str | None,
    budget: str | None,
    key: str | None,
    details_url: str | None,
    output: Path,
    as_json: bool,
) -> int:
    """Render ANALYSIS (analysis.json) as a report.

    The Markdown starts with the gate's decision (and which kind of failure);
    HTML is a standalone page that opens offline; JSON is a structured summary;
    JUnit has one testcase per gate rule.
    """
    from audit.report import Verdict, load_inputs, read_gate
    from audit.report import render as render_report

    fmt = _format_for(output, fmt)
    if budget and fmt != "md":
        raise UsageError("--budget applies to --format md only")
    inputs = load_inputs(analysis, results, checkpoint)
    gate = read_gate(gate_file) if gate_file else None
    if gate_file:
        inputs.sources["gate"] = str(gate_file)
    text = render_report(inputs, fmt, gate=gate, budget=budget, key=key, details_url=details_url)
    if str(output) == "-":
        sys.stdout.write(text)
        return 0
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{output}: cannot write: {error.strerror}") from None
    state = Verdict(gate).state
    if as_json:
        emit_json(
            {"output": str(output), "format": fmt, "characters": len(text), "decision": state}
        )
    else:
        echo(f"wrote {output} ({fmt}, {len(text):,} characters; decision: {state})")
    return 0


def _format_for(output: Path, chosen: str | None) -> str:
    """--format, else the one the file name asks for; a name asking for another is refused."""
    named = SUFFIX_FORMATS.get(output.suffix.lower()) if str(output) != "-" else None
    if chosen is None:
        return named or "md"
    if named is not None and named != chosen:
        raise UsageError(
            f"--format {chosen}, but the name {output} asks for {named}: "
            "drop --format (the format follows the name) or rename the output"
        )
    return chosen
