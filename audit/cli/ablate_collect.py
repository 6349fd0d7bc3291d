"""`mlaudit ablate collect`: merge CI shard outputs into one results.json."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option


@click.command()
@click.argument("dirs", metavar="DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the merged results.json.",
)
@json_option
def collect(dirs: tuple[Path, ...], output: Path, as_json: bool) -> int:
    """Merge the results of every shard (out dirs or results.json files) into one file.

    Every planned (arm, seed) must appear exactly once, and every shard must have run
    the same EDD, plan, approvals, code, data and environment.
    """
    from audit.protocol.results import collect_results, write_json

    merged = collect_results(list(dirs))
    write_json(merged, output)
    counts: dict[str, int] = {}
    for trial in merged["trials"]:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
    if as_json:
        emit_json({"output": str(output), "shards": merged["shards"], "counts": counts})
    else:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        echo(f"merged {len(dirs)} shard(s), {len(merged['trials'])} trials ({shown}) -> {output}")
    return 0
