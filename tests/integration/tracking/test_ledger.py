"""Checkpoints and `track verify` against a real server whose SQLite file is tampered with.

Tampering bypasses the store and its triggers the way a database superuser would
(tracking_study.superuser); verify must name the run and, where knowable, the field.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from tracking_study import make_results, superuser

from audit.errors import SignatureError, ValidationFailed
from audit.tracking.checkpoint import check_signature, load_checkpoint, parse_checkpoint
from audit.tracking.client import connect, log_results
from audit.tracking.ledger import fetch_ledger, resolve_experiment
from audit.tracking.ledger_verify import verify_ledger
from audit.tracking.proofs import inclusion_proofs, take_checkpoint


@pytest.fixture
def logged(mlflow_server, tmp_path):
    """A freshly logged study: 4 trials + parent = 5 seals in its own experiment."""
    results = make_results(history_steps=3)
    log_results(results, mlflow_server.uri, spool_dir=tmp_path / "spool")
    client = connect(mlflow_server.uri)
    experiment_id = resolve_experiment(client, results["edd"]["id"])

    def ledger():
        return fetch_ledger(client, mlflow_server.uri, experiment_id)

    return ledger


def _kinds(verification):
    return {(f.kind, f.run_id, f.field) for f in verification.findings}


def test_clean_log_verifies_and_proves_inclusion(logged):
    ledger = logged()
    result = verify_ledger(ledger)
    assert result.ok, result.findings
    assert [leaf.seq for leaf in ledger.leaves] == [0, 1, 2, 3, 4]
    proofs = inclusion_proofs(ledger)
    assert len(proofs) == 5
    assert all(proof.verify() for proof in proofs)
    assert {p.root for p in proofs} == {ledger.root}
    checkpoint = take_checkpoint(ledger)
    assert verify_ledger(logged(), checkpoint).consistent_with_checkpoint is True


def test_changed_metric_is_named_from_the_run_itself(mlflow_server, logged):
    victim = logged().leaves[1]
    with superuser(mlflow_server.db_path) as db:
        changed = db.execute(
            "UPDATE metrics SET value = value + 1 "
            "WHERE run_uuid = ? AND key = 'score' AND step = 2",
            (victim.run_id,),
        ).rowcount
    assert changed == 1
    result = verify_ledger(logged())
    assert _kinds(result) == {("changed-value", victim.run_id, "metrics.score")}
    assert f"seal {victim.seq}" in result.findings[0].message


def test_changed_values_are_named_from_a_checkpoint_with_records(mlflow_server, logged):
    checkpoint = take_checkpoint(logged(), with_records=True)
    first, second = checkpoint.leaves[0]["run_id"], checkpoint.leaves[2]["run_id"]
    with superuser(mlflow_server.db_path) as db:
        db.execute(
            "UPDATE metrics SET value = 42 WHERE run_uuid = ? AND key = 'loss' AND step = 0",
            (first,),
        )
        db.execute(
            "UPDATE params SET value = '7' WHERE run_uuid = ? AND key = 'model.depth'", (second,)
        )
    result = verify_ledger(logged(), checkpoint)
    assert _kinds(result) == {
        ("changed-value", first, "metrics.loss"),
        ("changed-value", second, "params.model.depth"),
    }
    # Only the records changed, not the seals: the log itself still extends the checkpoint.
    assert result.consistent_with_checkpoint is True


def test_deleted_run_is_named(mlflow_server, logged):
    checkpoint = take_checkpoint(logged())
    victim = checkpoint.leaves[2]["run_id"]
    with superuser(mlflow_server.db_path) as db:
        for table in ("metrics", "latest_metrics", "params", "tags"):
            db.execute(f"DELETE FROM {table} WHERE run_uuid = ?", (victim,))
        db.execute("DELETE FROM runs WHERE run_uuid = ?", (victim,))
    alone = verify_ledger(logged())
    assert ("missing-seq", None, "tags.mlaudit.seal.seq") in _kinds(alone)
    result = verify_ledger(logged(), checkpoint)
    kinds = _kinds(result)
    assert ("missing-seq", victim, "tags.mlaudit.seal.seq") in kinds
    assert ("deleted-run", victim, None) in kinds
    assert result.consistent_with_checkpoint is False


def test_dropped_seal_is_named(mlflow_server, logged):
    victim = logged().leaves[3]
    with superuser(mlflow_server.db_path) as db:
        db.execute(
            "DELETE FROM tags WHERE run_uuid = ? AND key LIKE 'mlaudit.seal.%'", (victim.run_id,)
        )
    result = verify_ledger(logged())
    kinds = _kinds(result)
    assert ("unsealed-run", victim.run_id, "tags.mlaudit.seal.seq") in kinds
    assert any(f.kind == "missing-seq" and f.seq == victim.seq for f in result.findings)


def test_reordered_seals_are_named(mlflow_server, logged):
    checkpoint = take_checkpoint(logged())
    one, two = checkpoint.leaves[1]["run_id"], checkpoint.leaves[2]["run_id"]
    with superuser(mlflow_server.db_path) as db:
        swap = "UPDATE tags SET value = ? WHERE run_uuid = ? AND key = 'mlaudit.seal.seq'"
        db.execute(swap, ("2", one))
        db.execute(swap, ("1", two))
    assert verify_ledger(logged()).ok  # contiguous and intact: only a checkpoint sees this
    result = verify_ledger(logged(), checkpoint)
    assert _kinds(result) == {
        ("reordered-seals", one, "tags.mlaudit.seal.seq"),
        ("reordered-seals", two, "tags.mlaudit.seal.seq"),
    }
    assert result.consistent_with_checkpoint is False


def test_truncated_log_is_named(mlflow_server, logged):
    checkpoint = take_checkpoint(logged())
    last = checkpoint.leaves[-1]["run_id"]
    with superuser(mlflow_server.db_path) as db:
        for table in ("metrics", "latest_metrics", "params", "tags"):
            db.execute(f"DELETE FROM {table} WHERE run_uuid = ?", (last,))
        db.execute("DELETE FROM runs WHERE run_uuid = ?", (last,))
    result = verify_ledger(logged(), checkpoint)
    assert _kinds(result) == {("truncated-log", last, None)}
    assert "had 5" in result.findings[0].message


def test_rewritten_history_with_recomputed_seal_is_named(mlflow_server, logged):
    checkpoint = take_checkpoint(logged())
    victim = checkpoint.leaves[0]["run_id"]
    with superuser(mlflow_server.db_path) as db:
        for table in ("metrics", "latest_metrics"):
            db.execute(
                f"UPDATE {table} SET value = 0.99 WHERE run_uuid = ? AND key = 'score'",
                (victim,),
            )
    # The forger recomputes the record and rewrites the seal so the run looks intact.
    import hashlib

    forged = hashlib.sha256(logged().records[victim]).hexdigest()
    with superuser(mlflow_server.db_path) as db:
        db.execute(
            "UPDATE tags SET value = ? WHERE run_uuid = ? AND key = 'mlaudit.seal.sha256'",
            (forged, victim),
        )
    assert verify_ledger(logged()).ok  # self-consistent now: only the checkpoint catches it
    result = verify_ledger(logged(), checkpoint)
    assert _kinds(result) == {("rewritten-history", victim, "tags.mlaudit.seal.sha256")}


def test_inserted_run_is_named(mlflow_server, logged, tmp_path):
    checkpoint = take_checkpoint(logged())
    # A new run sealed by the store (seq 5), then moved into the checkpointed history.
    extra = make_results(edd_id="intruder", seeds=(0,), arms=("baseline",))
    experiment = logged().runs[0].info.experiment_id
    client = connect(mlflow_server.uri)
    name = client.get_experiment(experiment).name
    summary = log_results(extra, mlflow_server.uri, spool_dir=tmp_path, experiment=name)
    intruder = summary.created["baseline/0"]
    ledger = logged()
    assert ledger.size == 7
    with superuser(mlflow_server.db_path) as db:
        for leaf in ledger.leaves:
            seq = leaf.seq
            if leaf.run_id == intruder:
                seq = 1
            elif 1 <= leaf.seq < 5:
                seq = leaf.seq + 1
            db.execute(
                "UPDATE tags SET value = ? WHERE run_uuid = ? AND key = 'mlaudit.seal.seq'",
                (str(seq), leaf.run_id),
            )
    result = verify_ledger(logged(), checkpoint)
    assert ("inserted-run", intruder, None) in _kinds(result)
    assert result.consistent_with_checkpoint is False


def _ssh_key(tmp_path):
    key = tmp_path / "checkpoint_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ledger", "-f", str(key)], check=True
    )
    return key


def test_cli_signed_checkpoint_then_verify(mlflow_server, logged, tmp_path, run_cli):
    experiment = logged().experiment_id
    key = _ssh_key(tmp_path)
    out = tmp_path / "checkpoint.json"
    made = run_cli(
        "track", "checkpoint", "--tracking-uri", mlflow_server.uri, "--experiment", experiment,
        "--sign-key", key, "-o", out, "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    document = json.loads(made.stdout)
    assert document == json.loads(out.read_text())
    assert document["size"] == 5
    assert document["note"].splitlines()[0] == document["origin"]
    assert document["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    # Plain ssh-keygen can check the signature too.
    signers = tmp_path / "allowed"
    signers.write_text("ledger " + key.with_suffix(".pub").read_text())
    sig = tmp_path / "note.sig"
    sig.write_text(document["signature"])
    check = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "ledger",
         "-n", "mlaudit-checkpoint", "-s", str(sig)],
        input=document["note"].encode(), capture_output=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr

    ok = run_cli("track", "verify", "--tracking-uri", mlflow_server.uri, "--checkpoint", out)
    assert ok.exit_code == 0, ok.stderr
    assert "OK:" in ok.stdout
    assert "extends the checkpoint of size 5" in ok.stdout
    assert document["signer"] in ok.stdout

    forged = dict(document, root="0" * 64)
    out.write_text(json.dumps(forged))
    bad = run_cli("track", "verify", "--tracking-uri", mlflow_server.uri, "--checkpoint", out)
    assert bad.exit_code == 1
    assert "signature" in bad.stderr
    forged_checkpoint = load_checkpoint(out)
    with pytest.raises(SignatureError):
        check_signature(forged_checkpoint)


def test_cli_verify_names_tampering(mlflow_server, logged, run_cli):
    ledger = logged()
    victim = ledger.leaves[4].run_id
    with superuser(mlflow_server.db_path) as db:
        db.execute("DELETE FROM tags WHERE run_uuid = ? AND key = 'mlaudit.seal.sha256'", (victim,))
    text = run_cli(
        "track", "verify", "--tracking-uri", mlflow_server.uri, "--experiment", ledger.experiment_id
    )
    assert text.exit_code == 1
    line = next(x for x in text.stderr.splitlines() if "unsealed-run" in x)
    assert line.startswith("FAIL  unsealed-run")
    assert f"run {victim}" in line
    assert line.endswith(": tags.mlaudit.seal.sha256]")
    as_json = run_cli(
        "track", "verify", "--tracking-uri", mlflow_server.uri,
        "--experiment", ledger.experiment_id, "--json",
    )  # fmt: skip
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["findings"][0]["run_id"] == victim


def test_bad_checkpoint_file_is_one_clear_line(mlflow_server, tmp_path, run_cli):
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"origin": "x", "size": -1, "root": "zz"}))
    result = run_cli("track", "verify", "--tracking-uri", mlflow_server.uri, "--checkpoint", path)
    assert result.exit_code == 1
    assert f"{path}:/root: must be a sha256 hex digest" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(ValidationFailed) as failed:
        parse_checkpoint({"origin": "o", "size": 1, "root": "a" * 64, "leaves": [{}]}, "f")
    assert failed.value.problems == [("/leaves/0", "must be {seq: 0, run_id, sha256}")]


def test_the_rest_reader_fetches_the_ledger_mlflows_client_fetches(mlflow_server, tmp_path):
    """checkpoint, gate, bundle and finish read with requests alone: the same ledger."""
    from audit.errors import UsageError
    from audit.tracking.rest import RestClient, connect_reader

    results = make_results(history_steps=3)
    log_results(results, mlflow_server.uri, spool_dir=tmp_path / "spool")
    rest, client = connect_reader(mlflow_server.uri), connect(mlflow_server.uri)
    assert isinstance(rest, RestClient)
    name = results["edd"]["id"]
    experiment_id = resolve_experiment(client, name)
    assert resolve_experiment(rest, name) == resolve_experiment(rest, experiment_id)
    assert resolve_experiment(rest, experiment_id) == experiment_id
    with pytest.raises(UsageError, match="no experiment named or numbered"):
        resolve_experiment(rest, "no-such-experiment-anywhere")

    def without_a_name(reader):  # the only experiment with runs, or why not
        try:
            return resolve_experiment(reader, None)
        except UsageError as error:
            return error.message

    assert without_a_name(rest) == without_a_name(client)
    ours = fetch_ledger(rest, mlflow_server.uri, experiment_id)
    theirs = fetch_ledger(client, mlflow_server.uri, experiment_id)
    assert ours.leaves == theirs.leaves
    assert ours.records == theirs.records
    assert verify_ledger(ours).ok
