"""A study reading Git LFS and lakeFS data, end to end: run, report, sealed inputs, bundle.

Real git + git-lfs, real DVC, real ssh signatures, the real MLflow server of the
session, and the `lakefs` SDK against the loopback fake checked by lakeFS's OpenAPI.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from lakefs_fake import TRAIN_OBJECTS, FakeLakeFS
from protocol_study import Study, edd_document

WEIGHTS = b"pretrained " * 500
LAKEFS_URI = "lakefs://fraud-data/main/transactions/"

WANDB_TRIAL = """
if arm == "baseline" and seed == 0 and trial_dir.parent.parent.name == "trials":
    import wandb
    run = wandb.init(project="toy")
    run.log({"score": metrics["score"]})
    seen = {"group": run.group, "job_type": run.job_type, "name": run.name, "tags": run.tags}
    run.finish()
    (trial_dir / "seen.json").write_text(json.dumps({**seen, "tags": list(seen["tags"])}))
"""

pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def lakefs(httpserver, monkeypatch: pytest.MonkeyPatch) -> FakeLakeFS:
    fake = FakeLakeFS(httpserver)
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    fake.repository("fraud-data").commit("main", TRAIN_OBJECTS)
    yield fake
    assert fake.violations == []


@pytest.fixture
def pinned_study(new_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lakefs) -> Study:
    """The protocol toy study, plus data/weights.bin in Git LFS and a lakeFS prefix."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    # Two arms x two seeds: enough trials to log, seal and bundle.
    document = edd_document(
        seeds=[0, 1], components=[{"name": "a", "ablate": ["features.a=false"]}], references=[]
    )
    document["id"] = f"pins-{uuid.uuid4().hex[:8]}"
    study = new_study(document)
    # One trial also logs to W&B (offline), as a script that already uses it would.
    train = study.root / "train.py"
    train.write_text(train.read_text() + WANDB_TRIAL)
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(home / "wandb-config"),
        "WANDB_CACHE_DIR": str(home / "wandb-cache"),
        "WANDB_DATA_DIR": str(home / "wandb-data"),
    }.items():
        monkeypatch.setenv(name, value)
    _git(study.root, "lfs", "install", "--local")
    _git(study.root, "lfs", "track", "*.bin")
    (study.root / "data" / "weights.bin").write_bytes(WEIGHTS)
    document["data"] += [
        {"path": "data/weights.bin", "tracked_by": "git-lfs"},
        {"lakefs": LAKEFS_URI},
    ]
    study.write_edd(document)
    return study


def _pipeline(run_cli, study: Study, out: Path, uri: str) -> None:
    steps = [
        study.run_args(out, "--no-cache", "--tracking-uri", uri),
        ["ablate", "analyze", out / "results.json", "-o", out / "analysis.json"],
        [
            *("report", "render", out / "analysis.json", "--results", out / "results.json"),
            *("--format", "md", "-o", out / "report.md"),
        ],
        [
            *("gate", "--analysis", out / "analysis.json", "--results", out / "results.json"),
            *("--edd", study.edd, "--trust-ref", "main", "-o", out / "gate.json"),
        ],
    ]
    for step in steps:
        result = run_cli(*step)
        # The toy's paired differences are all equal (degenerate): the gate judges it FAILED.
        assert result.exit_code == (1 if step[0] == "gate" else 0), (step[:2], result.stderr)


