"""The data a study read, as the dataset inputs and tags of its MLflow runs (pure)."""

from __future__ import annotations

import json

from audit.tracking.datasets import FULL_DIGEST_TAG, data_inputs
from audit.tracking.runspec import parent_run, trial_run

LFS_DIGEST = "sha256:" + "a" * 64
LAKEFS_DIGEST = "sha256:" + "b" * 64
URI = "lakefs://fraud-data/main/labels/"
PROVENANCE = {
    "git": {"commit": "c" * 40},
    "fingerprint": "f" * 64,
    "data": {"data/train.csv": "5d41402abc4b2a76b9719d911017c592", "data/w.bin": LFS_DIGEST}
    | {URI: LAKEFS_DIGEST},
    "data_pins": {
        "git_lfs": [
            {
                "path": "data/w.bin",
                "commit": "c" * 40,
                "digest": LFS_DIGEST,
                "objects": [{"path": "data/w.bin", "oid": "sha256:" + "d" * 64, "size": 3}],
            }
        ],
        "lakefs": [
            {
                "uri": URI,
                "ref_kind": "branch",
                "commit_id": "e" * 64,
                "immutable_uri": f"lakefs://fraud-data/{'e' * 64}/labels/",
                "manifest_sha256": "b" * 64,
            }
        ],
    },
}
HEADER = {
    "edd": {"id": "toy", "version": 1, "digest": "0" * 64, "document": {}},
    "plan": {"arms": [{"name": "baseline", "overrides": []}], "seeds": [0]},
    "provenance": PROVENANCE,
    "created_at": "2026-12-02T00:00:00Z",
}


def test_one_input_per_data_entry_with_its_source():
    inputs = {d.name: d for d in data_inputs(PROVENANCE)}
    assert {n: d.source_type for n, d in inputs.items()} == {
        "data/train.csv": "dvc",
        "data/w.bin": "git-lfs",
        URI: "lakefs",
    }
    assert json.loads(inputs[URI].source)["uri"] == f"lakefs://fraud-data/{'e' * 64}/labels/"
    # MLflow keeps 36 characters of a digest; the whole one is an input tag.
    assert inputs["data/w.bin"].digest == "a" * 36
    assert inputs["data/w.bin"].tags[FULL_DIGEST_TAG] == LFS_DIGEST
    assert inputs["data/train.csv"].digest == "5d41402abc4b2a76b9719d911017c592"


def test_every_tag_key_is_one_mlflow_accepts():
    from mlflow.utils.validation import _validate_tag_name

    for key in parent_run(HEADER).tags:
        _validate_tag_name(key)


def test_parent_and_trial_runs_carry_the_inputs_and_say_what_pins_each_path():
    parent = parent_run(HEADER)
    assert {d.name for d in parent.datasets} == set(PROVENANCE["data"])
    assert parent.tags["mlaudit.lfs.data/w.bin"] == LFS_DIGEST
    # MLflow refuses tag keys that are not a normal path (a trailing slash).
    assert parent.tags["mlaudit.lakefs.fraud-data/main/labels"] == LAKEFS_DIGEST
    assert "mlaudit.dvc.data/train.csv" in parent.tags
    trial = {"arm": "baseline", "seed": 0, "status": "succeeded", "metrics": {"score": 1.0}}
    trial["foreign_runs"] = {"wandb": ["abc123"], "clearml": ["offline-1", "offline-2"]}
    spec = trial_run(HEADER, trial)
    assert spec is not None
    assert spec.datasets == parent.datasets
    assert spec.tags["mlaudit.foreign.wandb"] == "abc123"
    assert spec.tags["mlaudit.foreign.clearml"] == "offline-1,offline-2"
