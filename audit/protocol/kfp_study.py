"""What a Kubeflow export is compiled from: the approved EDD at a pinned commit.

Refuses, before anything is compiled, an EDD that is not approved, an EDD whose
bytes at the pinned commit are not the ones verified here, and an image named by
tag. Reads git only; no kfp.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from audit.errors import Location, PolicyError, ProvenanceError, UsageError
from audit.protocol.kfp_steps import KfpStudy, parse_image_ref

DEFAULT_SHARDS = 4


@dataclass(frozen=True)
class ExportRequest:
    edd_path: Path
    image: str
    tracking_uri: str
    trust_ref: str
    shards: int | None = None
    git_url: str | None = None
    commit: str = "HEAD"
    setup: str | None = None
    retries: int = 2
    cpu_limit: str | None = None
    memory_limit: str | None = None


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except OSError as error:
        raise ProvenanceError(f"cannot run git: {error.strerror}") from None


def _resolve_commit(repo: Path, revision: str) -> str:
    proc = _git(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )
    if proc.returncode != 0:
        raise UsageError(f"--commit {revision!r} is not a commit in {repo}")
    return proc.stdout.decode().strip()


def _origin_url(repo: Path) -> str:
    proc = _git(repo, "remote", "get-url", "origin")
    if proc.returncode != 0:
        raise UsageError(
            "the repository has no `origin` remote; give --git-url, the URL the cluster "
            "clones the project from"
        )
    return proc.stdout.decode().strip()


def _committed_bytes(repo: Path, commit: str, relative: str) -> bytes | None:
    proc = _git(repo, "show", f"{commit}:{relative}")
    return proc.stdout if proc.returncode == 0 else None


def build_kfp_study(request: ExportRequest) -> KfpStudy:
    """The pinned study, after checking that what the cluster will run is what was approved."""
    from audit.edd import load_edd, verify_edd
    from audit.edd.trust import locate_project
    from audit.protocol.plan import build_plan
    from audit.protocol.shards import shard_matrix
    from audit.provenance.git import repo_root

    image = parse_image_ref(request.image)
    top = repo_root(request.edd_path.resolve())
    edd = load_edd(request.edd_path)
    project = locate_project(request.edd_path.resolve().parent, request.trust_ref)
    verification = verify_edd(edd, trust_ref=request.trust_ref, repo=project)
    if not verification.passed:
        raise PolicyError(
            "the EDD is not approved, refusing to export it: " + "; ".join(verification.reasons),
            location=Location(str(request.edd_path)),
        )
    commit = _resolve_commit(top, request.commit)
    relative = request.edd_path.resolve().relative_to(top).as_posix()
    if _committed_bytes(top, commit, relative) != edd.raw:
        raise PolicyError(
            f"the EDD at commit {commit[:12]} is not the file verified here; commit it "
            "(and push it) first: the cluster runs the commit, not this working tree",
            location=Location(str(request.edd_path)),
        )
    plan = build_plan(edd.document, source=str(request.edd_path))
    shards = request.shards or min(DEFAULT_SHARDS, plan.trial_count)
    shard_matrix(plan, shards)  # refuses more shards than trials
    setup = tuple(shlex.split(request.setup)) if request.setup else ()
    return KfpStudy(
        edd_id=edd.id,
        edd_version=edd.version,
        edd_digest=edd.digest,
        edd_path=relative,
        git_url=request.git_url or _origin_url(top),
        commit=commit,
        trust_ref=request.trust_ref,
        tracking_uri=request.tracking_uri,
        shards=shards,
        image=image,
        project_dir="" if project == top else project.relative_to(top).as_posix(),
        setup=setup,
        retries=request.retries,
        cpu_limit=request.cpu_limit,
        memory_limit=request.memory_limit,
    )


def commit_on_a_remote(edd_path: Path, commit: str) -> bool:
    """Whether a remote-tracking branch holds the commit (else a fresh clone lacks it)."""
    from audit.provenance.git import repo_root

    proc = _git(repo_root(edd_path.resolve()), "branch", "-r", "--contains", commit)
    return proc.returncode == 0 and bool(proc.stdout.strip())
