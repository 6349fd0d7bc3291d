"""The Ray executor on a real single-node Ray cluster (127.0.0.1, 2 CPUs), started once here.

Every run is the real `mlaudit ablate run --executor ray` in a subprocess (the driver
is SIGKILLed in one test). Faults are real too: a Ray worker process is killed
mid-trial, the driver is killed mid-run, a trial exits non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from protocol_study import VENV_BIN, Study, edd_document

pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from ray_common import LocalRay

pytestmark = pytest.mark.slow

# What differs between two executions of the same trials: when, and (on Ray) where.
TIMING_AND_NODE = {"duration_seconds", "started_at", "finished_at", "node", "attempt_log"}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRay]:
    # A short temp path: Ray's socket paths must fit in 107 bytes.
    cluster = LocalRay(Path(tmp_path_factory.mktemp("ray")), cpus=2)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _mlaudit(cluster: LocalRay, study: Study, out: Path, *extra: str, **env: str) -> list[str]:
    return [f"{VENV_BIN}/mlaudit", *study.run_args(out, "--no-cache", *extra)]


def _run(
    cluster: LocalRay, study: Study, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _mlaudit(cluster, study, out, *extra),
        env={**cluster.env(), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def _events(out: Path, kind: str) -> list[dict[str, Any]]:
    lines = (out / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == kind]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (0: state, 1: ppid, 19: start ticks)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _identities(pids: Iterator[int]) -> dict[int, str]:
    """pid -> start ticks: with both, a pid the kernel has since reused is not mistaken."""
    return {pid: fields[19] for pid in pids if (fields := _stat(pid)) is not None}


def _alive(blocked: dict[int, str]) -> list[str]:
    """The blocked trial processes still running (a zombie has ended), described."""
    left = []
    for pid, ticks in blocked.items():
        fields = _stat(pid)
        if fields is None or fields[19] != ticks or fields[0] == "Z":
            continue
        parent = _stat(int(fields[1]))
        try:
            parent_cmd = Path(f"/proc/{fields[1]}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            parent_cmd = b"?"
        left.append(
            f"pid {pid} state {fields[0]} parent {fields[1]} ({parent_cmd[:120]!r}, "
            f"state {parent[0] if parent else '?'})"
        )
    return left


def _wait_gone(blocked: dict[int, str], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _alive(blocked)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _without_timing(results: dict[str, Any]) -> dict[str, Any]:
    trials = [{k: v for k, v in t.items() if k not in TIMING_AND_NODE} for t in results["trials"]]
    budget = {k: v for k, v in results["budget"].items() if k != "wall_seconds"}
    rest = {k: v for k, v in results.items() if k not in ("trials", "budget", "created_at")}
    return {**rest, "trials": trials, "budget": budget}


def _analyze(results: Path, output: Path) -> dict[str, Any]:
    subprocess.run(
        [
            f"{VENV_BIN}/mlaudit",
            "ablate",
            "analyze",
            str(results),
            "-o",
            str(output),
            "--resamples",
            "99",
        ],
        check=True,
        capture_output=True,
    )
    analysis = json.loads(output.read_text())
    for key in ("created_at", "results_sha256"):
        analysis.pop(key, None)
    return analysis


def test_ray_results_equal_the_local_pools(ray_cluster, new_study, tmp_path):
    study = new_study(edd_document(seeds=[0, 1]))
    local = subprocess.run(
        _mlaudit(ray_cluster, study, tmp_path / "local", "--workers", "2"),
        env=ray_cluster.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert local.returncode == 0, local.stderr
    on_ray = _run(ray_cluster, study, tmp_path / "ray", "--executor", "ray")
    assert on_ray.returncode == 0, on_ray.stderr
    local_results, ray_results = _results(tmp_path / "local"), _results(tmp_path / "ray")
    assert _without_timing(ray_results) == _without_timing(local_results)
    assert all(t["status"] == "succeeded" for t in ray_results["trials"])
    # Where each trial ran, on which environment, under which Ray job and task.
    node = ray_results["trials"][0]["node"]
    assert node["ip"] == "127.0.0.1"
    assert len(node["environment"]) == 64
    entry = ray_results["trials"][0]["attempt_log"][0]
    assert entry["outcome"] == "succeeded"
    assert entry["ray_task_id"]
    assert entry["ray_job_id"]
    assert all(e.get("node_id") for e in _events(tmp_path / "ray", "started"))
    assert _analyze(tmp_path / "ray" / "results.json", tmp_path / "a-ray.json") == _analyze(
        tmp_path / "local" / "results.json", tmp_path / "a-local.json"
    )


def test_a_killed_worker_is_an_infrastructure_retry_and_a_failing_trial_is_attrition(
    ray_cluster, new_study, tmp_path, markers
):
    document = edd_document(seeds=[0, 1], transient_exit_codes=[3], max_retries=1)
    protocol = document["protocol"]
    protocol["baseline"]["behaviour"] = "ok"
    protocol["components"][1]["ablate"] = ["features.b=false", "behaviour=crash"]
    protocol["references"][0]["overrides"] = ["features.b=false", "behaviour=hang_once"]
    study = new_study(document)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        _mlaudit(ray_cluster, study, out, "--executor", "ray"),
        env={**ray_cluster.env(), "STUDY_MARKERS": str(markers)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hung = markers / "production~0.hung"
    deadline = time.monotonic() + 120
    while not hung.exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hung.exists(), driver.communicate()[1]
    os.kill(int(hung.read_text()), signal.SIGKILL)  # the Ray worker running production/0
    _, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 4, stderr  # planned trials did not succeed: attrition
    results = _results(out)
    trials = {t["trial_id"]: t for t in results["trials"]}
    # The budget counts trials (and the determinism re-run), never a lost attempt.
    assert results["budget"]["trials_run"] == len(trials) + 1

    retried = trials["production/0"]
    assert retried["status"] == "succeeded", retried
    assert retried["attempts"] == 2
    assert [a["outcome"] for a in retried["attempt_log"]] == ["lost", "succeeded"]
    assert "WorkerCrashedError" in retried["attempt_log"][0]["reason"]
    [lost] = _events(out, "attempt_lost")
    assert lost["trial_id"] == "production/0"
    assert lost["ray_task_id"]
    done = Counter(
        p.name.split("~")[0] + "/" + p.name.split("~")[1] for p in markers.glob("*.done")
    )
    assert done["production/0"] == 1  # completed once

    for seed in (0, 1):
        crashed = trials[f"no-b/{seed}"]
        assert crashed["status"] == "failed"
        assert crashed["exit_code"] == 3
        assert crashed["attempts"] == 2  # 1 + max_retries, never more
        assert "boom" in crashed["reason"]
    assert "no-b/0 failed" in stderr or "did not succeed" in stderr


def test_a_sigkilled_driver_resumes_without_duplicate_trials_or_runs(
    ray_cluster, new_study, tmp_path, markers, mlflow_server
):
    study = new_study(edd_document(seeds=[0, 1]))
    out = tmp_path / "out"
    env = {**ray_cluster.env(), "STUDY_MARKERS": str(markers), "STUDY_BLOCK_SEED": "1"}
    command = _mlaudit(
        ray_cluster, study, out, "--executor", "ray", "--tracking-uri", mlflow_server.uri
    )
    driver = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        # Kill once two seed-1 trials hang. Ray may start them before every seed-0 trial
        # (it did under load): then fewer have finished, which the resume must handle too.
        if len(list(markers.glob("*.blocked"))) >= 2:
            break
        time.sleep(0.02)
    blocked_markers = [p.name.split("~")[:3] for p in markers.glob("*.blocked")]
    blocked = _identities(int(pid.split(".")[0]) for _, _, pid in blocked_markers)
    assert len(blocked) >= 2, "the seed-1 trials never started"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # Ray ends a dead driver's job, and its trials with it; when it is slow to notice (it
    # was once, in a full suite run), the resume kills the journaled leftovers itself.
    _wait_gone(blocked, 30)
    finished_before = {e["trial"]["trial_id"] for e in _events(out, "finished")}
    assert all(t.endswith("/0") for t in finished_before)  # seed-1 trials hang until killed

    (markers / "release").touch()
    resumed = subprocess.run(
        [*command, "--resume"], env=env, capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr
    # No orphan outlives the resume: Ray or the resume ended them (an exiting one may
    # still be on its way out for a moment).
    left = _wait_gone(blocked, 30)
    assert not left, f"trial processes outlived the resume: {left}"
    results = _results(out)
    assert all(t["status"] == "succeeded" for t in results["trials"])
    finished = Counter(e["trial"]["trial_id"] for e in _events(out, "finished"))
    assert set(finished.values()) == {1}  # no trial finished twice
    done = Counter("/".join(p.name.split("~")[:2]) for p in markers.glob("*.done"))
    for trial_id in finished_before:
        expected = 2 if trial_id == "baseline/0" else 1  # + the determinism re-run
        assert done[trial_id] == expected, trial_id
    trials = {t["trial_id"]: t for t in results["trials"]}
    for arm, seed, _ in blocked_markers:
        log = trials[f"{arm}/{seed}"]["attempt_log"]
        assert [a["outcome"] for a in log] == ["lost", "succeeded"]  # the kill ended the first

    from audit.tracking.client import connect

    client = connect(mlflow_server.uri)
    runs = client.search_runs([results["tracking"]["experiment_id"]])
    names = Counter(r.data.tags.get("mlflow.runName") for r in runs)
    assert sum(names[t["trial_id"]] for t in results["trials"]) == len(results["trials"])
    assert {r.info.run_id for r in runs} >= {t["mlflow_run_id"] for t in results["trials"]}
