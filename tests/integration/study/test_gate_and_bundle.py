"""Gate and audit bundle on a real small study: real git, DVC, ssh-keygen and MLflow server."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest
from toystudy import ToyStudy, build_toy_study, gate_args, mlaudit

from audit.bundle import layout
from audit.bundle.archive import read_archive, write_archive
from audit.bundle.attestation import envelope, statement

pytestmark = pytest.mark.slow


def _edd_id(toy: ToyStudy) -> str:
    return json.loads((toy.out / "results.json").read_text())["edd"]["id"]


def _bundle(toy: ToyStudy, target: Path, uri: str, *extra: str | Path) -> Path:
    mlaudit(
        "bundle",
        "create",
        "-o",
        target,
        "--edd",
        toy.edd,
        "--dir",
        toy.out,
        "--trust-ref",
        "main",
        "--tracking-uri",
        uri,
        "--experiment",
        _edd_id(toy),
        *extra,
        cwd=toy.repo,
    )
    return target


def test_gate_passes_with_every_rule_and_sealed_trials(study):
    gate = json.loads((study.out / "gate.json").read_text())
    assert gate["passed"], gate["reasons"]
    rules = [r["rule"] for r in gate["rules"]]
    assert rules[-1] == "tracking-sealed"
    junit = ElementTree.parse(study.out / "gate.xml").getroot()
    assert [case.get("name") for case in junit.iter("testcase")] == rules


def test_gate_json_text_and_exit_code_agree(study):
    out = mlaudit("gate", *gate_args(study), "--json", cwd=study.repo)
    assert json.loads(out)["passed"] is True
    text = mlaudit("gate", *gate_args(study), cwd=study.repo)
    assert text.strip().endswith("gate: PASSED")


def test_gate_fails_on_a_hand_edited_analysis(study, tmp_path):
    analysis = json.loads((study.out / "analysis.json").read_text())
    for comparison in analysis["comparisons"]:
        comparison["delta"]["value"] += 1.0
    forged = tmp_path / "analysis.json"
    forged.write_text(json.dumps(analysis))
    (tmp_path / "results.json").write_bytes((study.out / "results.json").read_bytes())
    out = mlaudit("gate", *gate_args(study, tmp_path), "--json", cwd=study.repo, check=False)
    document = json.loads(out)
    assert not document["passed"]
    failed = {r["rule"]: r["evidence"] for r in document["rules"] if not r["passed"]}
    assert "recomputed" in failed["claims"]


def test_gate_fails_when_results_do_not_match_the_analysis(study, tmp_path):
    results = json.loads((study.out / "results.json").read_text())
    results["trials"][0]["metrics"]["score"] = 0.1
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "analysis.json").write_bytes((study.out / "analysis.json").read_bytes())
    document = json.loads(
        mlaudit("gate", *gate_args(study, tmp_path), "--json", cwd=study.repo, check=False)
    )
    failed = {r["rule"]: r["evidence"] for r in document["rules"] if not r["passed"]}
    assert "different results.json" in failed["edd-verified"]


def test_bundle_is_byte_identical_for_the_same_inputs(study, mlflow_server, tmp_path):
    first = _bundle(study, tmp_path / "1.tar.gz", mlflow_server.uri)
    second = _bundle(study, tmp_path / "2.tar.gz", mlflow_server.uri)
    assert first.read_bytes() == second.read_bytes()
    members = read_archive(first)
    assert layout.MANIFEST in members
    assert layout.INDEX in members
    records = [n for n in members if n.startswith(layout.RECORDS_DIR)]
    trials = json.loads((study.out / "results.json").read_text())["trials"]
    assert len(records) >= len(trials)


@pytest.fixture(scope="module")
def signed_bundle(study, mlflow_server, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    return _bundle(study, target, mlflow_server.uri, "--sign-key", study.keys / "alice")


def test_signed_bundle_verifies_offline(signed_bundle, study):
    report = json.loads(mlaudit("bundle", "verify", signed_bundle, "--json", cwd=study.repo))
    assert report["passed"], report["findings"]
    assert all(check["passed"] for check in report["checks"])
    assert any("signed by SHA256:" in note for note in report["notes"])
    text = mlaudit("bundle", "verify", signed_bundle, cwd=study.repo)
    assert (
        text.strip().splitlines()[-1] == f"bundle: VERIFIED; gate for {_edd_id(study)} v1: PASSED"
    )


def test_bundle_verify_names_a_metrics_file_changed_after_the_run(study, mlflow_server, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(study.out, out)
    trial = json.loads((out / "results.json").read_text())["trials"][0]
    changed = out / trial["trial_dir"] / "metrics.json"
    changed.write_text(changed.read_text().replace("0", "1", 1))
    copy = ToyStudy(study.repo, study.edd, study.keys, out)
    bundle = _bundle(copy, tmp_path / "bundle.tar.gz", mlflow_server.uri)
    member = f"{layout.METRIC_SOURCES_DIR}/{trial['trial_dir']}/metrics.json"
    assert member in read_archive(bundle)
    report = json.loads(mlaudit("bundle", "verify", bundle, "--json", cwd=study.repo, check=False))
    assert not report["passed"]
    (finding,) = report["findings"]
    assert finding["id"] == "metric-sources"
    assert finding["pointer"] == member
    assert "changed after the run" in finding["reason"]


def _rewrite(source: Path, target: Path, change, *, reseal: bool) -> Path:
    """Change members; with reseal, also fix the manifest and attestation like a forger would."""
    members = read_archive(source)
    change(members)
    if reseal:
        import hashlib

        manifest = json.loads(members[layout.MANIFEST])
        manifest["files"] = {
            name: hashlib.sha256(data).hexdigest()
            for name, data in sorted(members.items())
            if name not in (layout.MANIFEST, layout.ATTESTATION)
        }
        manifest["signed"] = False
        members[layout.MANIFEST] = json.dumps(manifest).encode()
        rest = {n: d for n, d in members.items() if n != layout.ATTESTATION}
        members[layout.ATTESTATION] = json.dumps(envelope(statement(rest, {}), None)).encode()
    with target.open("wb") as handle:
        write_archive(members, handle)
    return target


def _edit_json(name: str, edit):
    def change(members: dict[str, bytes]) -> None:
        document = json.loads(members[name])
        edit(document)
        members[name] = json.dumps(document).encode()

    return change


def _first_record(members: dict[str, bytes]) -> str:
    return sorted(n for n in members if n.startswith(layout.RECORDS_DIR + "/"))[0]


def _tamper_record(members: dict[str, bytes]) -> None:
    name = _first_record(members)
    entry = json.loads(members[name])
    entry["record"]["params"]["forged"] = "1"
    members[name] = json.dumps(entry).encode()


def _drop_signer(members: dict[str, bytes]) -> None:
    path = f"{layout.TRUST_DIR}/allowed_signers"
    members[path] = members[path].splitlines(keepends=True)[0]


def _drop_approval(members: dict[str, bytes]) -> None:
    del members[sorted(n for n in members if n.startswith(layout.APPROVALS_DIR))[0]]


def _edit_edd(members: dict[str, bytes]) -> None:
    name = sorted(n for n in members if n.startswith("edd/") and n.endswith(".yaml"))[0]
    members[name] = members[name].replace(b"title: Toy study", b"title: Forged study")


def _set(path: list[str], value):
    def edit(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


TAMPERS = {
    "results-metric": (
        _edit_json(layout.RESULTS, lambda d: d["trials"][0]["metrics"].update(score=0.1)),
        "results/analysis.json:/results_sha256",
    ),
    "analysis-verdict": (
        _edit_json(layout.ANALYSIS, lambda d: d["comparisons"][0].update(verdict="not-shown")),
        "results/analysis.json:/comparisons/0/verdict",
    ),
    "gate-rule": (
        _edit_json(layout.GATE, lambda d: d["rules"][0].update(passed=False)),
        "results/gate.json:/rules/edd-verified",
    ),
    "sealed-record": (_tamper_record, "/record: recomputed record digest differs"),
    "checkpoint-root": (
        _edit_json(layout.CHECKPOINT, _set(["root"], "00" * 32)),
        "/inclusion_proof: does not prove inclusion",
    ),
    "trust-signer-removed": (_drop_signer, "/approvals"),
    "approval-removed": (_drop_approval, "/approvals"),
    "edd-edited": (_edit_edd, "EDD digest differs"),
}


@pytest.mark.parametrize("reseal", [False, True], ids=["naive", "resealed"])
@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_verify_names_every_tampered_member(signed_bundle, study, tmp_path, kind, reseal):
    change, expected = TAMPERS[kind]
    forged = _rewrite(signed_bundle, tmp_path / "forged.tar.gz", change, reseal=reseal)
    out = mlaudit("bundle", "verify", forged, "--json", cwd=study.repo, check=False)
    report = json.loads(out)
    assert not report["passed"]
    findings = [f"{f['pointer']}: {f['reason']}" for f in report["findings"]]
    if reseal:
        assert any(expected in finding for finding in findings), findings
    else:
        naive = ("does not match its sha256", "missing from the bundle")
        assert any(n in finding for finding in findings for n in naive), findings


def test_verify_refuses_a_hostile_archive_without_writing(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    hostile = tmp_path / "inner" / "hostile.tar.gz"
    hostile.parent.mkdir()
    hostile.write_bytes(gzip.compress(raw.getvalue()))
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "bundle", "verify", str(hostile)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "path traversal" in proc.stderr
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner"]


def test_logged_after_the_run_gate_and_bundle_find_every_sealed_trial(tmp_path, mlflow_server):
    """The CI flow: shards run without a server, `track log` logs the collected results.

    results.json then carries no run ids; gate and bundle find each trial's sealed run
    by its idempotency key instead.
    """
    toy = build_toy_study(tmp_path, edd_id=f"toy-{uuid.uuid4().hex[:8]}")
    uri = mlflow_server.uri
    repo, out = toy.repo, toy.out
    mlaudit("ablate", "run", toy.edd, "--trust-ref", "main", "--out", out, cwd=repo)
    results = json.loads((out / "results.json").read_text())
    assert not any(t.get("mlflow_run_id") for t in results["trials"])
    mlaudit(
        "track",
        "log",
        out / "results.json",
        "--tracking-uri",
        uri,
        "--spool",
        tmp_path / "spool",
        cwd=repo,
    )
    mlaudit("ablate", "analyze", out / "results.json", "-o", out / "analysis.json", cwd=repo)
    document = json.loads(
        mlaudit(
            "gate",
            *gate_args(toy),
            "--tracking-uri",
            uri,
            "--experiment",
            results["edd"]["id"],
            "-o",
            out / "gate.json",
            "--json",
            cwd=repo,
        )
    )
    assert document["passed"], document["reasons"]
    assert document["rules"][-1]["rule"] == "tracking-sealed"
    bundle = _bundle(toy, tmp_path / "bundle.tar.gz", uri)
    records = [n for n in read_archive(bundle) if n.startswith(layout.RECORDS_DIR)]
    assert len(records) == len(results["trials"]) + 1  # every trial and the parent run
    report = json.loads(mlaudit("bundle", "verify", bundle, "--json", cwd=repo))
    assert report["passed"], report["findings"]


# -- sealed runs are the evidence ------------------------------------------------------


def _lower_scores(document: dict) -> list[str]:
    """Lower every score of one arm by 0.1, as a forger would after logging; the edited ids."""
    arm = next(a["name"] for a in document["plan"]["arms"] if a["name"] != "baseline")
    edited = []
    for trial in document["trials"]:
        if trial["arm"] == arm and "score" in trial.get("metrics", {}):
            trial["metrics"]["score"] -= 0.1
            edited.append(trial["trial_id"])
    return edited


def _omit_trial(document: dict) -> list[str]:
    dropped = document["trials"].pop(1)
    return [dropped["trial_id"]]


def _forge_study(study: ToyStudy, target: Path, edit) -> list[str]:
    """results.json edited after logging and the analysis redone to match it."""
    results = json.loads((study.out / "results.json").read_text())
    touched = edit(results)
    (target / "results.json").write_text(json.dumps(results, indent=2))
    mlaudit(
        "ablate",
        "analyze",
        target / "results.json",
        "-o",
        target / "analysis.json",
        cwd=study.repo,
    )
    return touched


@pytest.mark.parametrize(
    ("edit", "field"), [(_lower_scores, "metrics.score"), (_omit_trial, "trial")]
)
def test_gate_fails_when_results_differ_from_the_sealed_runs(
    study, mlflow_server, tmp_path, edit, field
):
    touched = _forge_study(study, tmp_path, edit)
    out = mlaudit(
        "gate",
        *gate_args(study, tmp_path),
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment",
        _edd_id(study),
        "--checkpoint",
        study.out / "checkpoint.json",
        "--json",
        cwd=study.repo,
        check=False,
    )
    document = json.loads(out)
    assert not document["passed"]
    failed = {r["rule"]: r["evidence"] for r in document["rules"] if not r["passed"]}
    for trial in touched:
        assert f"trial {trial}: {field}" in failed["tracking-sealed"]
    if field == "metrics.score":
        # The analysis the gate recomputes comes from the sealed values, not the edited ones.
        assert "recomputed" in failed["claims"]


def _forge_bundle_results(edit):
    def change(members: dict[str, bytes]) -> None:
        import hashlib

        from audit.stats import analyze_results

        results = json.loads(members[layout.RESULTS])
        edit(results)
        raw = json.dumps(results).encode()
        members[layout.RESULTS] = raw
        analysis = analyze_results(results, results_sha256=hashlib.sha256(raw).hexdigest())
        members[layout.ANALYSIS] = json.dumps(analysis).encode()

    return change


@pytest.mark.parametrize(
    ("edit", "field"), [(_lower_scores, "metrics.score"), (_omit_trial, "trial")]
)
def test_bundle_verify_fails_when_results_differ_from_the_sealed_records(
    signed_bundle, study, tmp_path, edit, field
):
    results = json.loads((study.out / "results.json").read_text())
    touched = edit(results)
    forged = _rewrite(
        signed_bundle, tmp_path / "forged.tar.gz", _forge_bundle_results(edit), reseal=True
    )
    report = json.loads(mlaudit("bundle", "verify", forged, "--json", cwd=study.repo, check=False))
    assert not report["passed"]
    messages = [f["reason"] for f in report["findings"] if f["pointer"].startswith(layout.RESULTS)]
    for trial in touched:
        assert any(m.startswith(f"trial {trial}: {field}: ") for m in messages), messages


def test_written_documents_follow_their_schemas(study):
    from audit._resources import schema_problems

    for name in ("results", "analysis", "gate", "checkpoint"):
        document = json.loads((study.out / f"{name}.json").read_text())
        assert schema_problems(document, name) == [], name


def test_bundle_create_without_created_at_is_an_input_error(study, tmp_path):
    results = json.loads((study.out / "results.json").read_text())
    del results["created_at"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "bundle",
            "create",
            "-o",
            str(tmp_path / "b.tar.gz"),
            "--edd",
            str(study.edd),
            "--dir",
            str(study.out),
            "--results",
            str(tmp_path / "results.json"),
            "--trust-ref",
            "main",
        ],
        cwd=study.repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "/created_at" in proc.stderr
    assert "internal error" not in proc.stderr


def test_gate_names_a_flipped_verdict_and_a_removed_comparison(study, tmp_path):
    analysis = json.loads((study.out / "analysis.json").read_text())
    claimed = [i for i, c in enumerate(analysis["comparisons"]) if c.get("claim")]
    flipped = analysis["comparisons"][claimed[0]]
    flipped["verdict"] = "not-shown" if flipped["verdict"] != "not-shown" else "improves"
    removed = analysis["comparisons"].pop(claimed[-1])
    (tmp_path / "analysis.json").write_text(json.dumps(analysis))
    (tmp_path / "results.json").write_bytes((study.out / "results.json").read_bytes())
    out = mlaudit("gate", *gate_args(study, tmp_path), "--json", cwd=study.repo, check=False)
    claims = {r["rule"]: r["evidence"] for r in json.loads(out)["rules"]}["claims"]
    assert f"/comparisons/{claimed[0]}/verdict for {flipped['target']}" in claims
    assert f"lacks the comparison {removed['target']} on {removed['metric']}" in claims


def test_bundle_from_the_gates_sealed_evidence_equals_the_live_one(study, mlflow_server, tmp_path):
    """bundle create reuses what the gate judged (gate --sealed-out): same bundle, no server."""
    sealed = tmp_path / "sealed.json"
    mlaudit(
        "gate",
        *gate_args(study),
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment",
        _edd_id(study),
        "--checkpoint",
        study.out / "checkpoint.json",
        "--sealed-out",
        sealed,
        cwd=study.repo,
    )
    offline = tmp_path / "offline.tar.gz"
    common = ["--edd", study.edd, "--dir", study.out, "--trust-ref", "main"]
    mlaudit("bundle", "create", "-o", offline, *common, "--sealed", sealed, cwd=study.repo)
    live = _bundle(study, tmp_path / "live.tar.gz", mlflow_server.uri)
    assert offline.read_bytes() == live.read_bytes()
    report = json.loads(mlaudit("bundle", "verify", offline, "--json", cwd=study.repo))
    assert report["passed"], report["findings"]

    document = json.loads(sealed.read_text())
    # Records are in run-id order; the study's parent run (it has no metrics) may be first.
    index = next(i for i, r in enumerate(document["records"]) if r["record"]["metrics"])
    record = document["records"][index]["record"]
    key = sorted(record["metrics"])[0]
    record["metrics"][key][0][2] += 0.1
    sealed.write_text(json.dumps(document))
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "bundle", "create", "-o", str(tmp_path / "x.tar.gz")]
        + [str(a) for a in common]
        + ["--sealed", str(sealed)],
        cwd=study.repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        f"{sealed}:/records/{index}: recomputed record digest differs from its seal" in proc.stderr
    )


def test_judge_study_is_what_mlaudit_gate_decides(study, mlflow_server, monkeypatch):
    """The facade the fork-safe publisher calls gives gate.json's decision, rule for rule."""
    from audit.evidence import StudyFiles, TrackingSource, TrustSource, judge_study

    monkeypatch.chdir(study.repo)
    result = judge_study(
        StudyFiles(study.edd, study.out / "results.json", study.out / "analysis.json"),
        TrustSource("main", study.repo),
        tracking=TrackingSource(mlflow_server.uri, _edd_id(study), study.out / "checkpoint.json"),
    )
    assert result.to_dict() == json.loads((study.out / "gate.json").read_text())


