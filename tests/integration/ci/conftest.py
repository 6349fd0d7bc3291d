"""Fixtures for the CI-file tests: the linters, buildah's store and the base image.

A missing tool FAILS these tests (never skips them): tests/tools/ci-deps.sh,
which `make test` runs, installs every one, so a green run always means the
CI files were really checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ci_gitlab_run import PipelineRun

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
NODE_MODULES = Path(os.environ.get("MLAUDIT_NODE_TOOLS", REPO / ".venv" / "node_tools")) / (
    "node_modules"
)
BUILDAH_CACHE = Path(os.environ.get("MLAUDIT_BUILDAH_CACHE", "/var/cache/mlaudit-test"))
INSTALL_HINT = "run `bash tests/tools/ci-deps.sh` (make test does) to install it"


def require_program(name: str) -> str:
    """Path of NAME from the venv or PATH; fail the test when it is missing."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


def require_node_package(name: str) -> Path:
    path = NODE_MODULES / name
    if not (path / "package.json").exists():
        pytest.fail(f"npm package {name} is missing under {NODE_MODULES}: {INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class Buildah:
    """buildah against the tests' own vfs store, with the debootstrap'd base in it."""

    env: dict[str, str]
    base_image: str
    driver: str  # overlay where root may mount it, else vfs (base-image.sh decides)

    def run(self, *args: str, cwd: Path = REPO, check: bool = True) -> str:
        proc = subprocess.run(
            ["buildah", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"buildah {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc.stdout


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


@dataclass(frozen=True)
class BuiltImage:
    name: str
    digest: str  # the image ID, as the CI build job exports it without a registry
    seconds: float


def _build(buildah: Buildah, dockerfile: str, name: str, *build_args: str) -> BuiltImage:
    import time

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    iid = BUILDAH_CACHE / f"{name.rsplit('/', 1)[-1].replace(':', '-')}.iid"
    args = [f"BASE_IMAGE={buildah.base_image}", f"SOURCE_COMMIT={commit}", *build_args]
    started = time.monotonic()
    # --layers: the dependency layers are reused while the lock files are unchanged,
    # so only a run after a lock change downloads and installs them again.
    buildah.run(
        "build",
        "--layers",
        "--isolation",
        "chroot",
        *[x for a in args for x in ("--build-arg", a)],
        "--iidfile",
        str(iid),
        "-f",
        dockerfile,
        "-t",
        name,
        ".",
    )
    seconds = time.monotonic() - started
    print(f"\nbuilt {name} from {dockerfile} in {seconds:.0f} s")
    return BuiltImage(name=name, digest=iid.read_text().strip(), seconds=seconds)


@pytest.fixture(scope="session")
def tool_image(buildah: Buildah) -> Iterator[BuiltImage]:
    # Per-session tags: two test runs on one machine share the store, not the names.
    name = f"localhost/mlaudit:test-{os.getpid()}"
    image = _build(buildah, "ci/docker/mlaudit.Dockerfile", name)
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
    return BuiltImage(name=gitlab_pipeline.training_image, digest=digest, seconds=0.0)
