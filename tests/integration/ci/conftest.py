"""Session fixtures of the CI-file tests: buildah's store, the images, one GitLab run.

Shared code lives in ci_support (conftest.py is a module name several folders use).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from ci_support import (
    BASE_IMAGE_SECONDS,
    BUILDAH_CACHE,
    HEAVY_TEST_SECONDS,
    HERE,
    Buildah,
    BuiltImage,
    build_image,
    require_node_package,
    require_program,
    run_limited,
)

if TYPE_CHECKING:
    from ci_gitlab_run import PipelineRun


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Image builds and the pipeline run in session fixtures, inside the first test's
    timeout: give those tests a limit above the steps' own limits (ci_support)."""
    for item in items:
        if item.get_closest_marker("buildah") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(HEAVY_TEST_SECONDS))


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
    proc = run_limited(
        ["bash", str(HERE / "base-image.sh")],
        seconds=BASE_IMAGE_SECONDS,
        what="making the base image (debootstrap)",
        knob="MLAUDIT_CI_BASE_IMAGE_TIMEOUT",
        env=env,
    )
    if proc.returncode != 0:
        pytest.fail(f"making the base image failed:\n{proc.stderr[-4000:]}")
    conf = (BUILDAH_CACHE / "storage.conf").read_text()
    driver = conf.split('driver = "', 1)[1].split('"', 1)[0]
    buildah = Buildah(env=env, base_image=proc.stdout.strip().splitlines()[-1], driver=driver)
    _remove_stale_test_images(buildah)
    return buildah


def _remove_stale_test_images(buildah: Buildah) -> None:
    """Untag the images of test runs that died before their teardown.

    The store outlives test runs (its cached dependency layers are what keeps a
    rebuild to a minute), so only images named for a dead session's pid go; the
    layers a later build can reuse stay.
    """
    refs = buildah.run("images", "--format", "{{.Name}}:{{.Tag}}", check=False).split()
    for ref in refs:
        m = re.fullmatch(r"localhost/mlaudit(?:-training)?:test-(\d+)", ref)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            buildah.run("rmi", ref, check=False)
        except PermissionError:
            pass  # alive, another user's


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
