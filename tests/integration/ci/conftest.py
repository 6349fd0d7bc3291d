"""Session fixtures of the CI-file tests: buildah's store, the images, one GitLab run.

Shared code lives in ci_support (conftest.py is a module name several folders use).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    timeout: give those tests a limit above the steps' own limits (ci_support). They
    run last, so the images are made beside every other test (_Prefetch)."""
    for item in items:
        if item.get_closest_marker("buildah") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(HEAVY_TEST_SECONDS))
    items.sort(key=lambda item: item.get_closest_marker("buildah") is not None)  # stable


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    return _PREFETCH.wait("buildah") if _PREFETCH.started else _make_buildah(dict(os.environ))


def _make_buildah(environ: dict[str, str]) -> Buildah:
    require_program("buildah")
    require_program("debootstrap")
    if os.geteuid() != 0:
        pytest.fail("the image builds need root (buildah's rootful vfs store, debootstrap)")
    env = dict(environ)
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
    image = _PREFETCH.wait("tool_image") if _PREFETCH.started else _build_tool_image(buildah)
    yield image
    buildah.run("rmi", image.name, check=False)


def _build_tool_image(buildah: Buildah) -> BuiltImage:
    # Per-session tags: two test runs on one machine share the store, not the names.
    name = f"localhost/mlaudit:test-{os.getpid()}"
    return build_image(buildah, "ci/docker/mlaudit.Dockerfile", name)


@pytest.fixture(scope="session")
def gitlab_pipeline(
    buildah: Buildah, tool_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipelineRun]:
    """One real run of the GitLab template (ci_gitlab_run.PipelineRun) per session."""
    if _PREFETCH.started:
        run = _PREFETCH.wait("gitlab_pipeline")
    else:
        root = tmp_path_factory.mktemp("gitlab")
        run = _run_pipeline(buildah, tool_image, root, dict(os.environ))
    yield run
    buildah.run("rmi", run.training_image, check=False)


def _run_pipeline(
    buildah: Buildah, tool_image: BuiltImage, root: Path, environ: dict[str, str]
) -> PipelineRun:
    require_node_package("gitlab-ci-local")
    require_program("rsync")
    from ci_gitlab_run import run_pipeline

    return run_pipeline(buildah, tool_image, root, environ)


class _Prefetch:
    """The base image, the tool image and the GitLab run, made beside the other tests.

    They take minutes on a machine with empty caches (downloads, unpacking, image
    commits), most of it waiting on the network and the disk. When the session will
    use them, a thread starts them as collection ends, in the fixtures' own order; each
    fixture then waits for its stage and gets its value, or its error, skip or failure,
    raised in the test as if the fixture had made it. MLAUDIT_CI_PREFETCH=0 makes them
    in the fixtures instead.
    """

    STAGES = ("buildah", "tool_image", "gitlab_pipeline")

    def __init__(self) -> None:
        self.started = False
        self._thread: threading.Thread | None = None
        self._done = {stage: threading.Event() for stage in self.STAGES}
        self._outcome: dict[str, tuple[bool, Any]] = {}

    def start(self, root: Path) -> None:
        self.started = True
        # The environment as the session begins: tests change os.environ for a while.
        environ = dict(os.environ)
        self._thread = threading.Thread(
            target=self._work, args=(root, environ), name="ci-prefetch", daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _work(self, root: Path, environ: dict[str, str]) -> None:
        steps: dict[str, Callable[[], Any]] = {
            "buildah": lambda: _make_buildah(environ),
            "tool_image": lambda: _build_tool_image(self._value("buildah")),
            "gitlab_pipeline": lambda: _run_pipeline(
                self._value("buildah"), self._value("tool_image"), root, environ
            ),
        }
        for stage in self.STAGES:
            try:
                self._outcome[stage] = (True, steps[stage]())
            except BaseException as error:  # pytest's skip and fail are BaseExceptions
                self._outcome[stage] = (False, error)
            finally:
                self._done[stage].set()
            if not self._outcome[stage][0]:
                for later in self.STAGES[self.STAGES.index(stage) + 1 :]:
                    self._outcome[later] = self._outcome[stage]  # what it needed failed
                    self._done[later].set()
                return

    def _value(self, stage: str) -> Any:
        return self._outcome[stage][1]

    def wait(self, stage: str) -> Any:
        self._done[stage].wait()
        ok, value = self._outcome[stage]
        if not ok:
            raise value
        return value


_PREFETCH = _Prefetch()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Nothing left building after the session (one stopped early by -x, say): the
    # stages are bounded by their own time limits (ci_support).
    _PREFETCH.join()


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("MLAUDIT_CI_PREFETCH", "1") == "0" or session.config.option.collectonly:
        return
    if any("gitlab_pipeline" in getattr(item, "fixturenames", ()) for item in session.items):
        factory = session.config._tmp_path_factory
        _PREFETCH.start(factory.mktemp("gitlab"))


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