def test_a_comparison_the_signed_design_does_not_imply_is_refused(study, tmp_path):
    # The signed design decides what is compared: flipping a recorded comparison would flip
    # every delta of its target, so analyze refuses it and the gate names it.
    results = json.loads((study.out / "results.json").read_text())
    first = results["plan"]["comparisons"][0]
    first["candidate_arm"], first["comparator_arm"] = first["comparator_arm"], "baseline"
    (tmp_path / "results.json").write_text(json.dumps(results))
    argv = ["ablate", "analyze", tmp_path / "results.json", "-o", tmp_path / "analysis.json"]
    analyze = subprocess.run(
        [sys.executable, "-m", "audit", *argv],
        cwd=study.repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert analyze.returncode == 1, analyze.stderr
    assert "/plan/comparisons/0" in analyze.stderr
    assert "is not one the signed design implies" in analyze.stderr
    (tmp_path / "analysis.json").write_bytes((study.out / "analysis.json").read_bytes())
    document = json.loads(
        mlaudit("gate", *gate_args(study, tmp_path), "--json", cwd=study.repo, check=False)
    )
    failed = {r["rule"]: r["evidence"] for r in document["rules"] if not r["passed"]}
    assert "is not one the signed design implies" in failed["protocol-as-signed"]


# -- mlaudit finish: the steps after the run in one process ------------------------------

FINISHED = (
    "analysis.json",
    "gate.json",
    "gate.junit.xml",
    "report.md",
    "report.html",
    "audit.bundle.tar.gz",
)


def _finish(
    study: ToyStudy, out: Path, uri: str, *extra: str | Path
) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "audit", "finish", out, "--edd", study.edd]
    argv += ["--trust-ref", "main", "--tracking-uri", uri, "--experiment", _edd_id(study)]
    return subprocess.run(
        [*argv, *extra],
        cwd=study.repo,
        capture_output=True,
        text=True,
        check=False,
    )


