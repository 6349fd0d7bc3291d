"""Compile a study's steps (audit.protocol.kfp_steps) into Kubeflow Pipelines v2 IR YAML.

Two renderings of the same steps, the same argv in the same DAG:
- the cluster pipeline: one container task per step in the training image by digest,
  the `mlaudit`/`git` executables of that image, no Python of ours in between;
- the local rehearsal: each step as a lightweight Python component that runs the same
  argv in a subprocess, because kfp.local's SubprocessRunner runs nothing else (a
  container task needs its DockerRunner, that is a Docker engine).
kfp is imported only here, and only when a command asks for it.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import UsageError
from audit.protocol.kfp_steps import (
    KfpStudy,
    Step,
    pipeline_description,
    pipeline_name,
    pipeline_steps,
)

INSTALL_HINT = "pip install 'mlaudit[kfp]'"
# KFP mounts the workspace as a volume of this size for the run (a PVC on a cluster).
WORKSPACE_SIZE = "10Gi"


def require_kfp() -> None:
    """Say how to install the SDK instead of failing on an import deep inside."""
    try:
        import kfp  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise UsageError(f"the Kubeflow Pipelines SDK is not installed; {INSTALL_HINT}") from None


def compile_pipeline(study: KfpStudy, output: Path) -> None:
    """Write the cluster pipeline's IR YAML; the same study always gives the same bytes."""
    _compile(study, _container_task_factory(study), output, publish_image_digest=True)


def compile_rehearsal(study: KfpStudy, output: Path) -> None:
    """Write the local rehearsal's IR YAML (kfp.local SubprocessRunner can run it)."""
    _compile(study, _python_task_factory(), output, publish_image_digest=False)


TaskFactory = Callable[[Step, Any], Any]


def _compile(
    study: KfpStudy, make_task: TaskFactory, output: Path, *, publish_image_digest: bool
) -> None:
    require_kfp()
    from kfp import compiler, dsl

    steps = pipeline_steps(study)

    def study_pipeline() -> Any:
        tasks: dict[str, Any] = {}
        for step in steps:
            task = make_task(step, dsl.WORKSPACE_PATH_PLACEHOLDER)
            _configure(task, step, study, publish_image_digest=publish_image_digest)
            if step.after:
                task.after(*(tasks[name] for name in step.after))
            if step.always:
                task.ignore_upstream_failure()
            tasks[step.name] = task
        published = [tasks[s.name] for s in steps if s.publishes]
        return published[-1].outputs["output"]

    pipeline = dsl.pipeline(
        name=pipeline_name(study),
        description=pipeline_description(study),
        pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size=WORKSPACE_SIZE)),
    )(_returning_artifact(study_pipeline, dsl))
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))


def _returning_artifact(func: Callable[[], Any], dsl: Any) -> Callable[[], Any]:
    """kfp reads the pipeline's output type from the return annotation."""
    func.__annotations__ = {"return": dsl.Artifact}
    return func


def _configure(task: Any, step: Step, study: KfpStudy, *, publish_image_digest: bool) -> None:
    task.set_display_name(step.display)
    # Every task has side effects on the workspace and the tracking server; a cached
    # shard or gate would show a result this run never produced.
    task.set_caching_options(False)
    if step.retries:
        task.set_retry(num_retries=step.retries)
    if publish_image_digest:
        # What `ablate run` records as the trials' environment: the digest the pod ran.
        task.set_env_variable("MLAUDIT_IMAGE_DIGEST", study.image.digest)
        if step.shard and study.cpu_limit:
            task.set_cpu_limit(study.cpu_limit)
        if step.shard and study.memory_limit:
            task.set_memory_limit(study.memory_limit)


def _container_task_factory(study: KfpStudy) -> TaskFactory:
    from audit.protocol.kfp_components import container_component

    image = str(study.image)

    def make(step: Step, workspace: str) -> Any:
        return container_component(step, image)(workspace=workspace)

    return make


def _python_task_factory() -> TaskFactory:
    from audit.protocol.kfp_components import python_task

    return python_task


@dataclass(frozen=True)
class Rehearsal:
    """What a local run left: whether every task succeeded, and the published bundle."""

    succeeded: bool
    bundle: Path | None


def rehearse(study: KfpStudy, workdir: Path) -> Rehearsal:
    """Compile the rehearsal and run it with kfp.local's SubprocessRunner in this Python."""
    require_kfp()
    from kfp import components, local

    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "pipeline-local.yaml"
    compile_rehearsal(study, spec)
    outputs = workdir / "outputs"
    # kfp.local deletes the workspace when the run ends, as a cluster deletes its volume.
    workspace = Path(tempfile.mkdtemp(prefix="workspace-", dir=workdir))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(outputs),
        workspace_root=str(workspace),
        raise_on_error=False,
    )
    with warnings.catch_warnings():
        # Display names are the cluster's; docs/scale.md says what kfp.local ignores.
        warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
        task = components.load_component_from_file(str(spec))()
    # A failed run returns no outputs, but the bundle task runs after a failed gate too.
    published = task.outputs.get("Output")
    if published is not None:
        return Rehearsal(True, Path(published.path))
    bundles = sorted(outputs.glob("*/mlaudit-publishing-task/output"))
    return Rehearsal(False, bundles[-1] if bundles else None)
