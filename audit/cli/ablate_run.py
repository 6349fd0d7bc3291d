"""`mlaudit ablate run`: verify the EDD's approvals, record provenance, run the trials.

This module is the only place that reads argv and the environment for a run;
the protocol core gets plain values (RunRequest).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from concurrent import futures
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import PolicyError, UsageError, ValidationFailed


@click.command()
@click.argument("edd_path", metavar="EDD", type=click.Path(path_type=Path))
@click.option("--trust-ref", metavar="REF", help="Protected git ref holding .mlaudit/ trust files.")
@click.option(
    "--trust-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Local trust directory instead of a ref (NOT protected; recorded as such).",
)
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    help="Project folder, or a folder below it (default: the EDD's folder). The project is "
    "the nearest folder upwards whose .mlaudit/ the trust ref holds, else the git top level.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for trial directories, the journal and results.json.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Parallel trials, local pool (default: cores)."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where trials run: a local process pool, or one Ray task per trial "
    "(resources from the EDD's protocol.resources; needs mlaudit[ray]).",
)
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    envvar="RAY_ADDRESS",
    help="Ray cluster to run on, host:port of its head (default: $RAY_ADDRESS, else `auto`: "
    "the cluster started on this machine).",
)
@click.option(
    "--shard",
    envvar="MLAUDIT_SHARD",
    metavar="I/N",
    help="Run only shard I of N (default: $MLAUDIT_SHARD).",
)
@click.option("--resume", is_flag=True, help="Finish a run in --out that was interrupted.")
@click.option("--tracking-uri", metavar="URI", help="Log each trial to this MLflow server.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Trial cache (default: .mlaudit/cache in the project).",
)
@click.option("--no-cache", is_flag=True, help="Neither reuse nor store cached trials.")
@click.option("--allow-dirty", is_flag=True, help="Run on uncommitted code (recorded).")
@click.option(
    "--expect-digest",
    metavar="SHA256",
    help="Refuse to run unless the EDD's digest is this one (`mlaudit edd digest`): pins an "
    "orchestrated run, e.g. a Kubeflow pipeline, to the plan it was compiled for.",
)
@click.option(
    "--attrition-ok",
    is_flag=True,
    envvar="MLAUDIT_ATTRITION_OK",
    help="Exit 0 even when planned trials did not succeed (default: exit 4), so CI goes on "
    "to collect, analyze and gate, where the attrition fails the gate with its reasons "
    "(default: $MLAUDIT_ATTRITION_OK).",
)
@json_option
def run(
    edd_path: Path,
    trust_ref: str | None,
    trust_dir: Path | None,
    repo: Path | None,
    out_dir: Path,
    workers: int | None,
    executor: str,
    ray_address: str | None,
    shard: str | None,
    resume: bool,
    tracking_uri: str | None,
    cache_dir: Path | None,
    no_cache: bool,
    allow_dirty: bool,
    expect_digest: str | None,
    attrition_ok: bool,
    as_json: bool,
) -> int:
    """Run the ablation protocol of EDD exactly as signed and write OUT/results.json."""
    # Only what starting DVC's import needs is imported before it starts: the child's
    # import of DVC then overlaps the rest of this process's imports too.
    from audit.provenance.dvc import prepare_dvc_status

    if executor == "ray" and workers is not None:
        raise UsageError("--workers is for the local pool; on Ray, protocol.resources decides")
    if no_cache and cache_dir is not None:
        raise UsageError("--cache-dir and --no-cache contradict each other")
    start = repo.resolve() if repo else edd_path.resolve().parent
    # `dvc status` is asked once the EDD names the data; importing DVC, most of its
    # cost, starts now, on a core this process leaves idle while it imports and reads.
    dvc = prepare_dvc_status(start)
    background: futures.ThreadPoolExecutor | None = None
    try:
        from audit.edd import load_edd
        from audit.edd.pin import check_pinned_digest, parse_expected_digest
        from audit.edd.trust import locate_project
        from audit.protocol.shards import parse_shard
        from audit.provenance.declared import declared_data
        from audit.provenance.git import repo_root

        shard_range = parse_shard(shard) if shard else None
        if expect_digest is not None:
            parse_expected_digest(expect_digest)
        repo_root(start)  # refuses, saying why, outside git: the code must be committed
        # Trust files, dvc.lock, the lock file, the trials' workdir: all the project's.
        root = locate_project(start, trust_ref)
        if trust_dir is not None:
            from audit.edd.trust import UNPROTECTED_WARNING

            echo(UNPROTECTED_WARNING.format(path=trust_dir), err=True)
        # One load: the bytes whose approvals verify are the bytes that run.
        edd = load_edd(edd_path)
        check_pinned_digest(edd, expect_digest)
        data = declared_data(edd.document["data"])
        # The slow checks start now and overlap the approval check and the plan. `dvc
        # status` may still run while the first trials do: the runner makes no trial's
        # result durable or public before it passed, and a failure stops the run uncounted.
        dvc.ask(root, list(data.dvc))
        from audit.protocol.overrides import preload_grammar

        preload_grammar()
        from audit.edd import planned_trial_count, verify_edd
        from audit.edd.semantics import semantic_problems
        from audit.protocol.plan import build_plan
        from audit.protocol.results import approval_rows
        from audit.protocol.runner import RunRequest, run_protocol
        from audit.protocol.trial import probe_in_background
        from audit.provenance.record import collect_provenance

        if executor == "local":
            probe_in_background()
        if tracking_uri:
            from audit.tracking.client import preload_client

            preload_client(tracking_uri)
        cache = None if no_cache else (cache_dir or root / ".mlaudit" / "cache").resolve()
        # Provenance only reads git and files: it runs beside the approval check and the
        # plan (mostly waiting on git), and its errors still come after theirs.
        background = futures.ThreadPoolExecutor(1, thread_name_prefix="mlaudit-provenance")
        gathering = background.submit(
            collect_provenance,
            root,
            data.dvc,
            lfs_paths=data.git_lfs,
            lakefs_uris=data.lakefs,
            allow_dirty=allow_dirty,
            image_digest=os.environ.get("MLAUDIT_IMAGE_DIGEST") or None,
            exclude=[out_dir, *([cache] if cache else [])],
            not_code=[edd_path, edd_path.resolve().parent / "approvals"],
            dvc_pending=True,
        )
        verification = verify_edd(edd, trust_ref=trust_ref, repo=root, trust_dir=trust_dir)
        if not verification.passed:
            raise PolicyError(
                f"the EDD is not approved, refusing to run: {_refusal(verification)}",
                hint=verification.hint(),
            )
        expired = semantic_problems(edd.document, at=datetime.now(timezone.utc))
        if expired:
            raise ValidationFailed(str(edd_path), expired)
        plan = build_plan(edd.document, source=str(edd_path))
        provenance = gathering.result()
        request = RunRequest(
            edd=_edd_record(edd, root),
            plan=plan,
            planned_trial_count=planned_trial_count(edd.document),
            provenance=provenance.to_dict(),
            project_root=root,
            out_dir=out_dir,
            base_env=dict(os.environ),
            workers=workers or os.cpu_count() or 1,
            shard=shard_range,
            resume=resume,
            cache_dir=cache,
            approvals=approval_rows([vars(a) for a in verification.approvals]),
            trust={
                "ref": verification.trust_ref,
                "commit": verification.trust_commit,
                "protected": verification.protected,
            },
            progress=_progress(as_json),
            logger_factory=_logger_factory(tracking_uri, out_dir) if tracking_uri else None,
            tracking_uri=tracking_uri,
            runner_python=sys.executable,
            executor_factory=_ray_factory(ray_address) if executor == "ray" else None,
            data_check=dvc.clean() if data.dvc else None,
        )
        outcome = run_protocol(request)
    finally:
        if background is not None:
            background.shutdown(wait=False)
        dvc.close()
    _refuse_moved_data(request.provenance, root)
    if outcome.logger is not None:
        close = getattr(outcome.logger, "close", None)
        if close is not None:
            close(outcome.results)
    _report(outcome.results, outcome.path, as_json, outcome.preflight)
    return _exit_code(outcome.unsuccessful(), attrition_ok)


def _refuse_moved_data(provenance: Mapping[str, Any], root: Path) -> None:
    """Git LFS / lakeFS data that changed while the trials ran: refused, not sealed."""
    from audit.errors import ProvenanceError
    from audit.provenance.pins import changed_pins

    pins = provenance.get("data_pins")
    if not pins:
        return
    problems = changed_pins(pins, root)
    if problems:
        raise ProvenanceError(
            f"the data changed between the start of the run and its end: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="the trials may have read different data; pin a tag or commit and run again",
        )


def _exit_code(unsuccessful: list[dict[str, Any]], attrition_ok: bool) -> int:
    """4 when a planned trial did not succeed, so a person at a terminal sees it."""
    from audit.errors import ExitCode

    if not unsuccessful:
        return int(ExitCode.OK)
    statuses: dict[str, int] = {}
    for trial in unsuccessful:
        statuses[trial["status"]] = statuses.get(trial["status"], 0) + 1
    # The cause is in a trial that ran; not_run ones only say why they were skipped.
    ran = [t for t in unsuccessful if t["status"] != "not_run"] or unsuccessful
    first = ran[0]
    shown = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    echo(
        f"mlaudit: {len(unsuccessful)} planned trial(s) did not succeed ({shown}); "
        f"{first['trial_id']}: {first['status']}: {first.get('reason') or 'no reason recorded'}",
        err=True,
    )
    if attrition_ok:
        echo("mlaudit: --attrition-ok: exiting 0; the gate judges the attrition", err=True)
        return int(ExitCode.OK)
    return int(ExitCode.TRIALS_FAILED)


def _refusal(verification: Any) -> str:
    """The decision's reasons and, for each approval that did not count, why not."""
    from audit.cli._common import printable

    reasons = list(verification.reasons)
    uncounted = [a for a in verification.approvals if not a.counted]
    reasons += [f"{a.file}: {a.verdict}: {a.reason}" for a in uncounted]
    if not verification.approvals:
        reasons.append("there is no approvals/*.sig next to the EDD")
    return printable("; ".join(reasons))


