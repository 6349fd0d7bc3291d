"""`mlaudit ablate`: the command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from audit.cli._lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "plan": (
            "audit.cli.ablate_plan:plan",
            "Expand the EDD into arms x seeds (and CI shards) and check for confounds.",
        ),
        "run": (
            "audit.cli.ablate_run:run",
            "Run the trials exactly as signed: parallel, journaled, resumable, cached.",
        ),
        "collect": (
            "audit.cli.ablate_collect:collect",
            "Merge shard outputs into one results.json.",
        ),
        "export": (
            "audit.cli.ablate_export:export",
            "Compile the signed plan into a Kubeflow pipeline (--kfp) that runs it by digest.",
        ),
        "analyze": (
            "audit.cli.ablate_analyze:analyze",
            "Paired statistics, multiplicity correction and the decision -> analysis.json.",
        ),
    },
)
def ablate() -> None:
    """Plan, run, collect and analyse the ablation protocol."""
