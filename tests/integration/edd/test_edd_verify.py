"""`mlaudit edd verify` with trust files in a real git repository; the attacks that must fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from edd_ssh_tools import Study, signers_line, ssh_sign

from audit.edd import load_edd, verify_edd
from audit.errors import TrustError, UsageError, ValidationFailed

POLICY = """\
quorum: 2
roles:
  risk: ["carol@x"]
  ml: ["alice@x", "bob@x"]
required_roles: [risk]
min_seeds: 5
"""


def trust(people, *names: str, options: dict[str, str] | None = None) -> str:
    options = options or {}
    return "".join(signers_line(f"{n}@x", people[n], options.get(n, "")) for n in names)


@pytest.fixture
def approved(study: Study, people) -> Study:
    """Trust on main lists alice, bob, carol and the owner; alice and carol have signed."""
    study.edit("owner@example.com", "owner@x")
    study.commit_trust(trust(people, "alice", "bob", "carol", "owner"), POLICY)
    study.approve("alice@x", people["alice"])
    study.approve("carol@x", people["carol"])
    return study


def verdicts(result) -> dict[str, str]:
    return {a.principal: a.verdict for a in result.approvals}


def test_approved_study_passes(approved, run_cli):
    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert result.passed, result.reasons
    assert verdicts(result) == {"alice@x": "valid", "carol@x": "valid"}
    assert result.protected
    assert result.trust_commit == approved.git("rev-parse", "main").strip()
    assert set(result.trust_files) == {".mlaudit/allowed_signers", ".mlaudit/policy.yaml"}
    assert result.approvers == 2

    cli = run_cli("edd", "verify", approved.edd, "--trust-ref", "main")
    assert cli.exit_code == 0, cli.stderr
    assert "decision: APPROVED" in cli.stdout
    header = cli.stdout.splitlines()[2].split()
    assert header[:3] == ["PRINCIPAL", "ROLE", "KEY"]
    row = next(line for line in cli.stdout.splitlines() if line.startswith("carol@x"))
    assert row.split()[1:4] == ["risk", result.approvals[1].key_fingerprint, "valid"]


def test_json_output(approved, run_cli):
    cli = run_cli("edd", "verify", approved.edd, "--trust-ref", "main", "--json")
    assert cli.exit_code == 0
    data = json.loads(cli.stdout)
    assert data["passed"] is True
    assert data["trust_ref"] == "main"
    assert [a["principal"] for a in data["approvals"]] == ["alice@x", "carol@x"]
    assert set(data["trust_files"][".mlaudit/policy.yaml"]) == {"sha256", "size"}
    # The shared findings model: one per approval file, then the decision.
    findings = data["findings"]
    assert [f["id"] for f in findings] == ["approval alice@x", "approval carol@x", "approved"]
    assert findings[0]["pointer"] == "approvals/alice@x.sig"
    assert all(f["passed"] for f in findings)


def test_quorum_not_met_exits_1(approved, run_cli):
    (approved.approvals / "alice@x.sig").unlink()
    cli = run_cli("edd", "verify", approved.edd, "--trust-ref", "main")
    assert cli.exit_code == 1
    assert "decision: NOT APPROVED" in cli.stdout
    assert "quorum not met: 1 distinct approver(s), policy needs 2" in cli.stdout


def test_attack_signer_only_in_pr_branch(approved, people):
    # The PR adds mallory to allowed_signers on its own branch and in the work tree.
    approved.git("checkout", "-q", "-b", "pr")
    (approved.approvals / "carol@x.sig").unlink()
    approved.commit_trust(
        trust(people, "alice", "bob", "carol", "mallory"), POLICY, message="add me"
    )
    approved.approve("mallory@x", people["mallory"])
    pr = verify_edd(load_edd(approved.edd), trust_ref="pr")
    assert verdicts(pr)["mallory@x"] == "valid"  # sanity: the PR's own trust would accept it

    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert not result.passed
    assert verdicts(result)["mallory@x"] == "untrusted"
    assert "required role 'risk' has no counted approval" in result.reasons


def test_work_tree_trust_files_are_ignored(approved, people):
    (approved.repo / ".mlaudit" / "policy.yaml").write_text("quorum: 1\n")
    (approved.approvals / "carol@x.sig").unlink()
    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert not result.passed
    assert b"quorum: 2" in result.trust_files[".mlaudit/policy.yaml"]


def test_attack_signature_over_older_version(approved):
    approved.edit("\nversion: 1\n", "\nversion: 2\n")
    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert not result.passed
    assert verdicts(result) == {"alice@x": "invalid", "carol@x": "invalid"}
    assert "does not match the content" in result.approvals[0].reason


def test_edit_after_signing_says_what_to_do(approved, run_cli):
    approved.edit("title: Toy study for tests", "title: Toy study for tests, reworded")
    cli = run_cli("edd", "verify", approved.edd, "--trust-ref", "main")
    assert cli.exit_code == 1
    assert "hint: the EDD changed after it was signed" in cli.stdout
    assert "`mlaudit edd sign`" in cli.stdout


def test_no_edit_hint_when_approvals_are_missing_not_stale(approved, run_cli):
    (approved.approvals / "alice@x.sig").unlink()
    cli = run_cli("edd", "verify", approved.edd, "--trust-ref", "main")
    assert cli.exit_code == 1
    assert "hint:" not in cli.stdout


def test_attack_signature_in_git_namespace(approved, people):
    approved.approve("carol@x", people["carol"], namespace="git")
    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert not result.passed
    assert verdicts(result)["carol@x"] == "invalid"
    assert "namespace 'git'" in result.approvals[1].reason


def test_attack_expired_key(study, people):
    study.commit_trust(
        trust(people, "alice", "carol", options={"carol": 'valid-before="20250101Z"'}), POLICY
    )
    study.approve("alice@x", people["alice"])
    study.approve("carol@x", people["carol"])
    now = verify_edd(load_edd(study.edd), trust_ref="main")
    assert not now.passed
    assert verdicts(now)["carol@x"] == "expired"
    then = verify_edd(
        load_edd(study.edd), trust_ref="main", at=datetime(2024, 6, 1, tzinfo=timezone.utc)
    )
    assert then.passed, then.reasons


def test_attack_same_approver_twice(study, people):
    # alice is listed under two principals; her second file must not count again.
    lines = signers_line("alice@x,alice.backup@x", people["alice"]) + trust(people, "carol")
    study.commit_trust(lines, POLICY)
    study.approve("alice@x", people["alice"])
    shutil.copy(study.approvals / "alice@x.sig", study.approvals / "alice.backup@x.sig")
    study.approve("carol@x", people["carol"])
    (study.approvals / "carol@x.sig").unlink()
    result = verify_edd(load_edd(study.edd), trust_ref="main")
    assert not result.passed
    assert verdicts(result) == {"alice.backup@x": "valid", "alice@x": "duplicate"}
    assert result.approvers == 1


def test_attack_owner_approving_alone(study, people):
    study.edit("owner@example.com", "owner@x")
    study.commit_trust(trust(people, "owner"), "quorum: 1\n")
    study.approve("owner@x", people["owner"])
    result = verify_edd(load_edd(study.edd), trust_ref="main")
    assert not result.passed
    assert verdicts(result) == {"owner@x": "owner"}


def test_owner_key_under_another_name_is_still_the_owner(study, people):
    study.edit("owner@example.com", "owner@x")
    lines = signers_line("owner@x,reviewer@x", people["owner"])
    study.commit_trust(lines, "quorum: 1\n")
    study.approve("reviewer@x", people["owner"])
    assert verdicts(verify_edd(load_edd(study.edd), trust_ref="main")) == {"reviewer@x": "owner"}


def test_owners_may_approve_when_policy_says_so(study, people):
    study.edit("owner@example.com", "owner@x")
    study.commit_trust(trust(people, "owner"), "quorum: 1\nowners_may_approve: true\n")
    study.approve("owner@x", people["owner"])
    assert verify_edd(load_edd(study.edd), trust_ref="main").passed


def test_revoked_key(study, people):
    study.commit_trust(trust(people, "alice"), "quorum: 1\n", revoked=people["alice"].public_line())
    study.approve("alice@x", people["alice"])
    result = verify_edd(load_edd(study.edd), trust_ref="main")
    assert verdicts(result) == {"alice@x": "revoked"}
    assert ".mlaudit/revoked_keys" in result.trust_files


def test_min_seeds(study, people):
    study.commit_trust(trust(people, "alice"), "quorum: 1\nmin_seeds: 10\n")
    study.approve("alice@x", people["alice"])
    result = verify_edd(load_edd(study.edd), trust_ref="main")
    assert result.reasons == ["the EDD plans 8 seed(s); policy min_seeds is 10"]


def test_not_after_is_checked_at_the_given_time(approved):
    late = datetime(2100, 1, 1, tzinfo=timezone.utc)
    result = verify_edd(load_edd(approved.edd), trust_ref="main", at=late)
    assert result.reasons == ["the EDD expired at 2099-12-31T00:00:00Z"]


def test_unreadable_signature_and_bad_names_are_reported_not_fatal(approved):
    (approved.approvals / "bob@x.sig").write_bytes(b"not a signature")
    (approved.approvals / "b\u0430d@x.sig").write_bytes(b"x")  # Cyrillic a
    (approved.approvals / "notes.txt").write_text("ignored")
    result = verify_edd(load_edd(approved.edd), trust_ref="main")
    assert result.passed
    got = verdicts(result)
    assert got["bob@x"] == "invalid"
    assert got["b\u0430d@x"] == "invalid"
    assert len(got) == 4


def test_trust_from_an_older_commit_by_sha(approved, people):
    first = approved.git("rev-parse", "HEAD").strip()
    approved.commit_trust(trust(people, "bob"), POLICY, message="drop alice and carol")
    assert not verify_edd(load_edd(approved.edd), trust_ref="main").passed
    assert verify_edd(load_edd(approved.edd), trust_ref=first).passed


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "main..pr", "main@{1}", "a b", "", "x:y"])
def test_hostile_ref_names_are_usage_errors(approved, run_cli, ref):
    with pytest.raises(UsageError):
        verify_edd(load_edd(approved.edd), trust_ref=ref)
    assert run_cli("edd", "verify", approved.edd, "--trust-ref", ref).exit_code == 2


def test_unknown_ref_and_missing_files(approved, study, run_cli):
    with pytest.raises(TrustError, match="does not name a commit"):
        verify_edd(load_edd(approved.edd), trust_ref="no-such-branch")
    approved.git("checkout", "-q", "--orphan", "empty")
    approved.git("rm", "-q", "-r", "--cached", ".mlaudit")
    approved.git("commit", "-q", "--allow-empty", "-m", "empty")
    with pytest.raises(TrustError, match=r"has no \.mlaudit/allowed_signers"):
        verify_edd(load_edd(approved.edd), trust_ref="empty")


def test_bad_policy_is_reported_with_its_source(study, people, run_cli):
    study.commit_trust(trust(people, "alice"), "quorum: 0\nrequired_roles: [risk]\n")
    with pytest.raises(ValidationFailed) as caught:
        verify_edd(load_edd(study.edd), trust_ref="main")
    assert caught.value.file == "main:.mlaudit/policy.yaml"
    cli = run_cli("edd", "verify", study.edd, "--trust-ref", "main")
    assert cli.exit_code == 1
    assert "main:.mlaudit/policy.yaml:/quorum: 0 is less than the minimum of 1" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_cert_authority_line_is_refused_clearly(study, people, run_cli):
    lines = signers_line("*@x", people["alice"], "cert-authority")
    study.commit_trust(lines, "quorum: 1\n")
    cli = run_cli("edd", "verify", study.edd, "--trust-ref", "main")
    assert cli.exit_code == 1
    assert (
        "main:.mlaudit/allowed_signers: line 1: cert-authority lines are not supported"
        in cli.stderr
    )


def test_trust_dir_warns_loudly(approved, run_cli):
    cli = run_cli("edd", "verify", approved.edd, "--trust-dir", approved.repo / ".mlaudit")
    assert cli.exit_code == 0
    assert "WARNING" in cli.stderr
    assert "NOT from a protected git ref" in cli.stderr
    assert "NOT PROTECTED" in cli.stdout
    result = verify_edd(load_edd(approved.edd), trust_dir=approved.repo)
    assert result.protected is False
    assert result.trust_commit is None


@pytest.mark.parametrize("flags", [[], ["--trust-ref", "main", "--trust-dir", "."]])
def test_exactly_one_trust_source(approved, run_cli, flags):
    assert run_cli("edd", "verify", approved.edd, *flags).exit_code == 2


def test_repo_option_and_at_option(approved, run_cli, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(approved.edd.parent, moved)
    cli = run_cli(
        "edd",
        "verify",
        moved / "edd.yaml",
        "--trust-ref",
        "main",
        "--repo",
        approved.repo,
        "--at",
        "2031-01-01T00:00:00Z",
    )
    assert cli.exit_code == 0, cli.stdout + cli.stderr
    assert (
        run_cli(
            "edd",
            "verify",
            moved / "edd.yaml",
            "--trust-ref",
            "main",
            "--repo",
            approved.repo,
            "--at",
            "yesterday",
        ).exit_code
        == 2
    )


def test_issue_pipeline_command_literally(study, people, tmp_path):
    """`mlaudit edd canonical edd.yaml | ssh-keygen -Y verify ... -s approvals/alice.sig`."""
    folder = study.edd.parent
    (folder / "allowed_signers").write_text(signers_line("alice,alice@x", people["alice"]))
    (folder / "policy.yaml").write_text("quorum: 1\n")
    env_path = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    sign = subprocess.run(
        [
            "mlaudit",
            "edd",
            "sign",
            "edd.yaml",
            "--key",
            str(people["alice"].private),
            "--principal",
            "alice",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env_path,
        check=False,
    )
    assert sign.returncode == 0, sign.stderr
    command = (
        "mlaudit edd canonical edd.yaml | ssh-keygen -Y verify -f allowed_signers "
        "-I alice@x -n mlaudit-edd -s approvals/alice.sig"
    )
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert 'Good "mlaudit-edd" signature for alice@x' in run.stdout + run.stderr
    # mlaudit counts the same approval ...
    result = verify_edd(load_edd(study.edd), trust_dir=folder)
    assert [a.counted for a in result.approvals] == [True]
    # ... and after a one-character change neither accepts it.
    study.edit("max_trials: 100", "max_trials: 101")
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env_path,
        check=False,
    )
    assert run.returncode != 0
    assert [a.counted for a in verify_edd(load_edd(study.edd), trust_dir=folder).approvals] == [
        False
    ]


def test_approval_signed_with_ssh_keygen_directly_counts(study, people):
    # Approvers need not have mlaudit: ssh-keygen -Y sign over the canonical bytes is enough.
    study.commit_trust(trust(people, "alice"), "quorum: 1\n")
    study.approvals.mkdir()
    (study.approvals / "alice@x.sig").write_bytes(ssh_sign(people["alice"], study.canonical()))
    assert verify_edd(load_edd(study.edd), trust_ref="main").passed
