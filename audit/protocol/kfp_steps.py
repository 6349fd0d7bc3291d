"""The Kubeflow pipeline of a signed study, as data: which command each task runs, in order.

No kfp here (audit.protocol.kfp_export compiles these steps). The tasks are the
CI matrix's jobs on a cluster: fetch the source at the pinned commit, run each
shard, then collect -> log -> analyze -> checkpoint -> gate -> bundle, all in
one shared workspace. Every value in an argv is fixed at export, so the compiled
pipeline can only run the plan whose digest it carries; it must never take a
value from a pipeline parameter that a submitter could change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Union

from audit.errors import UsageError
from audit.protocol.shards import format_shard

# name[:tag]@sha256:<64 hex>; the registry host may carry a port.
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)(?::[\w][\w.-]{0,127})?@(?P<digest>sha256:[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class ImageRef:
    """A container image named by its manifest digest: the bytes cannot change under the name."""

    name: str
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


def parse_image_ref(text: str) -> ImageRef:
    """`--image`: refuse a tag alone, which can be moved to other bytes after export."""
    match = _IMAGE.match(text.strip())
    if match:
        return ImageRef(match.group("name"), match.group("digest"))
    if "@" in text:
        raise UsageError(
            f"--image {text!r}: the digest must be sha256:<64 lowercase hex digits>, "
            "e.g. registry.example.com/training@sha256:0123...cdef"
        )
    raise UsageError(
        f"--image {text!r} names the image by tag, which can be moved to other bytes after "
        "the pipeline is compiled; name it by digest (NAME@sha256:...), e.g. the digest "
        "`buildah push --digestfile` or `docker buildx build --metadata-file` records"
    )


@dataclass(frozen=True)
class WorkspacePath:
    """A path inside the pipeline's shared workspace, resolved where the task runs."""

    relative: str


@dataclass(frozen=True)
class OutputPath:
    """Where a task writes the artifact it publishes (kept after the workspace is gone)."""


Arg = Union[str, WorkspacePath, OutputPath]  # noqa: UP007 (a runtime alias on 3.10)

SOURCE = "src"
OUT = "out"
FINAL = f"{OUT}/final"


@dataclass(frozen=True)
class KfpStudy:
    """Everything the pipeline is compiled from; same study, same pipeline bytes."""

    edd_id: str
    edd_version: int
    edd_digest: str
    edd_path: str  # relative to the repository's top level, POSIX
    git_url: str
    commit: str
    trust_ref: str
    tracking_uri: str
    shards: int
    image: ImageRef
    # The project's folder in the repository ("" for its top level) and the command that
    # puts its data in place there (e.g. `dvc pull`), run once after the checkout.
    project_dir: str = ""
    setup: tuple[str, ...] = ()
    retries: int = 2
    cpu_limit: str | None = None
    memory_limit: str | None = None


@dataclass(frozen=True)
class Step:
    name: str  # the task's name in the pipeline
    display: str
    program: str  # "git" or "mlaudit", the executable the task runs
    argv: tuple[Arg, ...]
    after: tuple[str, ...] = ()
    retries: int = 0
    # Runs when an upstream task failed: the bundle is evidence of a failed gate too.
    always: bool = False
    shard: bool = False

    @property
    def publishes(self) -> bool:
        return any(isinstance(arg, OutputPath) for arg in self.argv)


def _final(name: str) -> WorkspacePath:
    return WorkspacePath(f"{FINAL}/{name}")


def pipeline_steps(study: KfpStudy) -> list[Step]:
    """The tasks in dependency order: source, shards, then the CI collect-to-bundle chain."""
    shards = [_shard_step(study, index) for index in range(1, study.shards + 1)]
    return [*_source_steps(study), *shards, *_closing_steps(study, [s.name for s in shards])]


def _edd(study: KfpStudy) -> WorkspacePath:
    return WorkspacePath(f"{SOURCE}/{study.edd_path}")


