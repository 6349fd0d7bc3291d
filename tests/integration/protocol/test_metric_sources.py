"""One toy study run once per trial metric source gives the analysis of metrics.json.

The trial script logs the same numbers through the real libraries: DVCLive, tensorboard's
own (TensorFlow-free) event writer, and MLflow into the trial's own run on the session's
`mlaudit server`. Every value is exact in float32, so TensorBoard's storage loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from protocol_study import Study, edd_document, make_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
from tracking_study import superuser

TRAIN_SOURCES_PY = r"""
import json, os, sys, pathlib, yaml

trial_dir = pathlib.Path(os.environ["MLAUDIT_TRIAL_DIR"])
seed = int(os.environ["MLAUDIT_SEED"])
arm = os.environ["MLAUDIT_ARM"]
config = yaml.safe_load(open("params.base.yaml"))
for item in sys.argv[1:]:
    key, _, value = item.partition("=")
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = yaml.safe_load(value)
steps = 4
a = 1 if config["features"]["a"] else 0
scores = [0.5 + a * (0.125 + seed / 64) * (k + 1) / steps + seed / 1024 for k in range(steps)]
losses = [2.0 ** -k for k in range(steps)]
via = config["log_via"]
if via == "file":
    (trial_dir / "metrics.json").write_text(json.dumps({"score": scores[-1], "loss": losses[-1]}))
elif via == "dvclive":
    from dvclive import Live
    with Live(str(trial_dir / "dvclive"), save_dvc_exp=False, dvcyaml=None) as live:
        for k in range(steps):
            live.log_metric("score", scores[k])
            live.log_metric("loss", losses[k])
            live.next_step()
elif via == "tensorboard":
    from tensorboard.summary import Writer
    writer = Writer(str(trial_dir / "tb"))
    for k in range(steps):
        writer.add_scalar("val/score", scores[k], k)
        writer.add_scalar("train/loss", losses[k], k)
    writer.close()
elif via == "mlflow":
    import mlflow
    with mlflow.start_run():
        for k in range(steps):
            mlflow.log_metric("score", scores[k], step=k)
            mlflow.log_metric("loss", losses[k], step=k)
        if config.get("log_model") and arm == "baseline" and seed == 1:
            import mlflow.sklearn
            from sklearn.linear_model import LogisticRegression
            model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
            info = mlflow.sklearn.log_model(
                model, name="model", pip_requirements=["scikit-learn"]
            )
            accuracy = model.score([[0.0], [3.0]], [0, 1])
            mlflow.log_metric("model_accuracy", accuracy, model_id=info.model_id)
