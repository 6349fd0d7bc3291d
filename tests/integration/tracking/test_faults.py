"""Faults: server unreachable, server killed mid-logging, many concurrent loggers.

Each ends with the same two checks: every trial is present exactly once (one run per
idempotency key) and `track verify` passes (contiguous seals, records intact).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from tracking_study import FlakyProxy, make_results

from audit.tracking.client import ProtocolLogger, connect, log_results, search_all
from audit.tracking.ledger import fetch_ledger, resolve_experiment
from audit.tracking.ledger_verify import verify_ledger
from audit.tracking.replay import flush
from audit.tracking.retry import RetryPolicy
from audit.tracking.runspec import PARENT_RUN_TAG, ROLE_TAG, TRIAL_KEY_TAG
from audit.tracking.server import ManagedServer, free_port
from audit.tracking.spool import Spool, read_spool_file

FAST_GIVE_UP = RetryPolicy(attempts=2, initial_delay=0.05, deadline=1.0)


def _exactly_once(uri: str, experiment: str, results: dict) -> None:
    client = connect(uri)
    experiment_id = resolve_experiment(client, experiment)
    runs = list(search_all(client, experiment_id, ""))
    keys = Counter(r.data.tags.get(TRIAL_KEY_TAG) for r in runs if TRIAL_KEY_TAG in r.data.tags)
    assert len(keys) == len(results["trials"])
    assert set(keys.values()) == {1}
    assert all(r.info.status == "FINISHED" for r in runs)
    verification = verify_ledger(fetch_ledger(client, uri, experiment_id))
    assert verification.ok, verification.findings
    assert verification.size == len(runs)


def test_unreachable_server_spools_and_flush_replays_exactly_once(mlflow_server, tmp_path):
    results = make_results(seeds=(0, 1, 2))
    trial_dir = tmp_path / "trials" / "baseline" / "1"
    trial_dir.mkdir(parents=True)
    (trial_dir / "model.txt").write_text("weights")
    down = f"http://127.0.0.1:{free_port()}"
    spool_dir = tmp_path / "spool"
    summary = log_results(
        results, down, spool_dir=spool_dir, trials_dir=tmp_path / "trials", policy=FAST_GIVE_UP
    )
    assert len(summary.spooled) == 6
    assert summary.created == {}
    (spool_file,) = Spool(spool_dir).pending()
    spooled = read_spool_file(spool_file)
    assert len(spooled.trials) == 6
    assert spooled.close is not None

    flushed = flush(mlflow_server.uri, spool_dir)
    assert [r["created"] for r in flushed.files.values()] == [6]
    assert Spool(spool_dir).pending() == []
    _exactly_once(mlflow_server.uri, results["edd"]["id"], results)
    run_id = log_results(results, mlflow_server.uri, spool_dir=spool_dir).existing["baseline/1"]
    files = [a.path for a in connect(mlflow_server.uri).list_artifacts(run_id, "trial")]
    assert files == ["trial/model.txt"]  # the trial's files travelled through the spool
    assert flush(mlflow_server.uri, spool_dir).files == {}  # nothing left to replay


def test_flush_cli_and_a_torn_spool_line(mlflow_server, tmp_path, run_cli):
    results = make_results(seeds=(0,))
    spool_dir = tmp_path / "spool"
    down = f"http://127.0.0.1:{free_port()}"
    log_results(results, down, spool_dir=spool_dir, policy=FAST_GIVE_UP)
    (spool_file,) = Spool(spool_dir).pending()
    with spool_file.open("a") as handle:
        handle.write('{"kind": "trial", "tri')  # a crash in the middle of an append
    outcome = run_cli("track", "flush", "--tracking-uri", mlflow_server.uri, "--spool", spool_dir)
    assert outcome.exit_code == 0, outcome.stderr
    assert "2 logged" in outcome.stdout
    _exactly_once(mlflow_server.uri, results["edd"]["id"], results)


@pytest.mark.slow
def test_server_killed_mid_logging_then_flush(tmp_path):
    """The server dies (SIGKILL) while `mlaudit track log` runs; restart, flush, all once."""
    root = tmp_path / "server"
    port = free_port()

    def server() -> ManagedServer:
        return ManagedServer(
            backend_store_uri=f"mlaudit+sqlite:///{root / 'mlflow.db'}",
            artifacts_destination=str(root / "artifacts"),
            port=port,
            log_path=root / "mlflow-server.log",
        )

    # Big enough that logging is still running when the server is killed.
    results = make_results(arms=("baseline", "no-a", "no-b", "no-c"), seeds=tuple(range(25)))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    spool_dir = tmp_path / "spool"
    first = server().start()
    try:
        logger = subprocess.Popen(
            [sys.executable, "-m", "audit", "track", "log", str(path),
             "--tracking-uri", first.uri, "--spool", str(spool_dir), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        client = connect(first.uri)
        deadline = time.monotonic() + 120
        logged = 0
        while logged < 5 and time.monotonic() < deadline and logger.poll() is None:
            time.sleep(0.2)
            try:
                experiment_id = resolve_experiment(client, results["edd"]["id"])
                logged = len(list(search_all(client, experiment_id, "")))
            except Exception:
                logged = 0
        assert logger.poll() is None, "logging finished before the server could be killed"
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
    finally:
        first.stop()
    out, err = logger.communicate(timeout=300)
    assert logger.returncode == 1, err
    summary = json.loads(out)
    assert summary["spooled"], summary
    assert summary["created"] + len(summary["spooled"]) == len(results["trials"])

    with server() as second:
        flushed = subprocess.run(
            [sys.executable, "-m", "audit", "track", "flush",
             "--tracking-uri", second.uri, "--spool", str(spool_dir), "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert flushed.returncode == 0, flushed.stderr
        assert Spool(spool_dir).pending() == []
        _exactly_once(second.uri, results["edd"]["id"], results)


@pytest.mark.slow
def test_eight_concurrent_loggers_keep_seals_contiguous(mlflow_server, tmp_path):
    experiment = f"concurrent-{tmp_path.name}"
    studies = []
    loggers = []
    for i in range(8):
        results = make_results(
            f"{experiment}-{i}", arms=("baseline", "no-a"), seeds=tuple(range(25)), history_steps=2
        )
        path = tmp_path / f"results-{i}.json"
        path.write_text(json.dumps(results))
        studies.append(results)
        loggers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "audit",
                    "track",
                    "log",
                    str(path),
                    "--tracking-uri",
                    mlflow_server.uri,
                    "--experiment",
                    experiment,
                    "--spool",
                    str(tmp_path / f"spool-{i}"),
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for logger in loggers:
        out, err = logger.communicate(timeout=600)
        assert logger.returncode == 0, err
        assert json.loads(out)["created"] == 50
    client = connect(mlflow_server.uri)
    experiment_id = resolve_experiment(client, experiment)
    ledger = fetch_ledger(client, mlflow_server.uri, experiment_id)
    assert [leaf.seq for leaf in ledger.leaves] == list(range(8 * 51))
    verification = verify_ledger(ledger)
    assert verification.ok, verification.findings[:5]
    keys = Counter(r.data.tags.get(TRIAL_KEY_TAG) for r in ledger.runs)
    del keys[None]
    assert len(keys) == 400
    assert set(keys.values()) == {1}


def test_server_errors_are_retried_without_duplicates(mlflow_server, tmp_path):
    results = make_results(seeds=(0, 1))
    with FlakyProxy(mlflow_server.uri) as proxy:
        logger = ProtocolLogger(proxy.uri, results, tmp_path / "spool")
        for trial in results["trials"]:
            proxy.fail_next(2)  # every trial meets two 503s and still lands once
            assert logger.log_trial(trial) is not None
        summary = logger.close(results)
    assert summary.spooled == []
    assert len(summary.created) == 4
    _exactly_once(mlflow_server.uri, results["edd"]["id"], results)


def test_a_transient_error_while_fetching_the_ledger_costs_one_request(mlflow_server, tmp_path):
    # The fetch of a 10,000-run ledger takes minutes: a retry over the whole fetch would
    # repeat it all, and once its budget had passed, one reset connection was fatal.
    results = make_results(seeds=(0, 1, 2))
    log_results(results, mlflow_server.uri, spool_dir=tmp_path / "spool")
    with FlakyProxy(mlflow_server.uri) as proxy:
        client = connect(proxy.uri)
        experiment_id = resolve_experiment(client, results["edd"]["id"])
        before = proxy.requests
        clean = fetch_ledger(client, proxy.uri, experiment_id)
        requests_per_fetch = proxy.requests - before
        assert requests_per_fetch > 2  # a listing page and history requests at least
        for k in range(1, requests_per_fetch + 1):  # whichever request meets the error
            before = proxy.requests
            proxy.fail_request(k)
            ledger = fetch_ledger(client, proxy.uri, experiment_id)
            assert proxy.requests - before == requests_per_fetch + 1, k
            assert ledger.leaves == clean.leaves
            assert ledger.records == clean.records


def test_logger_returns_to_the_server_after_an_outage(mlflow_server, tmp_path):
    results = make_results(seeds=(0, 1, 2))
    now = [0.0]
    with FlakyProxy(mlflow_server.uri) as proxy:
        logger = ProtocolLogger(
            proxy.uri, results, tmp_path / "spool", policy=FAST_GIVE_UP,
            retry_live_after=30, clock=lambda: now[0],
        )  # fmt: skip
        trials = results["trials"]
        assert logger.log_trial(trials[0]) is not None
        proxy.down = True
        assert logger.log_trial(trials[1]) is None  # outage: spooled
        proxy.down = False
        assert logger.log_trial(trials[2]) is None  # too soon to try again: spooled
        now[0] = 31.0
        for trial in trials[3:]:
            assert logger.log_trial(trial) is not None  # back on the server
        summary = logger.close(results)
    assert summary.spooled == [trials[1]["trial_id"], trials[2]["trial_id"]]
    assert flush(mlflow_server.uri, tmp_path / "spool").remaining == []
    assert Spool(tmp_path / "spool").pending() == []
    _exactly_once(mlflow_server.uri, results["edd"]["id"], results)


def test_shards_logging_live_at_once_share_one_parent_run(mlflow_server, tmp_path):
    """CI runs the shards of one execution side by side, each logging to a shared server.

    Every shard finds no parent run and creates it at the same moment; the store lets
    one through and the others log under it. No shard ends the parent: `track log`
    of the merged results does, with all of them.
    """
    results = make_results(seeds=tuple(range(6)))
    header = {k: v for k, v in results.items() if k != "trials"}
    shards = 4
    loggers = []
    for i in range(shards):
        shard_header = copy.deepcopy(header)
        shard_header["plan"]["shard"] = f"{i + 1}/{shards}"
        logger = ProtocolLogger(mlflow_server.uri, shard_header, tmp_path / f"spool-{i}")
        logger._live()  # each has searched for the execution's runs and found none
        loggers.append(logger)
    barrier = threading.Barrier(shards)
    failures: list[str] = []

    def shard(i: int) -> None:
        mine = results["trials"][i::shards]
        try:
            barrier.wait()
            for trial in mine:
                loggers[i].log_trial(trial)
            loggers[i].close({**loggers[i].header, "trials": mine})
        except Exception as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(shards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    client = connect(mlflow_server.uri)
    experiment_id = resolve_experiment(client, results["edd"]["id"])
    runs = list(search_all(client, experiment_id, ""))
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "execution"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "RUNNING"  # left for the merged results
    assert {r.data.tags.get(PARENT_RUN_TAG) for r in runs if r is not parent} == {
        parent.info.run_id
    }

    summary = log_results(results, mlflow_server.uri, spool_dir=tmp_path / "spool")
    assert summary.parent_run_id == parent.info.run_id
    _exactly_once(mlflow_server.uri, results["edd"]["id"], results)