def _separate_steps(study: ToyStudy, out: Path, uri: str) -> None:
    """What CI's separate jobs run, on the checkpoint `finish` took."""
    files = {name: out / name for name in (*FINISHED, "results.json", "checkpoint.json")}
    tracking = ["--tracking-uri", uri, "--experiment", _edd_id(study)]
    tracking += ["--checkpoint", str(files["checkpoint.json"])]
    mlaudit(
        "ablate", "analyze", files["results.json"], "-o", files["analysis.json"], cwd=study.repo
    )
    mlaudit(
        "gate", *gate_args(study, out), *tracking, "-o", files["gate.json"],
        "--junit", files["gate.junit.xml"], cwd=study.repo, check=False,
    )  # fmt: skip
    for fmt in ("md", "html"):
        mlaudit(
            "report", "render", files["analysis.json"], "--results", files["results.json"],
            "--checkpoint", files["checkpoint.json"], "--gate", files["gate.json"],
            "--format", fmt, "-o", files[f"report.{fmt}"], cwd=study.repo,
        )  # fmt: skip
    mlaudit(
        "bundle", "create", "-o", files["audit.bundle.tar.gz"], "--edd", study.edd,
        "--dir", out, "--trust-ref", "main", *tracking, cwd=study.repo,
    )  # fmt: skip