def test_pins_reach_provenance_report_sealed_inputs_and_bundle(
    pinned_study, run_cli, mlflow_server, tmp_path, lakefs
):
    out = tmp_path / "out"
    _pipeline(run_cli, pinned_study, out, mlflow_server.uri)
    results = json.loads((out / "results.json").read_text())
    provenance = results["provenance"]
    head = lakefs.repository("fraud-data").branches["main"]
    oid = hashlib.sha256(WEIGHTS).hexdigest()
    (lfs,) = provenance["data_pins"]["git_lfs"]
    assert lfs["objects"][0]["oid"] == f"sha256:{oid}"
    assert lfs["objects"][0]["matches"]
    (lake,) = provenance["data_pins"]["lakefs"]
    assert (lake["ref_kind"], lake["commit_id"]) == ("branch", head)
    assert set(provenance["data"]) == {"data/train.csv", "data/weights.bin", LAKEFS_URI}
    rules = {r["rule"]: r["passed"] for r in json.loads((out / "gate.json").read_text())["rules"]}
    assert rules["protocol-as-signed"]
    assert rules["provenance"]

    report = (out / "report.md").read_text()
    assert oid in report
    assert head in report
    assert "Git LFS objects" in report

    from audit.tracking.client import connect

    client = connect(mlflow_server.uri)
    parent = client.get_run(results["tracking"]["parent_run_id"])
    assert parent.info.status == "FINISHED"  # sealed, with the data as inputs
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == set(provenance["data"])
    run = client.get_run(results["trials"][0]["mlflow_run_id"])
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert inputs["data/weights.bin"].source_type == "git-lfs"
    assert inputs[LAKEFS_URI].source_type == "lakefs"
    assert json.loads(inputs[LAKEFS_URI].source)["uri"] == lake["immutable_uri"]
    assert inputs["data/train.csv"].source_type == "dvc"

    # The W&B run the trial made is linked from its record, its sealed run and the report.
    trials = {t["trial_id"]: t for t in results["trials"]}
    (wandb_id,) = trials["baseline/0"]["foreign_runs"]["wandb"]
    assert "foreign_runs" not in trials["no-a/1"]
    sealed = client.get_run(trials["baseline/0"]["mlflow_run_id"])
    assert sealed.data.tags["mlaudit.foreign.wandb"] == wandb_id
    assert f"wandb `{wandb_id}`" in report
    # ... and the W&B run carries the study context back (the variables W&B reads itself).
    seen = json.loads((out / trials["baseline/0"]["trial_dir"] / "seen.json").read_text())
    edd_id = results["edd"]["id"]
    assert (seen["group"], seen["job_type"], seen["name"]) == (edd_id, "baseline", "baseline/0")
    assert set(seen["tags"]) == {"mlaudit", f"edd:{edd_id}", "arm:baseline", "seed:0"} | {
        "trial:baseline/0"
    }

    bundle = tmp_path / "bundle.tar.gz"
    created = run_cli(
        "bundle", "create", "-o", bundle, "--edd", pinned_study.edd, "--dir", out,
        "--trust-ref", "main", "--tracking-uri", mlflow_server.uri,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    verified = json.loads(run_cli("bundle", "verify", bundle, "--json").stdout)
    assert verified["findings"] == [], verified["findings"]
    assert {c["check"]: c["passed"] for c in verified["checks"]}["data-pins"] is True

    # A forger edits the lakeFS manifest digest in results.json and fixes the manifest.
    forged = _forge(bundle, tmp_path / "forged.tar.gz")
    findings = json.loads(run_cli("bundle", "verify", forged, "--json").stdout)["findings"]
    pointers = {f["pointer"] for f in findings if f["id"] == "data-pins"}
    assert "results/results.json:/provenance/data_pins/lakefs/0/manifest_sha256" in pointers


def _forge(bundle: Path, target: Path) -> Path:
    from audit.bundle import layout
    from audit.bundle.archive import read_archive, write_archive
    from audit.bundle.attestation import envelope, statement

    members = read_archive(bundle)
    results = json.loads(members[layout.RESULTS])
    results["provenance"]["data_pins"]["lakefs"][0]["manifest_sha256"] = "0" * 64
    members[layout.RESULTS] = json.dumps(results).encode()
    manifest = json.loads(members[layout.MANIFEST])
    manifest["files"] = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in sorted(members.items())
        if name not in (layout.MANIFEST, layout.ATTESTATION)
    }
    members[layout.MANIFEST] = json.dumps(manifest).encode()
    rest = {n: d for n, d in members.items() if n != layout.ATTESTATION}
    members[layout.ATTESTATION] = json.dumps(envelope(statement(rest, {}), None)).encode()
    with target.open("wb") as handle:
        write_archive(members, handle)
    return target


def test_a_missing_lfs_smudge_refuses_the_run(pinned_study, run_cli, tmp_path, monkeypatch):
    # A checkout that skipped the LFS objects: the pointer is on disk and git sees no change.
    (pinned_study.root / "data" / "weights.bin").unlink()
    monkeypatch.setenv("GIT_LFS_SKIP_SMUDGE", "1")
    _git(pinned_study.root, "checkout", "--", "data/weights.bin")
    assert _git(pinned_study.root, "status", "--porcelain") == ""
    result = run_cli(*pinned_study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 1
    assert "data/weights.bin" in result.stderr
    assert "git lfs pull" in result.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_lakefs_branch_moved_during_the_run_is_refused(pinned_study, run_cli, tmp_path, lakefs):
    repo = lakefs.repository("fraud-data")
    before = repo.branches["main"]
    # Another writer commits to the branch right after the run listed it.
    lakefs.after_listing = lambda: repo.commit("main", {**TRAIN_OBJECTS, "late.csv": b"x"})
    result = run_cli(*pinned_study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 1
    assert f"moved from commit {before[:12]} to {repo.branches['main'][:12]}" in result.stderr
