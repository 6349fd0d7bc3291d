"""Session fixtures of the CI-file tests: buildah's store, the images, one GitLab run.

Shared code lives in ci_support (conftest.py is a module name several folders use).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from ci_support import (
    BUILDAH_CACHE,
    HERE,
    Buildah,
    BuiltImage,
    build_image,
    require_node_package,
    require_program,
)

if TYPE_CHECKING:
    from ci_gitlab_run import PipelineRun


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    require_program("buildah")
    require_program("debootstrap")
    if os.geteuid() != 0:
        pytest.fail("the image builds need root (buildah's rootful vfs store, debootstrap)")
    env = dict(os.environ)
    env["MLAUDIT_BUILDAH_CACHE"] = str(BUILDAH_CACHE)
    env["CONTAINERS_STORAGE_CONF"] = str(BUILDAH_CACHE / "storage.conf")
    env["BUILDAH_ISOLATION"] = "chroot"
    env.pop("STORAGE_DRIVER", None)  # the store's own driver, from storage.conf
    proc = subprocess.run(
        ["bash", str(HERE / "base-image.sh")], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"making the base image failed:\n{proc.stderr[-4000:]}")
    conf = (BUILDAH_CACHE / "storage.conf").read_text()
    driver = conf.split('driver = "', 1)[1].split('"', 1)[0]
    return Buildah(env=env, base_image=proc.stdout.strip().splitlines()[-1], driver=driver)


@pytest.fixture(scope="session")
def tool_image(buildah: Buildah) -> Iterator[BuiltImage]:
    # Per-session tags: two test runs on one machine share the store, not the names.
    name = f"localhost/mlaudit:test-{os.getpid()}"
    image = build_image(buildah, "ci/docker/mlaudit.Dockerfile", name)
    yield image
    buildah.run("rmi", image.name, check=False)


@pytest.fixture(scope="session")
def gitlab_pipeline(
    buildah: Buildah, tool_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipelineRun]:
    """One real run of the GitLab template (ci_gitlab_run.PipelineRun) per session."""
    require_node_package("gitlab-ci-local")
    require_program("rsync")
    from ci_gitlab_run import run_pipeline

    run = run_pipeline(buildah, tool_image, tmp_path_factory.mktemp("gitlab"))
    yield run
    buildah.run("rmi", run.training_image, check=False)


@pytest.fixture(scope="session")
def training_image(gitlab_pipeline: PipelineRun) -> BuiltImage:
    """The training image exactly as the pipeline's build job made and exported it."""
    dotenv = gitlab_pipeline.out / "build.env"
    if not dotenv.exists():
        pytest.fail(f"the build job exported no digest:\n{gitlab_pipeline.log[-4000:]}")
    digest = dotenv.read_text().strip().split("=", 1)[1]
    # The build job labels it with the commit under test: the workspace's head.
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=gitlab_pipeline.workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return BuiltImage(name=gitlab_pipeline.training_image, digest=digest, seconds=0.0, commit=head)
