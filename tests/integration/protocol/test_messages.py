"""Refusals name their causes: per-approval reasons, each analysis blocker, policy limits."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from protocol_study import APPROVER, Study, edd_document


def test_run_refusal_repeats_why_each_approval_did_not_count(study: Study, run_cli, tmp_path):
    document = yaml.safe_load(study.edd.read_text())
    document["hypothesis"] = "Edited after it was signed."
    study.edd.write_text(yaml.safe_dump(document, sort_keys=False))
    study.commit("edit the EDD, keep the old signature")
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "quorum not met: 0 distinct approver(s)" in result.stderr
    assert f"approvals/{APPROVER}.sig: invalid: signature does not match the content" in (
        result.stderr
    )
    assert "raise its `version` and have each approver sign it again" in result.stderr


def test_run_refusal_says_when_there_is_no_approval(new_study, run_cli, tmp_path):
    study = new_study(sign=False)
    result = run_cli(*study.run_args(tmp_path / "out"))
    assert result.exit_code == 1
    assert "there is no approvals/*.sig next to the EDD" in result.stderr


def _strict_policy(study: Study, **policy: object) -> None:
    (study.root / ".mlaudit" / "policy.yaml").write_text(yaml.safe_dump(policy))
    study.commit("stricter policy")


def test_validate_with_trust_ref_checks_the_policy(study: Study, run_cli):
    _strict_policy(
        study,
        quorum=2,
        min_seeds=10,
        roles={"risk": ["risk@example.com"]},
        required_roles=["risk"],
    )
    assert run_cli("edd", "validate", study.edd).exit_code == 0  # the design alone is fine
    result = run_cli("edd", "validate", study.edd, "--trust-ref", "main")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any("/protocol/seeds: plans 3 seed(s)" in x and "min_seeds 10" in x for x in lines)
    assert any("needs 2 distinct approver(s)" in x and APPROVER in x for x in lines)
    assert any("requires a 'risk' approval" in x for x in lines)
    plan = run_cli("ablate", "plan", study.edd, "--trust-ref", "main")
    assert plan.exit_code == 1
    assert "min_seeds 10" in plan.stderr


def test_validate_with_trust_ref_passes_a_satisfiable_edd(study: Study, run_cli):
    result = run_cli("edd", "validate", study.edd, "--trust-ref", "main", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True


def test_analyze_names_each_blocker(new_study, run_cli, tmp_path: Path):
    document = edd_document(references=[], seeds=[0, 1, 2])
    document["protocol"]["baseline"]["behaviour"] = "noisy"  # the re-run will not match
    study = new_study(document)
    out = tmp_path / "out"
    run_cli(*study.run_args(out, "--no-cache"))
    result = run_cli(
        "ablate", "analyze", out / "results.json", "-o", out / "analysis.json", "--resamples", "99"
    )
    assert result.exit_code == 0, result.stderr
    assert "study-level blocker(s)" in result.stdout
    assert "  - the reproducibility re-run of baseline/0 did not match" in result.stdout
