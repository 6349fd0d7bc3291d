"""`mlaudit ablate run` end to end: real trials, real git + DVC, real signed approvals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from protocol_study import VENV_BIN, Study, edd_document

from audit._resources import load_schema
from audit.edd import load_edd


def _results(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    Draft202012Validator(load_schema("results")).validate(results)
    return results


def _by_id(results: dict) -> dict[str, dict]:
    return {t["trial_id"]: t for t in results["trials"]}


def test_full_run_records_everything_and_validates(study: Study, run_cli, tmp_path, markers):
    out = tmp_path / "out"
    result = run_cli(*study.run_args(out, "--workers", "2", "--no-cache"))
    assert result.exit_code == 0, result.stderr
    results = _results(out)
    edd = load_edd(study.edd)
    assert results["edd"]["digest"] == edd.digest
    assert results["edd"]["document"] == edd.document
    assert results["approvals"][0]["principal"] == "reviewer@example.com"
    assert results["approvals"][0]["verdict"] == "valid"
    assert results["trust"] == {
        "ref": "main",
        "commit": results["trust"]["commit"],
        "protected": True,
    }
    assert len(results["trust"]["commit"]) == 40
    # The plan records the comparisons its signed design implies; the statistics read them.
    assert results["plan"]["comparisons"] == [
        {"target": "a", "kind": "component", "candidate_arm": "baseline", "comparator_arm": "no-a"},
        {"target": "b", "kind": "component", "candidate_arm": "baseline", "comparator_arm": "no-b"},
        {
            "target": "production",
            "kind": "reference",
            "candidate_arm": "baseline",
            "comparator_arm": "production",
        },
    ]
    trials = _by_id(results)
    assert len(trials) == 4 * 3
    assert all(t["status"] == "succeeded" for t in trials.values())
    # The override reached the program: ablating a costs 0.1 score on the same seed.
    assert trials["baseline/1"]["metrics"]["score"] - trials["no-a/1"]["metrics"]["score"] == (
        pytest.approx(0.1)
    )
    assert trials["no-b/0"]["metrics"]["nested.loss"] == pytest.approx(1 - 0.5 - 0.1)
    provenance = results["provenance"]
    assert provenance["git"]["dirty"] is False
    assert (
        provenance["git"]["commit"]
        == subprocess.run(
            ["git", "-C", str(study.root), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    assert provenance["data"]["data/train.csv"]
    assert provenance["dvc_status_clean"] is True
    assert results["reproducibility"]["passed"] is True
    assert results["budget"]["trials_run"] == 13
    # stdout/stderr captured per trial; env reached the trial.
    trial_dir = out / trials["no-a/2"]["trial_dir"]
    assert (trial_dir / "stdout.log").exists()
    assert (trial_dir / "stderr.log").exists()
    done = Counter(p.name.split("~")[0] for p in markers.glob("*.done"))
    assert done == {"baseline": 4, "no-a": 3, "no-b": 3, "production": 3}


def test_cached_rerun_reuses_every_trial_across_out_dirs(study: Study, run_cli, tmp_path, markers):
    first, second = tmp_path / "out1", tmp_path / "out2"
    assert run_cli(*study.run_args(first, "--workers", "2")).exit_code == 0
    executed = len(list(markers.glob("*.done")))
    result = run_cli(*study.run_args(second, "--workers", "2"))
    assert result.exit_code == 0, result.stderr
    results = _results(second)
    # production declares the same overrides as no-b: same fingerprint, either may serve.
    twins = {"production": "no-b", "no-b": "production"}
    for trial in results["trials"]:
        twin = f"{twins.get(trial['arm'], trial['arm'])}/{trial['seed']}"
        assert trial["cached_from"] in (trial["trial_id"], twin)
    assert all(t["cached_from_dir"] == str(first.resolve()) for t in results["trials"])
    assert _by_id(results)["no-a/1"]["metrics"] == _by_id(_results(first))["no-a/1"]["metrics"]
    # Only the determinism re-run executes again; cached trials do not run.
    assert len(list(markers.glob("*.done"))) == executed + 1


def test_refuses_unapproved_edd(new_study, run_cli, tmp_path):
    study = new_study(sign=False)
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "not approved" in result.stderr
    assert not (tmp_path / "out").exists()


def test_refuses_dirty_tree_unless_allowed(study: Study, run_cli, tmp_path):
    (study.root / "train.py").write_text((study.root / "train.py").read_text() + "\n# edit\n")
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "work tree is dirty (train.py)" in result.stderr
    result = run_cli(*study.run_args(tmp_path / "out", "--allow-dirty", "--no-cache"))
    assert result.exit_code == 0, result.stderr
    git = _results(tmp_path / "out")["provenance"]["git"]
    assert git["dirty"] is True
    assert git["allow_dirty"] is True
    head_tree = subprocess.run(
        ["git", "-C", str(study.root), "rev-parse", "HEAD^{tree}"], capture_output=True, text=True
    ).stdout.strip()
    assert git["tree"] != head_tree  # the tree that actually ran, edit included


def test_refuses_data_that_no_longer_matches_its_dvc_file(study: Study, run_cli, tmp_path):
    (study.root / "data" / "train.csv").write_text("x,y\n9,9\n")
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "data does not match what DVC recorded: data/train.csv.dvc" in result.stderr
    # `dvc add` data: the file to commit is its .dvc file, not a lock this project lacks.
    assert "and commit data/train.csv.dvc" in result.stderr
    assert "dvc.lock" not in result.stderr
    # The check may still run while the first trials do, but none of them is counted:
    # no results, no journal (a fresh run in this out dir is possible), no cache entry.
    assert not (tmp_path / "out" / "results.json").exists()
    assert not (tmp_path / "out" / "journal.jsonl").exists()
    assert not list((study.root / ".mlaudit" / "cache").glob("**/*.json"))


def test_failures_are_recorded_with_reasons(new_study, run_cli, tmp_path):
    document = edd_document(
        components=[
            {"name": "a", "ablate": ["behaviour=emit_nan"]},
            {"name": "b", "ablate": ["behaviour=crash"]},
            {"name": "c", "ablate": ["behaviour=garbage"]},
            {"name": "d", "ablate": ["behaviour=flaky"]},
        ],
        references=[],
        seeds=[0],
        transient_exit_codes=[75],
        max_retries=1,
    )
    document["protocol"]["baseline"]["behaviour"] = "ok"
    study = new_study(document)
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 4, result.stderr  # some planned trials did not succeed
    trials = _by_id(_results(tmp_path / "out"))
    assert trials["no-a/0"]["status"] == "failed"
    assert "NaN is not a finite number" in trials["no-a/0"]["reason"]
    assert trials["no-b/0"]["status"] == "failed"
    assert trials["no-b/0"]["exit_code"] == 3
    assert "boom: the model exploded" in trials["no-b/0"]["reason"]
    assert trials["no-c/0"]["status"] == "failed"
    assert "metrics.json is not valid" in trials["no-c/0"]["reason"]
    assert trials["no-d/0"]["status"] == "succeeded"
    assert trials["no-d/0"]["attempts"] == 2


def test_hanging_trial_times_out_and_its_group_is_killed(new_study, run_cli, tmp_path):
    document = edd_document(
        components=[{"name": "a", "ablate": ["behaviour=hang"]}], references=[], seeds=[0]
    )
    document["protocol"]["baseline"]["behaviour"] = "ok"
    document["budget"]["trial_timeout_seconds"] = 1.5
    study = new_study(document)
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 4, result.stderr
    results = _results(tmp_path / "out")
    hung = _by_id(results)["no-a/0"]
    assert hung["status"] == "timeout"
    assert "process group killed" in hung["reason"]
    grandchild = int((tmp_path / "out" / hung["trial_dir"] / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{grandchild}").exists():
        if Path(f"/proc/{grandchild}/stat").read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    alive = Path(f"/proc/{grandchild}/stat").exists() and (
        Path(f"/proc/{grandchild}/stat").read_text().split(")")[-1].split()[0] != "Z"
    )
    assert not alive
    assert _by_id(results)["baseline/0"]["status"] == "succeeded"


def test_wall_budget_records_remaining_trials_as_not_run(new_study, run_cli, tmp_path):
    document = edd_document(seeds=[0, 1, 2, 3])
    document["protocol"]["baseline"]["sleep"] = 0.3
    document["budget"]["max_wall_minutes"] = 0.01  # 0.6 s
    study = new_study(document)
    result = run_cli(*study.run_args(tmp_path / "out", "--workers", "1", "--no-cache"))
    assert result.exit_code == 4, result.stderr
    results = _results(tmp_path / "out")
    statuses = Counter(t["status"] for t in results["trials"])
    assert statuses["not_run"] >= 1
    assert statuses["succeeded"] >= 1
    assert sum(statuses.values()) == 16
    assert results["budget"]["exhausted"] is True
    not_run = [t for t in results["trials"] if t["status"] == "not_run"]
    assert all("max_wall_minutes" in t["reason"] for t in not_run)


def test_plan_over_budget_is_refused(new_study, run_cli, tmp_path):
    document = edd_document()
    document["budget"]["max_trials"] = 5
    study = new_study(document, sign=False)
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "exceed max_trials 5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_params_file_mode_writes_resolved_config(new_study, run_cli, tmp_path):
    document = edd_document(
        overrides_via="params_file", command=[sys.executable, "train.py"], references=[]
    )
    study = new_study(document)
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    trials = _by_id(_results(out))
    params = (out / trials["no-a/0"]["trial_dir"] / "params.yaml").read_text()
    assert "a: false" in params
    assert trials["baseline/0"]["metrics"]["score"] - trials["no-a/0"]["metrics"]["score"] == (
        pytest.approx(0.1)
    )


def test_nondeterministic_trial_fails_the_determinism_check(new_study, run_cli, tmp_path):
    document = edd_document(references=[], seeds=[0])
    document["protocol"]["baseline"]["behaviour"] = "noisy"
    study = new_study(document)
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    check = _results(out)["reproducibility"]
    assert check["passed"] is False
    assert "metric 'score' differs" in check["reason"] or "nested.loss" in check["reason"]


def test_out_dir_with_a_run_needs_resume(study: Study, run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out)).exit_code == 0
    result = run_cli(*study.run_args(out))
    assert result.exit_code == 2
    assert "--resume" in result.stderr
    result = run_cli(*study.run_args(out, "--resume"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.slow
def test_sigkill_then_resume_runs_every_trial_exactly_once(new_study, tmp_path, markers):
    document = edd_document(seeds=[0, 1, 2, 3, 4])
    # Long trials: the kill below must land mid-sleep even when a loaded machine delays
    # the journal or this poll by a few hundred ms (at 0.4 s it failed once here, run
    # beside a cold full suite).
    document["protocol"]["baseline"]["sleep"] = 1.0
    study = new_study(document)
    out = tmp_path / "out"
    command = [f"{VENV_BIN}/mlaudit", *study.run_args(out, "--workers", "2", "--no-cache")]
    runner = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = journal.read_text().count('"event":"finished"') if journal.exists() else 0
        if finished >= 5:
            break
        time.sleep(0.02)
    # Trials run in pairs of equal length: kill while the next pair is surely mid-sleep.
    # (A trial that completed in the instant before the kill, but was not journaled
    # yet, would legitimately run again; that is the one window a journal cannot close.)
    time.sleep(0.3)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    time.sleep(0.3)
    finished_before = {
        json.loads(line)["trial"]["trial_id"]
        for line in journal.read_text().splitlines()
        if '"event":"finished"' in line
    }
    assert 5 <= len(finished_before) < 20
    resumed = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, check=False, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    results = _results(out)
    assert all(t["status"] == "succeeded" for t in results["trials"])

    def count(kind: str, *, rerun: bool) -> Counter[str]:
        return Counter(
            "/".join(p.name.split("~")[:2])
            for p in markers.glob(f"*.{kind}")
            if p.name.endswith(f"~rerun.{kind}") == rerun
        )

    done, started = count("done", rerun=False), count("start", rerun=False)
    for trial in results["trials"]:
        key = f"{trial['arm']}/{trial['seed']}"
        assert done[key] == 1, key
        if trial["trial_id"] in finished_before:
            assert started[key] == 1, key  # finished before the kill: never run again
    # The determinism re-run ran beside the trials; one the kill cut short starts over.
    assert count("done", rerun=True) == {"baseline/0": 1}


def test_amended_edd_reuses_trials_whose_inputs_did_not_change(study, run_cli, tmp_path):
    assert run_cli(*study.run_args(tmp_path / "out1")).exit_code == 0
    document = edd_document(seeds=[0, 1, 2, 3])
    document["version"] = 2
    study.write_edd(document)  # re-signed and committed: the git tree changed
    result = run_cli(*study.run_args(tmp_path / "out2"))
    assert result.exit_code == 0, result.stderr
    results = _results(tmp_path / "out2")
    cached = {t["trial_id"] for t in results["trials"] if t["cached_from"]}
    assert cached == {t["trial_id"] for t in results["trials"] if t["seed"] != 3}
    code_tree = results["provenance"]["git"]["code_tree"]
    assert code_tree != results["provenance"]["git"]["tree"]
