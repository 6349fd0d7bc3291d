"""`mlaudit ablate analyze`: results.json -> analysis.json (paired statistics and the decision).

Parses, calls audit.stats, renders. numpy and scipy are imported inside the command so the
CLI root stays light. A negative decision still exits 0: the gate decides what fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option, printable
from audit.errors import InputError, Location, UsageError


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def read_results(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed results document and the sha256 of the exact bytes read."""
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", location=Location(str(path))) from None
    try:
        document = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", location=Location(str(path))) from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
            location=Location(str(path)),
        ) from None
    except ValueError as error:
        raise InputError(f"not valid JSON: {error}", location=Location(str(path))) from None
    if not isinstance(document, dict):
        raise InputError("expected a JSON object", location=Location(str(path), "/"))
    return document, hashlib.sha256(raw).hexdigest()


def write_json_atomically(path: Path, data: object) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a killed job never leaves half an analysis behind.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror}") from None


def _fmt(value: object) -> str:
    return f"{value:+.4g}" if isinstance(value, float) else "n/a"


def render_text(analysis: dict[str, Any], output: Path) -> None:
    for comparison in analysis["comparisons"]:
        if comparison.get("claim") is None:
            continue
        ci = comparison["ci"]
        p_adj = comparison["p_adjusted"]["value"]
        echo(
            f"{comparison['verdict']:>12}  {comparison['target']} ({comparison['metric']}, "
            f"{comparison['goal']}): delta {_fmt(comparison['delta']['value'])} "
            f"[{_fmt(ci['low'])}, {_fmt(ci['high'])}] {ci['level']:.0%} {ci['method']}, "
            f"n={comparison['n']}, adjusted p={'n/a' if p_adj is None else f'{p_adj:.4g}'}"
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
    "--seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    default=None,
    help="Seed of the bootstrap and Monte Carlo draws (recorded in the output; default 20211).",
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
    from audit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results

    if as_json and str(output) == "-":
        raise UsageError("--json and -o - both want stdout; pick one")
    document, digest = read_results(results)
    analysis = analyze_results(
        document,
        results_sha256=digest,
        seed=DEFAULT_SEED if seed is None else seed,
        resamples=DEFAULT_RESAMPLES if resamples is None else resamples,
        source=str(results),
    )
    write_json_atomically(output, analysis)
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
