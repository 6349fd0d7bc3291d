"""Shared pieces of the CI-file tests: paths, tool lookup, buildah and image builds.

A missing tool FAILS these tests (never skips them): tests/tools/ci-deps.sh,
which `make test` runs, installs every one, so a green run always means the
CI files were really checked. (A module of its own, not conftest: several
conftest.py files share that module name in this test tree.)
"""

from __future__ import annotations

import os
import shutil
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
    )
    seconds = time.monotonic() - started
    print(f"\nbuilt {name} from {dockerfile} in {seconds:.0f} s")
    return BuiltImage(name=name, digest=iid.read_text().strip(), seconds=seconds, commit=commit)
