"""Gate rules on trials a cluster executor (Ray) ran: node environments and attempts."""

from __future__ import annotations

import copy
import json

import pytest
from test_rules import FIXTURE, _failed, _inputs

from audit.gate import decide
from audit.provenance._hashing import sha256_json


@pytest.fixture
def results() -> dict:
    return json.loads(FIXTURE.read_text())


def _recorded_environment(results: dict) -> str:
    env = results["provenance"]["environment"]
    lock = env.get("lock_sha256") or env.get("distributions_sha256")
    return sha256_json(
        {"python": env.get("python"), "lock": lock, "image": env.get("image_digest")}
    )


def _on_nodes(results: dict, environments: dict[str, str]) -> dict:
    """Each trial ran on node-<n>; `environments` maps a trial id to its node's fingerprint."""
    ran = copy.deepcopy(results)
    default = _recorded_environment(results)
    for n, trial in enumerate(ran["trials"]):
        trial["node"] = {
            "node_id": f"node-{n % 2}",
            "hostname": f"worker-{n % 2}",
            "ip": "10.0.0.1",
            "environment": environments.get(trial["trial_id"], default),
        }
        trial["attempt_log"] = [{"attempt": 1, "outcome": trial["status"]}]
    return ran


def test_trials_on_the_recorded_environment_pass(results):
    decision = decide(_inputs(_on_nodes(results, {})))
    assert "provenance" not in _failed(decision)
    evidence = {r.rule: r.evidence for r in decision.rules}
    assert "2 node(s) with one environment" in evidence["provenance"]


def test_trials_on_two_environments_fail_naming_them(results):
    first = results["trials"][1]["trial_id"]
    failed = _failed(decide(_inputs(_on_nodes(results, {first: "e" * 64}))))
    assert "trials ran in 2 different environments" in failed["provenance"]
    assert f"{first} on worker-1" in failed["provenance"]
    assert "eeeeeeeeeeee" in failed["provenance"]


def test_trials_all_elsewhere_than_the_provenance_fail(results):
    everywhere = {t["trial_id"]: "a" * 64 for t in results["trials"]}
    failed = _failed(decide(_inputs(_on_nodes(results, everywhere))))
    assert "not the" in failed["provenance"]
    assert "aaaaaaaaaaaa" in failed["provenance"]


def test_the_gate_shows_attempts_per_trial(results):
    ran = _on_nodes(results, {})
    trial = ran["trials"][2]
    trial["attempts"] = 2
    trial["attempt_log"] = [
        {"attempt": 1, "outcome": "lost", "reason": "WorkerCrashedError"},
        {"attempt": 2, "outcome": "succeeded"},
    ]
    decision = decide(_inputs(ran))
    evidence = {r.rule: r.evidence for r in decision.rules}["no-attrition"]
    assert f"{trial['trial_id']}: 2 attempt(s), 1 lost to infrastructure" in evidence
    assert "trial(s) x 1" in evidence
    assert decision.passed
