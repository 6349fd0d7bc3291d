"""`mlaudit track`: the command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from audit.cli._lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "log": (
            "audit.cli.track_log:log",
            "Log results.json to MLflow: one parent run, one sealed child run per trial.",
        ),
        "flush": (
            "audit.cli.track_log:flush",
            "Replay spooled records after a server outage.",
        ),
        "checkpoint": (
            "audit.cli.track_ledger:checkpoint",
            "Print (and optionally sign) a Merkle checkpoint of the sealed runs.",
        ),
        "verify": (
            "audit.cli.track_ledger:verify",
            "Recompute every sealed run and the Merkle root; compare with a checkpoint.",
        ),
    },
)
def track() -> None:
    """Log results to MLflow, take checkpoints, verify the ledger."""