def test_finish_without_a_tracking_server_says_nothing_was_sealed(study, tmp_path):
    # The study as a run without --tracking-uri leaves it: logged nowhere.
    results = json.loads((study.out / "results.json").read_text())
    results.pop("tracking", None)
    for trial in results["trials"]:
        trial["mlflow_run_id"] = None
    (tmp_path / "results.json").write_text(json.dumps(results))
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "finish", tmp_path, "--edd", study.edd,
         "--trust-ref", "main"],
        cwd=study.repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "mlaudit finish: checkpoint: none (no --tracking-uri" in proc.stderr
    assert not (tmp_path / "checkpoint.json").exists()
    # The auditor is told which checks had nothing to check, not only that they passed.
    verify = [sys.executable, "-m", "audit", "bundle", "verify", tmp_path / "audit.bundle.tar.gz"]
    text = subprocess.run(verify, capture_output=True, text=True, check=False, cwd=study.repo)
    assert "tracking-records" in text.stdout + text.stderr
    assert "nothing to check: the study was not logged to MLflow" in text.stdout + text.stderr
    report = json.loads(
        subprocess.run([*verify, "--json"], capture_output=True, text=True, cwd=study.repo).stdout
    )
    unchecked = {c["check"]: c.get("nothing_to_check") for c in report["checks"] if c["passed"]}
    assert unchecked["tracking-records"] == "the study was not logged to MLflow"
    assert unchecked["checkpoint-timestamp"] == "the bundle has no checkpoint"
    assert unchecked["results-sealed"] == "no sealed records to compare results.json with"
    assert unchecked["analysis-recomputed"] is None  # checked for real


