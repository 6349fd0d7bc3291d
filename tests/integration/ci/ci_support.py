"""Shared pieces of the CI-file tests: paths, tool lookup, buildah and image builds.

A missing tool FAILS these tests (never skips them): tests/tools/ci-deps.sh,
which `make test` runs, installs every one, so a green run always means the
CI files were really checked. (A module of its own, not conftest: several
conftest.py files share that module name in this test tree.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
NODE_MODULES = Path(os.environ.get("MLAUDIT_NODE_TOOLS", REPO / ".venv" / "node_tools")) / (
    "node_modules"
)
BUILDAH_CACHE = Path(os.environ.get("MLAUDIT_BUILDAH_CACHE", "/var/cache/mlaudit-test"))
INSTALL_HINT = "run `bash tests/tools/ci-deps.sh` (make test does) to install it"

# The heavy steps have limits of their own, far above what they take warm (a cached
# image build takes about a minute, the pipeline a few), generous for a cold cache on a
# slow, loaded machine (the tool image alone took 201 s there), and each says which
# step ran out. The tests that use them get a per-test timeout above their sum
# (conftest.py), so pytest-timeout's 600 s default never cuts a session fixture short.
BASE_IMAGE_SECONDS = float(os.environ.get("MLAUDIT_CI_BASE_IMAGE_TIMEOUT", 1800))
BUILD_SECONDS = float(os.environ.get("MLAUDIT_CI_BUILD_TIMEOUT", 1800))
PIPELINE_SECONDS = float(os.environ.get("MLAUDIT_CI_PIPELINE_TIMEOUT", 2400))
HEAVY_TEST_SECONDS = BASE_IMAGE_SECONDS + 2 * BUILD_SECONDS + PIPELINE_SECONDS + 600


def run_limited(
    argv: list[str], *, seconds: float, what: str, knob: str = "", **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run argv (own session, output captured) and fail clearly if it outlasts `seconds`.

    On time-out the whole session is killed: buildah and gitlab-ci-local leave
    children (chroot builds, job shells) that would otherwise hold the pipes open.
    """
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,  # type: ignore[call-overload]
    )
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        more = f"; allow more with {knob}=SECONDS" if knob else ""
        pytest.fail(
            f"{what} did not finish within {seconds:.0f} s (a cold cache on a slow or loaded "
            f"machine?){more}.\n{out[-2000:]}\n{err[-2000:]}"
        )
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


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

    def run(self, *args: str, cwd: Path = REPO, check: bool = True, seconds: float = 600) -> str:
        proc = run_limited(
            ["buildah", *args],
            seconds=seconds,
            what=f"buildah {' '.join(args[:1])}",
            knob="MLAUDIT_CI_BUILD_TIMEOUT" if args[:1] == ("build",) else "",
            cwd=cwd,
            env=self.env,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"buildah {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc.stdout


@dataclass(frozen=True)
class BuiltImage:
    name: str
    digest: str  # the image ID, as the CI build job exports it without a registry
    seconds: float
    commit: str  # the SOURCE_COMMIT it was built with


def build_image(buildah: Buildah, dockerfile: str, name: str, *build_args: str) -> BuiltImage:
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
        seconds=BUILD_SECONDS,
    )
    seconds = time.monotonic() - started
    print(f"\nbuilt {name} from {dockerfile} in {seconds:.0f} s")
    return BuiltImage(name=name, digest=iid.read_text().strip(), seconds=seconds, commit=commit)
