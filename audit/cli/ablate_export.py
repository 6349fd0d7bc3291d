"""`mlaudit ablate export --kfp`: compile the signed plan into a Kubeflow pipeline."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option, printable
from audit.errors import ExitCode, UsageError


@click.command()
@click.argument("edd_path", metavar="EDD", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--kfp",
    "kfp_target",
    is_flag=True,
    help="Compile a Kubeflow Pipelines v2 pipeline (IR YAML). The only target so far.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the pipeline YAML (upload it to KFP as is).",
)
@click.option(
    "--image",
    required=True,
    metavar="NAME@sha256:DIGEST",
    help="The training image, by digest; every task runs in it. A tag alone is refused.",
)
@click.option(
    "--tracking-uri",
    required=True,
    metavar="URI",
    help="The shared `mlaudit server` every shard logs to, reachable from the cluster.",
)
@click.option(
    "--trust-ref",
    required=True,
    metavar="REF",
    help="Protected ref holding .mlaudit/, as a fresh clone names it (e.g. origin/main).",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    metavar="N",
    help="Shard tasks that run in parallel (default: 4, at most the planned trials).",
)
@click.option(
    "--git-url",
    metavar="URL",
    help="Where the cluster clones the project from (default: the `origin` remote's URL).",
)
@click.option(
    "--commit",
    default="HEAD",
    show_default=True,
    metavar="REV",
    help="The commit the tasks check out; it must hold this very EDD and be pushed.",
)
@click.option(
    "--setup",
    metavar="COMMAND",
    help="Run once in the project folder after the checkout, before the shards, to put the "
    "data in place (e.g. 'dvc pull'); split like a shell, run without one.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="KFP retries of a shard task whose pod failed; the retry resumes its journal.",
)
@click.option("--cpu-limit", metavar="CPU", help="CPU limit of each shard task (e.g. 4).")
@click.option("--memory-limit", metavar="SIZE", help="Memory limit of each shard task (e.g. 8G).")
@click.option(
    "--rehearse",
    "rehearse_dir",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Also run the same tasks here with kfp.local (no cluster, no image: this Python); "
    "exit 1 unless every task succeeds. DIR keeps the task outputs and the bundle.",
)
@json_option
def export(
    edd_path: Path,
    kfp_target: bool,
    output: Path,
    image: str,
    tracking_uri: str,
    trust_ref: str,
    shards: int | None,
    git_url: str | None,
    commit: str,
    setup: str | None,
    retries: int,
    cpu_limit: str | None,
    memory_limit: str | None,
    rehearse_dir: Path | None,
    as_json: bool,
) -> int:
    """Compile the approved EDD into a pipeline for an engine outside CI.

    \b
    With --kfp, the pipeline's tasks, each in the training image by digest:
      fetch-source, checkout-commit   clone --git-url, check out --commit
      setup-data                      --setup in the project folder (if given)
      shard-1 .. shard-N              mlaudit ablate run --shard I/N, logging to
                                      --tracking-uri, pinned by --expect-digest
      collect -> log -> analyze -> checkpoint -> gate -> bundle
    The bundle task runs even when the gate fails and publishes bundle.tar.gz as
    the run's output artifact. Every argument is fixed here: the pipeline has no
    parameters, carries the EDD digest, and each shard and the gate refuse any
    other EDD. The same inputs give the same YAML bytes.

    \b
    Example:
      mlaudit ablate export --kfp edd.yaml -o pipeline.yaml \\
        --image registry.example.com/training@sha256:... \\
        --tracking-uri https://mlaudit.example.com --trust-ref origin/main

    Needs the kfp SDK (pip install 'mlaudit[kfp]'). See docs/scale.md.
    """
    from audit.protocol.kfp_export import compile_pipeline, rehearse, require_kfp
    from audit.protocol.kfp_study import ExportRequest, build_kfp_study, commit_on_a_remote

    if not kfp_target:
        raise UsageError("choose what to export: --kfp (Kubeflow Pipelines)")
    require_kfp()
    study = build_kfp_study(
        ExportRequest(
            edd_path=edd_path,
            image=image,
            tracking_uri=tracking_uri,
            trust_ref=trust_ref,
            shards=shards,
            git_url=git_url,
            commit=commit,
            setup=setup,
            retries=retries,
            cpu_limit=cpu_limit,
            memory_limit=memory_limit,
        )
    )
    if not commit_on_a_remote(edd_path, study.commit):
        echo(
            f"mlaudit: warning: no remote branch holds commit {study.commit[:12]}; push it, "
            "or the pipeline's checkout-commit task fails",
            err=True,
        )
    compile_pipeline(study, output)
    summary: dict[str, object] = {
        "output": str(output),
        "edd": {"id": study.edd_id, "version": study.edd_version, "digest": study.edd_digest},
        "commit": study.commit,
        "image": str(study.image),
        "shards": study.shards,
    }
    rehearsal = None
    if rehearse_dir is not None:
        # kfp.local prints every task's output; stdout is for our result (--json).
        with contextlib.redirect_stdout(sys.stderr):
            rehearsal = rehearse(study, rehearse_dir)
        summary["rehearsal"] = {
            "succeeded": rehearsal.succeeded,
            "bundle": str(rehearsal.bundle) if rehearsal.bundle else None,
        }
    code = int(ExitCode.OK if rehearsal is None or rehearsal.succeeded else ExitCode.CHECK_FAILED)
    if as_json:
        emit_json(summary)
        return code
    echo(
        f"wrote {output}: EDD {printable(study.edd_id)} v{study.edd_version} "
        f"sha256:{study.edd_digest}, commit {study.commit[:12]}, {study.shards} shard(s)"
    )
    if rehearsal is not None:
        verdict = "every task succeeded" if rehearsal.succeeded else "a task FAILED (log above)"
        echo(f"local rehearsal: {verdict}; bundle: {rehearsal.bundle or 'none'}")
    return code