def test_finish_writes_what_the_separate_commands_write(study, mlflow_server, tmp_path):
    together, apart = tmp_path / "finish", tmp_path / "separate"
    for folder in (together, apart):
        folder.mkdir()
        (folder / "results.json").write_bytes((study.out / "results.json").read_bytes())
    proc = _finish(study, together, mlflow_server.uri, "--with-records")
    assert proc.returncode == 0, proc.stderr
    assert "gate: PASSED\n" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("bundle: VERIFIED (")
    (apart / "checkpoint.json").write_bytes((together / "checkpoint.json").read_bytes())
    _separate_steps(study, apart, mlflow_server.uri)
    for name in FINISHED:
        assert (together / name).read_bytes() == (apart / name).read_bytes(), name
    # The checkpoint it took is the one `track checkpoint` takes (but for the clock).
    taken = mlaudit(
        "track", "checkpoint", "--tracking-uri", mlflow_server.uri, "--experiment",
        _edd_id(study), "--with-records", "--json", cwd=study.repo,
    )  # fmt: skip
    ours = json.loads((together / "checkpoint.json").read_text())
    theirs = json.loads(taken)
    assert {**ours, "taken_at": None} == {**theirs, "taken_at": None}
    report = json.loads(
        mlaudit("bundle", "verify", together / "audit.bundle.tar.gz", "--json", cwd=study.repo)
    )
    assert report["passed"], report["findings"]
    # Its own check of the bundle is `bundle verify`'s, check for check.
    checkpoint = together / "checkpoint.json"
    again = _finish(study, together, mlflow_server.uri, "--checkpoint", checkpoint, "--json")
    assert again.returncode == 0, again.stderr
    verification = json.loads(again.stdout)["bundle_verification"]
    assert verification["checks"] == report["checks"]
    assert verification["passed"]
    assert verification["decision"] == report["decision"]


