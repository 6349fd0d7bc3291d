"""Metric source readers on files written by the real libraries: every point, named failures."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from audit.protocol.metric_sources import MetricSource, read_source
from audit.tracking.runspec import canonical_json


def _source(kind: str, **declared: Any) -> MetricSource:
    document = {"metrics": {}, "protocol": {"metrics_source": {"kind": kind, **declared}}}
    return MetricSource.from_document(document)


def _tensorboard(log_dir: Path, points: dict[str, list[float]]) -> None:
    from tensorboard.summary import Writer

    writer = Writer(str(log_dir))
    for tag, values in points.items():
        for step, value in enumerate(values):
            writer.add_scalar(tag, value, step)
    writer.close()


def test_tensorboard_keeps_every_point_of_a_long_history(tmp_path: Path) -> None:
    # TensorBoard's EventAccumulator would keep a sample of 1,000 of these.
    steps = 10_001
    losses = [1.0 / (k + 1) for k in range(steps)]
    _tensorboard(tmp_path / "tb", {"train/loss": losses, "val/auc": [0.5, 0.75, 0.625]})
    source = _source(
        "tensorboard",
        dir="tb",
        metrics={
            "auc": {"key": "val/auc", "reduce": "max"},
            "loss": {"key": "train/loss", "reduce": "mean", "last_k": 4},
            "final_loss": {"key": "train/loss"},
        },
    )
    reading = read_source(source, tmp_path, ["auc", "loss", "final_loss"])
    assert reading.problem is None
    history = reading.history["train/loss"]
    assert [p.step for p in history] == list(range(steps))
    import numpy as np

    assert [p.value for p in history] == [float(np.float32(v)) for v in losses]
    assert reading.metrics is not None
    assert reading.metrics["auc"] == 0.75
    assert reading.metrics["val/auc"] == 0.625  # the history's own last value, as MLflow shows
    assert reading.metrics["loss"] == pytest.approx(sum(losses[-4:]) / 4, rel=1e-6)
    assert reading.metrics["final_loss"] == history[-1].value
    (event_file,) = (tmp_path / "tb").iterdir()
    digest = hashlib.sha256(event_file.read_bytes()).hexdigest()
    assert reading.files == {f"tb/{event_file.name}": digest}


def test_tensorboard_failures_name_the_file(tmp_path: Path) -> None:
    source = _source("tensorboard", dir="tb")
    assert read_source(source, tmp_path, ["score"]).problem == (
        "the trial wrote no TensorBoard log directory tb"
    )
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "events.out.tfevents.1.host").write_bytes(b"\x00" * 40)
    problem = str(read_source(source, tmp_path, ["score"]).problem)
    assert problem == "tb/events.out.tfevents.1.host: a corrupt or truncated record"
    (tmp_path / "tb" / "events.out.tfevents.1.host").unlink()
    _tensorboard(tmp_path / "tb", {"score": [1.0, 2.0, 3.0]})
    (written,) = (tmp_path / "tb").iterdir()
    written.write_bytes(written.read_bytes()[:-9])  # the last point cut short
    assert read_source(source, tmp_path, ["score"]).problem == (
        f"tb/{written.name}: a corrupt or truncated record"
    )
    written.unlink()
    _tensorboard(tmp_path / "tb", {"other": [1.0]})
    assert read_source(source, tmp_path, ["score"]).problem == (
        "tb has no values for 'score' (the metric 'score')"
    )


def _dvclive(trial_dir: Path) -> Path:
    from dvclive import Live

    with Live(str(trial_dir / "dvclive"), save_dvc_exp=False, dvcyaml=None) as live:
        for step in range(3):
            live.log_metric("train/loss", 1.0 / (step + 1))
            live.log_metric("auc", 0.5 + step / 8)
            live.next_step()
        live.log_metric("final", 3.0, plot=False)
    return trial_dir / "dvclive"


def test_dvclive_summary_and_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    root = _dvclive(tmp_path)
    source = _source("dvclive", metrics={"best_auc": {"key": "auc", "reduce": "max"}})
    reading = read_source(source, tmp_path, ["train.loss", "best_auc", "final"])
    assert reading.problem is None
    assert reading.metrics == {
        "train.loss": 1.0 / 3,
        "auc": 0.75,
        "final": 3.0,
        "best_auc": 0.75,
    }
    assert [(p.step, p.value) for p in reading.history["train.loss"]] == [
        (0, 1.0),
        (1, 0.5),
        (2, 1.0 / 3),
    ]
    assert sorted(reading.files) == [
        "dvclive/metrics.json",
        "dvclive/plots/metrics/auc.tsv",
        "dvclive/plots/metrics/train/loss.tsv",
    ]
    # A history edited after the run no longer agrees with the summary: named.
    history = root / "plots" / "metrics" / "train" / "loss.tsv"
    history.write_text(history.read_text().replace("0.3333333333333333", "0.25"))
    assert read_source(source, tmp_path, ["train.loss"]).problem == (
        "dvclive/metrics.json has train.loss = 0.3333333333333333 but its history "
        "dvclive/plots/metrics/train/loss.tsv ends with 0.25"
    )


def test_dvclive_missing_or_malformed_is_a_named_failure(tmp_path: Path) -> None:
    source = _source("dvclive")
    assert read_source(source, tmp_path, ["score"]).problem == (
        "the trial wrote no DVCLive directory dvclive"
    )
    (tmp_path / "dvclive").mkdir()
    assert read_source(source, tmp_path, ["score"]).problem == (
        "dvclive/the trial wrote no metrics.json"
    )
    (tmp_path / "dvclive" / "metrics.json").write_text(json.dumps({"score": 1.0, "step": 0}))
    plots = tmp_path / "dvclive" / "plots" / "metrics"
    plots.mkdir(parents=True)
    (plots / "score.tsv").write_text("step\tscore\n0\tnot-a-number\n")
    assert read_source(source, tmp_path, ["score"]).problem == (
        "dvclive/plots/metrics/score.tsv: line 2 is not step and value"
    )
    (plots / "score.tsv").unlink()
    os.symlink("/etc/passwd", plots / "score.tsv")
    assert read_source(source, tmp_path, ["score"]).problem == (
        "dvclive/plots/metrics/score.tsv: a symbolic link is refused"
    )


def test_the_metrics_file_is_read_by_digest(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"score": 0.5}')
    reading = read_source(MetricSource(), tmp_path, ["score"])
    assert reading.metrics == {"score": 0.5}
    digest = hashlib.sha256(b'{"score": 0.5}').hexdigest()
    assert reading.files == {"metrics.json": digest}
    record = reading.record("metrics_file")
    assert record["files"] == {"metrics.json": digest}
    # The same RFC 8785 bytes the tracking run spec (and the bundle's check) digest.
    entry = {"kind": "metrics_file", "files": {"metrics.json": digest}}
    assert record["sha256"] == hashlib.sha256(canonical_json([entry, None])).hexdigest()


def test_a_missing_metrics_file_says_where_it_belongs(tmp_path: Path) -> None:
    reading = read_source(MetricSource(), tmp_path, ["score"])
    assert reading.metrics is None
    assert reading.problem == (
        "the trial wrote no metrics.json into $MLAUDIT_TRIAL_DIR "
        "(the trial's own folder, not the working directory)"
    )


def test_tensorboard_missing_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tensorboard(tmp_path / "tb", {"score": [1.0]})
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what a missing package looks like
    problem = read_source(_source("tensorboard", dir="tb"), tmp_path, ["score"]).problem
    assert problem == (
        "reading TensorBoard event files needs tensorboard: pip install 'mlaudit[tensorboard]'"
    )
