"""`mlaudit report`: the command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from audit.cli._lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "render": (
            "audit.cli.report_render:render",
            "Render analysis.json as Markdown, HTML, JSON or JUnit.",
        ),
        "publish": (
            "audit.cli.report_publish:publish",
            "Post the report as a sticky PR/MR comment, commit status and check.",
        ),
    },
)
def report() -> None:
    """Render the report and publish it to the PR/MR."""