def test_finish_recomputes_from_the_sealed_runs_when_results_were_edited(
    study, mlflow_server, tmp_path
):
    """An analysis computed from edited results is never taken as the gate's recomputation."""
    results = json.loads((study.out / "results.json").read_text())
    touched = _lower_scores(results)
    (tmp_path / "results.json").write_text(json.dumps(results, indent=2))
    proc = _finish(
        study, tmp_path, mlflow_server.uri, "--checkpoint", study.out / "checkpoint.json"
    )
    assert proc.returncode == 1, proc.stderr
    gate = json.loads((tmp_path / "gate.json").read_text())
    failed = {r["rule"]: r["evidence"] for r in gate["rules"] if not r["passed"]}
    assert f"trial {touched[0]}: metrics.score" in failed["tracking-sealed"]
    # Its check of the bundle finds what `bundle verify` finds: results the seals contradict.
    assert "gate: FAILED\n" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("bundle: FAILED (")
    assert "results-sealed" in proc.stderr
    assert "recomputed" in failed["claims"]
    # The report and the bundle are still made, showing the failed gate.
    assert "FAILED" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "audit.bundle.tar.gz").is_file()


def test_gate_names_every_edited_number_a_verdict_rests_on(study, tmp_path):
    analysis = json.loads((study.out / "analysis.json").read_text())
    index = next(i for i, c in enumerate(analysis["comparisons"]) if c.get("claim"))
    pointers = ("p_value/value", "claim_bound/value", "ci/high")
    for pointer in pointers:
        section, key = pointer.split("/")
        analysis["comparisons"][index][section][key] += 0.01
    (tmp_path / "analysis.json").write_text(json.dumps(analysis))
    (tmp_path / "results.json").write_bytes((study.out / "results.json").read_bytes())
    out = mlaudit("gate", *gate_args(study, tmp_path), "--json", cwd=study.repo, check=False)
    claims = {r["rule"]: r["evidence"] for r in json.loads(out)["rules"]}["claims"]
    for pointer in pointers:
        assert f"analysis.json /comparisons/{index}/{pointer} for" in claims
