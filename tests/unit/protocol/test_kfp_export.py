"""The Kubeflow export: the compiled IR YAML, read back with the kfp SDK itself."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit.errors import UsageError
from audit.protocol.kfp_export import compile_pipeline, compile_rehearsal
from audit.protocol.kfp_steps import KfpStudy, parse_image_ref

kfp_components = pytest.importorskip("kfp.components")

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com:5000/team/training@{DIGEST}"
EDD_DIGEST = "5e" * 32
WORKSPACE = "{{$.inputs.parameters['workspace']}}/"
OUTPUT = "{{$.outputs.artifacts['output'].path}}"


def _study(**changes: object) -> KfpStudy:
    fields: dict[str, object] = {
        "edd_id": "fraud-features",
        "edd_version": 3,
        "edd_digest": EDD_DIGEST,
        "edd_path": "examples/fraud/edd.yaml",
        "git_url": "https://git.example.com/team/fraud.git",
        "commit": "c0ffee" * 6 + "c0ff",
        "trust_ref": "origin/main",
        "tracking_uri": "https://mlaudit.example.com",
        "shards": 3,
        "image": parse_image_ref(IMAGE),
        "project_dir": "examples/fraud",
        "setup": ("dvc", "pull"),
    }
    fields.update(changes)
    return KfpStudy(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    compile_pipeline(_study(), path)
    return path


@pytest.fixture(scope="module")
def spec(compiled: Path):
    """The PipelineSpec proto the kfp SDK loads from the file (it validates it on load)."""
    return kfp_components.load_component_from_file(str(compiled)).pipeline_spec


def _executors(spec) -> dict[str, dict]:
    from google.protobuf import json_format

    deployment = json_format.MessageToDict(spec.deployment_spec)
    return {
        name.removeprefix("exec-"): executor["container"]
        for name, executor in deployment["executors"].items()
    }


def test_the_sdk_loads_the_pipeline_with_every_task_in_order(spec):
    tasks = spec.root.dag.tasks
    shards = ["shard-1", "shard-2", "shard-3"]
    assert set(tasks) == {
        "fetch-source",
        "checkout-commit",
        "setup-data",
        *shards,
        "collect",
        "log",
        "analyze",
        "checkpoint",
        "gate",
        "bundle",
    }
    chain = ["collect", "log", "analyze", "checkpoint", "gate", "bundle"]
    assert sorted(tasks["collect"].dependent_tasks) == shards
    for before, after in itertools.pairwise(chain):
        assert list(tasks[after].dependent_tasks) == [before]
    for shard in shards:
        assert list(tasks[shard].dependent_tasks) == ["setup-data"]
    assert spec.pipeline_info.name == "mlaudit-fraud-features"


def test_every_task_runs_in_the_training_image_by_digest(spec):
    for name, container in _executors(spec).items():
        assert container["image"] == IMAGE, name
        assert {"name": "MLAUDIT_IMAGE_DIGEST", "value": DIGEST} in container["env"]


def test_the_pipeline_carries_the_edd_digest_and_shards_and_gate_pin_it(spec):
    assert f"sha256:{EDD_DIGEST}" in spec.pipeline_info.description
    pinned = [
        name
        for name, container in _executors(spec).items()
        if _value_of(container["args"], "--expect-digest") == EDD_DIGEST
    ]
    assert sorted(pinned) == ["gate", "shard-1", "shard-2", "shard-3"]


def _value_of(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_shard_tasks_run_their_shard_of_the_signed_edd_and_log_to_the_server(spec):
    shard = _executors(spec)["shard-2"]
    assert shard["command"] == ["mlaudit"]
    args = shard["args"]
    assert args[:3] == ["ablate", "run", WORKSPACE + "src/examples/fraud/edd.yaml"]
    assert args[args.index("--shard") + 1] == "2/3"
    assert args[args.index("--tracking-uri") + 1] == "https://mlaudit.example.com"
    assert "--resume" in args
    assert "--attrition-ok" in args


def test_no_task_is_cached_shards_are_retried_and_the_bundle_always_runs(spec):
    from google.protobuf import json_format

    tasks = json_format.MessageToDict(spec.root.dag)["tasks"]
    for name, task in tasks.items():
        assert not task["cachingOptions"].get("enableCache"), name
        retries = task.get("retryPolicy", {}).get("maxRetryCount", 0)
        assert retries == (2 if name.startswith("shard-") else 0), name
    assert tasks["bundle"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "triggerPolicy" not in tasks["gate"]


def test_the_bundle_is_the_published_output(spec):
    bundle = _executors(spec)["bundle"]
    assert bundle["args"][:4] == ["bundle", "create", "-o", OUTPUT]
    assert spec.root.output_definitions.artifacts["Output"].artifact_type.schema_title == (
        "system.Artifact"
    )


def test_the_setup_runs_in_the_project_folder_without_its_text_in_a_script(spec):
    setup = _executors(spec)["setup-data"]
    assert setup["command"] == ["sh"]
    assert setup["args"] == [
        "-ec",
        'cd "$0" && exec "$@"',
        WORKSPACE + "src/examples/fraud",
        "dvc",
        "pull",
    ]


def test_same_study_same_bytes_and_another_edd_other_bytes(compiled: Path, tmp_path: Path):
    again, other = tmp_path / "again.yaml", tmp_path / "other.yaml"
    compile_pipeline(_study(), again)
    compile_pipeline(_study(edd_digest="77" * 32), other)
    assert again.read_bytes() == compiled.read_bytes()
    assert other.read_bytes() != compiled.read_bytes()


def _argv_of(value: str | dict) -> str:
    if isinstance(value, dict):
        return OUTPUT if value.get("output") else WORKSPACE + value["workspace"]
    return value


def test_the_local_rehearsal_runs_the_same_argv_as_the_cluster(spec, tmp_path: Path):
    from google.protobuf import json_format

    path = tmp_path / "rehearsal.yaml"
    compile_rehearsal(_study(), path)
    rehearsal = kfp_components.load_component_from_file(str(path)).pipeline_spec
    tasks = json_format.MessageToDict(rehearsal.root.dag)["tasks"]
    local = sorted(
        json.dumps(
            [
                task["inputs"]["parameters"]["program"]["runtimeValue"]["constant"],
                *map(_argv_of, task["inputs"]["parameters"]["argv"]["runtimeValue"]["constant"]),
            ]
        )
        for task in tasks.values()
    )
    cluster = sorted(json.dumps([*c["command"], *c["args"]]) for c in _executors(spec).values())
    assert local == cluster
    # ...and not in the training image, which it does not claim to run in.
    images = {c["image"] for c in _executors(rehearsal).values()}
    assert IMAGE not in images


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registry.example.com/training:1.0", "by tag"),
        ("registry.example.com/training", "by tag"),
        ("registry.example.com/training@sha256:abc", "64 lowercase hex"),
        ("registry.example.com/training@md5:" + "a" * 64, "64 lowercase hex"),
    ],
)
def test_an_image_not_named_by_digest_is_refused(text: str, message: str):
    with pytest.raises(UsageError, match=message):
        parse_image_ref(text)


def test_a_tagged_image_with_its_digest_is_named_by_the_digest():
    ref = parse_image_ref(f"registry.example.com/training:1.0@{DIGEST}")
    assert (ref.name, ref.digest) == ("registry.example.com/training", DIGEST)


def test_export_without_a_target_or_with_a_tag_is_a_usage_error(run_cli, tmp_path: Path):
    base = ["ablate", "export", tmp_path / "edd.yaml", "-o", tmp_path / "p.yaml"]
    base += ["--tracking-uri", "http://127.0.0.1:1", "--trust-ref", "origin/main"]
    result = run_cli(*base, "--image", IMAGE)
    assert result.exit_code == 2
    assert "--kfp" in result.stderr
    result = run_cli(*base, "--kfp", "--image", "registry.example.com/training:latest")
    assert result.exit_code == 2
    assert "by tag" in result.stderr
    assert not (tmp_path / "p.yaml").exists()


def test_without_the_kfp_sdk_the_export_says_how_to_install_it(tmp_path: Path):
    # A None in sys.modules makes `import kfp` raise ImportError, as when it is absent.
    script = (
        "import sys; sys.modules['kfp'] = None; from audit.cli.main import main; "
        f"sys.exit(main(['ablate', 'export', '--kfp', 'edd.yaml', '-o', 'p.yaml', "
        f"'--image', '{IMAGE}', '--tracking-uri', 'http://127.0.0.1:1', "
        "'--trust-ref', 'origin/main']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'mlaudit[kfp]'" in proc.stderr