"""

SOURCES: dict[str, dict[str, Any]] = {
    "dvclive": {"kind": "dvclive"},
    "tensorboard": {
        "kind": "tensorboard",
        "dir": "tb",
        "metrics": {"score": {"key": "val/score"}, "loss": {"key": "train/loss", "reduce": "min"}},
    },
    "mlflow": {"kind": "mlflow"},
}


def _document(via: str, **baseline: Any) -> dict[str, Any]:
    document = edd_document(
        command=[edd_document()["protocol"]["command"][0], "train_sources.py", "{overrides}"],
        baseline={"features": {"a": True}, "log_via": via, **baseline},
        components=[{"name": "a", "ablate": ["features.a=false"]}],
        references=[],
        seeds=[0, 1],
    )
    document["id"] = f"sources-{via}-{uuid.uuid4().hex[:8]}"
    document["metrics"] = {
        "primary": {"name": "score", "goal": "maximize"},
        "secondary": [{"name": "loss", "goal": "minimize"}],
    }
    if via in SOURCES:
        document["protocol"]["metrics_source"] = SOURCES[via]
    return document


def _cli(*args: str | Path) -> int:
    from audit.cli.main import main

    return main([str(a) for a in args])


def run_study(template: Path, root: Path, via: str, *extra: str, **baseline: Any) -> Ran:
    """Build, run (2 workers) and analyse the toy study logging through `via`."""
    study = make_study(template, root / "repo", _document(via, **baseline))
    (study.root / "train_sources.py").write_text(TRAIN_SOURCES_PY, encoding="utf-8")
    study.commit("trial script")
    out = root / "out"
    code = _cli(*study.run_args(out, "--no-cache", "--workers", "2", *extra))
    assert code == 0, (
        (out / "results.json").read_text() if (out / "results.json").exists() else code
    )
    analysis = root / "analysis.json"
    assert _cli("ablate", "analyze", out / "results.json", "-o", analysis, "--resamples", "99") == 0
    results = json.loads((out / "results.json").read_text())
    return Ran(study, out, results, json.loads(analysis.read_text()))


@dataclass
class Ran:
    study: Study
    out: Path
    results: dict[str, Any]
    analysis: dict[str, Any]


def conclusions(analysis: dict[str, Any]) -> Any:
    """What the analysis concludes, without what names its input (digests, times)."""
    return {k: v for k, v in analysis.items() if k not in ("edd", "results_sha256")}


@pytest.fixture(scope="module")
def with_metrics_file(study_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_study(study_template, tmp_path_factory.mktemp("file"), "file")


@pytest.mark.parametrize("via", ["dvclive", "tensorboard"])
def test_file_sources_give_the_analysis_of_metrics_json(
    via: str, with_metrics_file: Ran, study_template: Path, tmp_path: Path
) -> None:
    ran = run_study(study_template, tmp_path, via)
    assert conclusions(ran.analysis) == conclusions(with_metrics_file.analysis)
    trial = ran.results["trials"][0]
    source = trial["metric_source"]
    assert source["kind"] == via
    folder = ran.out / trial["trial_dir"]
    for name, digest in source["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    # Every step's point, in order: the history goes to MLflow as it was logged.
    key = "score" if via == "dvclive" else "val/score"
    assert [p["step"] for p in trial["metric_history"][key]] == [0, 1, 2, 3]
    assert trial["metric_history"][key][-1]["value"] == trial["metrics"]["score"]


def test_mlflow_in_the_trial_gives_the_analysis_and_seals_the_model(
    with_metrics_file: Ran, study_template: Path, tmp_path: Path, mlflow_server: Any, run_cli: Any
) -> None:
    from audit.tracking.client import connect

    ran = run_study(
        study_template, tmp_path, "mlflow", "--tracking-uri", mlflow_server.uri, log_model=True
    )
    assert conclusions(ran.analysis) == conclusions(with_metrics_file.analysis)
    client = connect(mlflow_server.uri)
    trials = ran.results["trials"]
    # baseline/1 logged a model (baseline/0 is re-run by the determinism check).
    baseline = next(t for t in trials if t["trial_id"] == "baseline/1")
    run = client.get_run(baseline["mlflow_run_id"])
    # One run per trial: the script logged into the run mlaudit opened, ended and sealed.
    assert baseline["metric_source"]["run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    assert "mlaudit.seal.sha256" in run.data.tags
    # Sealed by mlaudit after the script ended it: the trial's outcome, params and files
    # are in the sealed run, beside what the script logged.
    tags = run.data.tags
    assert tags["mlaudit.trial.status"] == "succeeded"
    assert tags["mlaudit.trial.metrics_source.sha256"] == baseline["metric_source"]["sha256"]
    assert run.data.params["arm"] == "baseline"
    assert "trial" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [0, 1, 2, 3]
    experiment = run.info.experiment_id
    runs = client.search_runs([experiment], "tags.`mlaudit.role` = 'trial'")
    assert len(runs) == len(trials)
    # The re-run of the determinism check logged into a run of its own.
    assert ran.results["reproducibility"]["passed"] is True
    (rerun,) = client.search_runs([experiment], "tags.`mlaudit.role` = 'reproducibility'")
    assert rerun.info.status == "FINISHED"
    original = next(t for t in trials if t["trial_id"] == "baseline/0")
    assert rerun.data.metrics["score"] == original["metrics"]["score"]
    models = client.search_logged_models([experiment])
    assert [m.source_run_id for m in models] == [run.info.run_id]
    checkpoint = tmp_path / "checkpoint.json"
    taken = _cli("track", "checkpoint", "--tracking-uri", mlflow_server.uri,
                 "--experiment", experiment, "--with-records", "-o", checkpoint)  # fmt: skip
    assert taken == 0
    verify = ["track", "verify", "--tracking-uri", mlflow_server.uri, "--checkpoint", checkpoint]
    assert _cli(*verify) == 0
    with superuser(mlflow_server.db_path) as db:
        changed = db.execute(
            "UPDATE logged_model_metrics SET metric_value = 0.01 "
            "WHERE model_id = ? AND metric_name = 'model_accuracy'",
            (models[0].model_id,),
        ).rowcount
    assert changed == 1
    found = run_cli(*verify)
    assert found.exit_code == 1
    line = next(x for x in found.stderr.splitlines() if "changed-value" in x)
    assert run.info.run_id in line
    assert models[0].model_id in line, line
    assert "model_accuracy" in line, line
    # A resumed or retried trial gets the same run, found by its key; a sealed one is refused.
    from audit.errors import TrackingError
    from audit.tracking.client import ProtocolLogger

    header = {k: v for k, v in ran.results.items() if k != "trials"}
    with pytest.raises(TrackingError, match="is already sealed"):
        ProtocolLogger(mlflow_server.uri, header, None).open_trial_run("baseline", 0)
    other = {**header, "edd": {**header["edd"], "digest": "0" * 64}}
    first = ProtocolLogger(mlflow_server.uri, other, None).open_trial_run("no-a", 1)
    again = ProtocolLogger(mlflow_server.uri, other, None).open_trial_run("no-a", 1)
    assert first == again


def test_mlflow_source_without_a_tracking_server_is_a_usage_error(
    study_template: Path, tmp_path: Path, run_cli: Any
) -> None:
    study = make_study(study_template, tmp_path / "repo", _document("mlflow"))
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 2
    assert "metrics_source is mlflow" in result.stderr
    assert "--tracking-uri" in result.stderr
