"""KFP components for the study's steps; imported only once kfp is known to be installed.

No `from __future__ import annotations` here: kfp reads these functions' annotations
as types to build each component's interface, and a string would not do.
The Python components' source is embedded in the rehearsal YAML and run by kfp's
executor on its own, so they import what they use inside their bodies.
"""

from collections.abc import Callable, Sequence
from typing import Any

from kfp import dsl  # type: ignore[import-untyped]

from audit.protocol.kfp_steps import Arg, OutputPath, Step, WorkspacePath


def container_component(step: Step, image: str) -> Any:
    """A container task running `step.program` with the step's argv in the image."""
    if step.publishes:

        def publishing(workspace: str, output: dsl.Output[dsl.Artifact]) -> dsl.ContainerSpec:
            args = render(step.argv, workspace, output.path)
            return dsl.ContainerSpec(image=image, command=[step.program], args=args)

        return dsl.container_component(_named(publishing, step))

    def plain(workspace: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(
            image=image, command=[step.program], args=render(step.argv, workspace, "")
        )

    return dsl.container_component(_named(plain, step))


def _named(func: Callable[..., Any], step: Step) -> Callable[..., Any]:
    # The component's (and so the task's) name comes from the function's name.
    func.__name__ = step.name.replace("-", "_")
    func.__qualname__ = func.__name__
    return func


def render(argv: Sequence[Arg], workspace: Any, output: Any) -> list[Any]:
    """The argv with the workspace and output placeholders KFP resolves in the pod."""
    rendered: list[Any] = []
    for arg in argv:
        if isinstance(arg, WorkspacePath):
            rendered.append(f"{workspace}/{arg.relative}")
        elif isinstance(arg, OutputPath):
            rendered.append(output)
        else:
            rendered.append(arg)
    return rendered


def encode_argv(argv: Sequence[Arg]) -> list[Any]:
    """The argv as JSON for a Python task: workspace paths and the output stay marked."""
    encoded: list[Any] = []
    for arg in argv:
        if isinstance(arg, WorkspacePath):
            encoded.append({"workspace": arg.relative})
        elif isinstance(arg, OutputPath):
            encoded.append({"output": True})
        else:
            encoded.append(arg)
    return encoded


# Not the training image: the rehearsal runs in the Python that runs kfp.local.
_REHEARSAL = {"base_image": "python:3.11-local-rehearsal", "install_kfp_package": False}


@dsl.component(**_REHEARSAL)  # type: ignore[untyped-decorator]
def mlaudit_task(workspace: str, program: str, argv: list) -> None:  # type: ignore[type-arg]
    import subprocess
    import sys

    args = [workspace + "/" + a["workspace"] if isinstance(a, dict) else a for a in argv]
    command = [sys.executable, "-m", "audit"] if program == "mlaudit" else [program]
    completed = subprocess.run([*command, *args], check=False)
    if completed.returncode != 0:
        raise SystemExit(completed.returncode)


@dsl.component(**_REHEARSAL)  # type: ignore[untyped-decorator]
def mlaudit_publishing_task(
    workspace: str,
    program: str,
    argv: list,  # type: ignore[type-arg]
    output: dsl.Output[dsl.Artifact],
) -> None:
    import subprocess
    import sys

    def resolve(a: object) -> str:
        if isinstance(a, dict):
            return str(output.path if a.get("output") else workspace + "/" + a["workspace"])
        return str(a)

    args = [resolve(a) for a in argv]
    command = [sys.executable, "-m", "audit"] if program == "mlaudit" else [program]
    completed = subprocess.run([*command, *args], check=False)
    if completed.returncode != 0:
        raise SystemExit(completed.returncode)


def python_task(step: Step, workspace: str) -> Any:
    component = mlaudit_publishing_task if step.publishes else mlaudit_task
    return component(workspace=workspace, program=step.program, argv=encode_argv(step.argv))