def _edd_record(edd: Any, root: Path) -> dict[str, Any]:
    path = Path(edd.path).resolve()
    try:
        shown = path.relative_to(root).as_posix()
    except ValueError:
        shown = str(path)
    return {
        "id": edd.id,
        "version": edd.version,
        "digest": edd.digest,
        "path": shown,
        "document": edd.document,
    }


def _progress(as_json: bool) -> Any:
    from audit.protocol.progress import LineProgress, RichProgress

    if not as_json and sys.stderr.isatty():
        return RichProgress(sys.stderr)
    return LineProgress(sys.stderr)


def _ray_factory(address: str | None) -> Any:
    def make(request: Any) -> Any:
        from audit.protocol.ray_executor import RayExecutor

        resources = request.edd["document"]["protocol"].get("resources", {})
        return RayExecutor(address, resources=resources, project_root=request.project_root)

    return make


def _logger_factory(uri: str, out_dir: Path) -> Any:
    def make(header: dict[str, Any]) -> Any:
        from audit.tracking.client import ProtocolLogger

        return ProtocolLogger(uri, header, out_dir / "tracking-spool")

    return make


def _report(results: dict[str, Any], path: Path, as_json: bool, preflight: Any) -> None:
    counts: dict[str, int] = {}
    cached = 0
    for trial in results["trials"]:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
        cached += bool(trial.get("cached_from"))
    check = results.get("reproducibility")
    if as_json:
        emit_json(
            {
                "results": str(path),
                "counts": counts,
                "cached": cached,
                "budget": results["budget"],
                "reproducibility": check,
                "preflight": preflight.to_dict() if preflight else None,
            }
        )
        return
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    echo(f"{len(results['trials'])} trials: {shown} ({cached} from cache)")
    if results["budget"]["exhausted"]:
        echo(f"budget: {results['budget']['reason']}")
    if check:
        verdict = "passed" if check["passed"] else "FAILED"
        echo(f"determinism check {check['arm']}/{check['seed']}: {verdict} ({check['reason']})")
    echo(f"results: {path}")
