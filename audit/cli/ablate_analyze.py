"""`mlaudit ablate analyze`: results.json -> analysis.json (paired statistics and the decision).

Parses, calls audit.stats, renders. numpy and scipy are imported inside the command so the
CLI root stays light. A negative decision still exits 0: the gate decides what fails.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option, printable
from audit.errors import UsageError


def write_analysis(path: Path, analysis: dict[str, Any]) -> None:
    """analysis.json through the one writer ('-': standard output, same bytes)."""
    from audit.documents import dumps, write_document

    if str(path) == "-":
        sys.stdout.write(dumps(analysis).decode("utf-8"))
        return
    write_document(path, analysis, schema="analysis")


def _fmt(value: object) -> str:
    return f"{value:+.4g}" if isinstance(value, float) else "n/a"


def _p(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "n/a"


def render_text(analysis: dict[str, Any], output: Path) -> None:
    for comparison in analysis["comparisons"]:
        if comparison.get("claim") is None:
            continue
        ci = comparison["ci"]
        p_raw, p_adj = comparison["p_value"]["value"], comparison["p_adjusted"]["value"]
        # The verdict uses the claim's own p at alpha; the adjusted p is the family reading.
        echo(
            f"{comparison['verdict']:>12}  {comparison['target']} ({comparison['metric']}, "
            f"{comparison['goal']}): delta {_fmt(comparison['delta']['value'])} "
            f"[{_fmt(ci['low'])}, {_fmt(ci['high'])}] {ci['level']:.0%} {ci['method']}, "
            f"n={comparison['n']}, claim p={_p(p_raw)} "
            f"({comparison['p_adjusted']['method']}-adjusted {_p(p_adj)})"
        )
    if analysis["attrition"]:
        echo(f"attrition: {len(analysis['attrition'])} planned trial(s) without a usable value")
    decision = analysis["decision"]
    echo(f"decision: {decision['summary']}")
    for reason in decision.get("reasons", []):  # each claim's verdict and each blocker, named
        echo(f"  - {printable(str(reason))}")
    if str(output) != "-":
        echo(f"wrote {output}")


@click.command("analyze")
@click.argument("results", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="Where to write analysis.json ('-' for stdout).",
)
@click.option(
    "--resampling-seed",
    "--seed",
    "seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    default=None,
    # Not the trials' seeds (those are signed in the EDD): only the resampling's.
    help="Seed of the bootstrap and Monte Carlo draws, not of any trial (recorded in the "
    "output; default 20211). --seed is the older name.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=99, max=1_000_000),
    default=None,
    help="Bootstrap resamples and Monte Carlo permutations [default: 9999].",
)
@json_option
def analyze(
    results: Path, output: Path, seed: int | None, resamples: int | None, as_json: bool
) -> int:
    """Analyse RESULTS (results.json): paired deltas, CIs, exact tests, Holm, the decision.

    Exits 0 whatever the decision (the gate turns it into a status); 1 when RESULTS is
    not a valid results document.
    """
    from audit.documents import read_results
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    if as_json and str(output) == "-":
        raise UsageError("--json and -o - both want stdout; pick one")
    document = read_results(results)
    digest = document.sha256
    analysis = analyze_results(
        document.document,
        results_sha256=digest,
        seed=DEFAULT_SEED if seed is None else seed,
        resamples=DEFAULT_RESAMPLES if resamples is None else resamples,
        source=str(results),
    )
    write_analysis(output, analysis)
    if as_json:
        emit_json(
            {
                "output": str(output),
                "results_sha256": digest,
                "passed": analysis["decision"]["passed"],
                "summary": analysis["decision"]["summary"],
                "claims": analysis["decision"]["claims"],
            }
        )
    elif str(output) != "-":
        render_text(analysis, output)
    return 0