def _source_steps(study: KfpStudy) -> list[Step]:
    source = WorkspacePath(SOURCE)
    clone = Step(
        "fetch-source",
        "fetch source",
        "git",
        ("clone", "--quiet", "--no-checkout", "--", study.git_url, source),
    )
    checkout = Step(
        "checkout-commit",
        f"checkout {study.commit[:12]}",
        "git",
        (
            "-C",
            source,
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            study.commit,
        ),
        after=(clone.name,),
    )
    if not study.setup:
        return [clone, checkout]
    project = WorkspacePath(f"{SOURCE}/{study.project_dir}".rstrip("/"))
    # A fixed script; the folder and the command are its arguments, never its text.
    setup = Step(
        "setup-data",
        "setup: " + " ".join(study.setup)[:60],
        "sh",
        ("-ec", 'cd "$0" && exec "$@"', project, *study.setup),
        after=(checkout.name,),
    )
    return [clone, checkout, setup]


def _shard_step(study: KfpStudy, index: int) -> Step:
    shard = format_shard(index, study.shards)
    argv: tuple[Arg, ...] = (
        "ablate",
        "run",
        _edd(study),
        "--trust-ref",
        study.trust_ref,
        "--out",
        WorkspacePath(f"{OUT}/shard-{index}"),
        "--shard",
        shard,
        "--expect-digest",
        study.edd_digest,
        "--tracking-uri",
        study.tracking_uri,
        # A retried pod finishes the shard's journal on the shared workspace instead
        # of starting over: finished trials are never run (or logged) twice.
        "--resume",
        # Shards run at once on one workspace; a cache there would be empty anyway.
        "--no-cache",
        # A failed trial is evidence: collect and the gate's attrition rule judge it.
        "--attrition-ok",
    )
    return Step(
        f"shard-{index}",
        f"shard {shard}",
        "mlaudit",
        argv,
        after=("setup-data" if study.setup else "checkout-commit",),
        retries=study.retries,
        shard=True,
    )


def _closing_steps(study: KfpStudy, shard_names: list[str]) -> list[Step]:
    results, analysis = _final("results.json"), _final("analysis.json")
    checkpoint = _final("checkpoint.json")
    tracking = ("--tracking-uri", study.tracking_uri)
    shard_dirs = tuple(WorkspacePath(f"{OUT}/{name}") for name in shard_names)
    steps = [
        Step(
            "collect",
            "collect",
            "mlaudit",
            ("ablate", "collect", *shard_dirs, "-o", results),
            after=tuple(shard_names),
        ),
        Step(
            "log",
            "log",
            "mlaudit",
            ("track", "log", results, *tracking, "--spool", WorkspacePath(f"{OUT}/spool")),
        ),
        Step("analyze", "analyze", "mlaudit", ("ablate", "analyze", results, "-o", analysis)),
        Step(
            "checkpoint",
            "checkpoint",
            "mlaudit",
            ("track", "checkpoint", *tracking, "--experiment", study.edd_id, "-o", checkpoint),
        ),
        Step(
            "gate",
            "gate",
            "mlaudit",
            (
                "gate",
                "--analysis",
                analysis,
                "--results",
                results,
                "--edd",
                _edd(study),
                "--trust-ref",
                study.trust_ref,
                *tracking,
                "--experiment",
                study.edd_id,
                "--checkpoint",
                checkpoint,
                "--expect-digest",
                study.edd_digest,
                "-o",
                _final("gate.json"),
                "--junit",
                _final("gate.xml"),
            ),
        ),
        Step(
            "bundle",
            "bundle",
            "mlaudit",
            (
                "bundle",
                "create",
                "-o",
                OutputPath(),
                "--edd",
                _edd(study),
                "--dir",
                WorkspacePath(FINAL),
                "--trust-ref",
                study.trust_ref,
                *tracking,
                "--experiment",
                study.edd_id,
            ),
            always=True,
        ),
    ]
    # A chain: each closing step starts when the one before it has finished.
    chained = [steps[0]]
    for step in steps[1:]:
        chained.append(replace(step, after=(chained[-1].name,)))
    return chained


def pipeline_name(study: KfpStudy) -> str:
    """A KFP pipeline name (lowercase letters, digits, dashes) from the EDD id."""
    slug = re.sub(r"[^a-z0-9]+", "-", study.edd_id.lower()).strip("-") or "study"
    return f"mlaudit-{slug}"[:100].rstrip("-")


def pipeline_description(study: KfpStudy) -> str:
    return (
        f"mlaudit study {study.edd_id} v{study.edd_version}, "
        f"EDD sha256:{study.edd_digest}, commit {study.commit}, "
        f"{study.shards} shard(s) in {study.image}"
    )
