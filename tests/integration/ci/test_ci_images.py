"""Both Dockerfiles build for real with buildah (no Docker engine) and the images work.

The base is the debootstrap'd stand-in for BASE_IMAGE (conftest); the builds run the
Dockerfiles' real `RUN apt-get` and `pip install --require-hashes` steps. The tool
image must run `mlaudit --version` as its non-root user; the training image must
hold the locked training dependencies and mlaudit in separate venvs; the OCI labels
carry the source commit; the image ID that the CI build job exports as
MLAUDIT_IMAGE_DIGEST names the built image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ci_support import BUILD_SECONDS, REPO, Buildah, BuiltImage, run_limited

pytestmark = [pytest.mark.slow, pytest.mark.buildah]

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _in_image(buildah: Buildah, image: str, *argv: str) -> str:
    ctr = buildah.run("from", "--quiet", image).strip()
    try:
        return buildah.run("run", "--isolation", "chroot", ctr, "--", *argv)
    finally:
        buildah.run("rm", ctr, check=False)


def _config(buildah: Buildah, image: str) -> dict[str, object]:
    inspected = json.loads(buildah.run("inspect", "--type", "image", image))
    config = inspected["OCIv1"]["config"]
    assert isinstance(config, dict)
    return config


def test_the_tool_image_runs_mlaudit(buildah: Buildah, tool_image: BuiltImage) -> None:
    found = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert found is not None
    version = found.group(1)
    out = _in_image(buildah, tool_image.name, "mlaudit", "--version")
    assert out.strip() == f"mlaudit, version {version}"
    assert _in_image(buildah, tool_image.name, "id", "-u").strip() == "10001"
    # git is what `edd verify --trust-ref` reads the base branch with.
    assert _in_image(buildah, tool_image.name, "git", "--version").startswith("git version")
    config = _config(buildah, tool_image.name)
    assert config["User"] == "10001:10001"
    assert config["Cmd"][:2] == ["mlaudit", "server"]  # type: ignore[index]


def test_the_images_carry_oci_labels_with_the_source_commit(
    buildah: Buildah, tool_image: BuiltImage, training_image: BuiltImage
) -> None:
    for image in (tool_image, training_image):
        labels = _config(buildah, image.name)["Labels"]
        assert isinstance(labels, dict)
        assert labels["org.opencontainers.image.revision"] == image.commit
        assert labels["org.opencontainers.image.base.name"] == buildah.base_image
        # The repository URL (the CI's project URL; a stand-in under gitlab-ci-local).
        assert re.match(r"https?://", labels["org.opencontainers.image.source"])


def test_the_training_image_keeps_the_model_and_mlaudit_apart(
    buildah: Buildah, training_image: BuiltImage
) -> None:
    probe = (
        "import json, sys, numpy, sklearn; "
        "print(json.dumps([sys.executable, numpy.__version__, sklearn.__version__]))"
    )
    exe, numpy_version, sklearn_version = json.loads(
        _in_image(buildah, training_image.name, "python", "-c", probe)
    )
    assert exe == "/opt/venv/bin/python"
    lock = (REPO / "ci/docker/requirements.lock").read_text()
    assert f"numpy=={numpy_version} " in lock
    assert f"scikit-learn=={sklearn_version} " in lock
    frozen = _in_image(buildah, training_image.name, "/opt/venv/bin/pip", "freeze")
    assert "mlflow" not in frozen, "mlaudit's dependencies stay out of the trial venv"
    assert _in_image(buildah, training_image.name, "mlaudit", "--version").startswith("mlaudit")
    assert _in_image(buildah, training_image.name, "id", "-u").strip() == "10001"
    # Trials in CI run here: they die with the runner through setpriv (util-linux),
    # not through a preexec hook that makes every trial fork the whole runner.
    probe = "from audit.protocol.trial import _die_with_parent_prefix as p; print(p())"
    assert "--pdeathsig" in _in_image(
        buildah, training_image.name, "/opt/mlaudit/bin/python", "-c", probe
    )


def test_the_exported_digest_names_the_built_image(
    buildah: Buildah, tool_image: BuiltImage, training_image: BuiltImage
) -> None:
    for image in (tool_image, training_image):
        # What the CI build job writes to build.env as MLAUDIT_IMAGE_DIGEST.
        assert DIGEST.fullmatch(image.digest), image.digest
        found = buildah.run(
            "inspect", "--type", "image", "--format", "{{.FromImageID}}", image.name
        )
        assert f"sha256:{found.strip().removeprefix('sha256:')}" == image.digest


def test_the_build_refuses_a_dependency_whose_hash_is_not_locked(
    buildah: Buildah, tmp_path: Path
) -> None:
    # --require-hashes is what makes the lock a lock: a tampered hash stops the build.
    context = tmp_path / "ctx"
    (context / "ci/docker").mkdir(parents=True)
    lock = (REPO / "ci/docker/requirements.lock").read_text()
    pin = re.search(r"^joblib==\S+", lock, re.MULTILINE)
    assert pin is not None
    # One small package whose locked hash is not the real one.
    (context / "ci/docker/requirements.lock").write_text(
        f"{pin.group(0)} \\\n    --hash=sha256:{'0' * 64}\n"
    )
    dockerfile = context / "Dockerfile"
    text = (REPO / "ci/docker/Dockerfile").read_text()
    deps_stage = text[text.index("FROM ${BASE_IMAGE} AS deps") : text.rindex("\nFROM ")]
    dockerfile.write_text(f"ARG BASE_IMAGE\n{deps_stage}\n")
    proc = run_limited(
        [
            "buildah",
            "build",
            "--isolation",
            "chroot",
            "--build-arg",
            f"BASE_IMAGE={buildah.base_image}",
            "-f",
            str(dockerfile),
            str(context),
        ],
        seconds=BUILD_SECONDS,
        what="the refused build",
        knob="MLAUDIT_CI_BUILD_TIMEOUT",
        env=buildah.env,
    )
    assert proc.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in proc.stdout + proc.stderr
