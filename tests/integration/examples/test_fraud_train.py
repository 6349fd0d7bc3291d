"""train.py: overrides switch components, metrics are valid, a seed reproduces exactly."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import load_script

train_module = load_script("train")

COMPONENT_COLUMNS = {
    "features.velocity=false": set(train_module.VELOCITY),
    "features.merchant_risk=false": {"merchant_risk"},
    "features.device_graph=false": set(train_module.DEVICE + train_module.DEVICE_LABELLED),
}


def _columns(*overrides: str) -> set[str]:
    return set(
        train_module.feature_columns(
            train_module.apply_overrides(train_module.DEFAULTS, list(overrides))
        )
    )


def test_each_feature_component_removes_exactly_its_columns() -> None:
    full = _columns()
    for override, removed in COMPONENT_COLUMNS.items():
        assert full - _columns(override) == removed, override
    assert _columns("features.velocity=false", "features.device_graph=false") == full - (
        COMPONENT_COLUMNS["features.velocity=false"]
        | COMPONENT_COLUMNS["features.device_graph=false"]
    )


def test_overrides_parse_values_and_refuse_unknown_keys() -> None:
    config = train_module.apply_overrides(
        train_module.DEFAULTS, ["model.class_weight=none", "data.sample=0.25", "model.max_iter=7"]
    )
    assert config["model"]["class_weight"] is None
    assert config["data"]["sample"] == 0.25
    assert config["model"]["max_iter"] == 7
    assert train_module.DEFAULTS["model"]["max_iter"] != 7  # defaults are not mutated
    for bad in ("features.velocty=false", "features=1", "nokey", "=1"):
        with pytest.raises(train_module.UsageError):
            train_module.apply_overrides(train_module.DEFAULTS, [bad])


def test_unknown_override_exits_2_with_one_line(train: Callable[..., Any]) -> None:
    proc = train("features.velocty=false")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "train.py: override 'features.velocty=false': unknown key 'features.velocty'"
    )


def _metrics(trial_dir: Path) -> dict[str, Any]:
    return json.loads((trial_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_trial_metrics_are_valid_reproducible_and_vary_by_seed(
    train: Callable[..., Any], tmp_path: Path
) -> None:
    for trial, seed in (("a", 1), ("b", 1), ("c", 2)):
        proc = train("data.sample=0.5", seed=seed, trial=trial)
        assert proc.returncode == 0, proc.stderr
    metrics = _metrics(tmp_path / "a")
    for name in ("pr_auc", "recall_at_1pct_fpr", "roc_auc", "alert_rate"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["expected_cost"] >= 0
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())
    assert metrics["test_frauds"] > 0
    # Better than chance: the synthetic fraud is learnable.
    assert metrics["pr_auc"] > 5 * metrics["test_frauds"] / metrics["n_test"]
    trial = json.loads((tmp_path / "a" / "trial.json").read_text())
    assert trial["seed"] == 1
    assert set(trial["feature_columns"]) == _columns()
    # Bit-for-bit: the protocol's determinism check re-runs a trial and compares.
    first = (tmp_path / "a" / "metrics.json").read_bytes()
    assert first == (tmp_path / "b" / "metrics.json").read_bytes()
    assert _metrics(tmp_path / "a")["pr_auc"] != _metrics(tmp_path / "c")["pr_auc"]


@pytest.mark.slow
def test_component_overrides_change_what_the_model_sees(
    train: Callable[..., Any], tmp_path: Path
) -> None:
    for index, override in enumerate([*COMPONENT_COLUMNS, "model.class_weight=none"]):
        proc = train(override, trial=f"arm{index}")
        assert proc.returncode == 0, proc.stderr
        trial = json.loads((tmp_path / f"arm{index}" / "trial.json").read_text())
        if override in COMPONENT_COLUMNS:
            assert set(trial["feature_columns"]) == _columns() - COMPONENT_COLUMNS[override]
        else:
            assert trial["config"]["model"]["class_weight"] is None
            assert set(trial["feature_columns"]) == _columns()


ENCODED = ["merchant_risk", "device_fraud_cards", "device_fraud_rate"]


def _encoded(small_data: Path, flip: Callable[[Any], Any] | None) -> tuple[Any, Any]:
    """Fit and test rows with their label encodings; `flip` picks labels to invert first."""
    import numpy as np

    config = train_module.apply_overrides(
        train_module.DEFAULTS, [f"data.features={small_data / 'features.csv'}"]
    )
    frame = train_module.load(config)
    if flip is not None:
        chosen = flip(frame)
        frame.loc[chosen, "is_fraud"] = 1 - frame.loc[chosen, "is_fraud"]
    split = config["data"]["test_start_day"] * train_module.DAY
    fit, test = frame[frame["ts"] < split].copy(), frame[frame["ts"] >= split].copy()
    train_module.add_encodings(fit, [test], config, np.random.default_rng(5))
    return fit, test


def test_fit_rows_are_encoded_out_of_fold(small_data: Path) -> None:
    fit, _ = _encoded(small_data, None)
    # A fraud-ring card: its labels are what the device features could leak.
    card = int(fit.loc[(fit["is_fraud"] == 1) & (fit["device_cards"] > 2), "card_id"].iloc[0])
    flipped, _ = _encoded(small_data, lambda frame: frame["card_id"] == card)
    own = fit["card_id"] == card
    # The card's own rows do not move when only its labels change (folds hold whole
    # cards); rows of other cards learn from them, so the encodings are live.
    assert fit.loc[own, ENCODED].equals(flipped.loc[own, ENCODED])
    assert not fit.loc[~own, ENCODED].equals(flipped.loc[~own, ENCODED])


def test_test_rows_are_encoded_from_fit_labels_only(small_data: Path) -> None:
    _, test = _encoded(small_data, None)
    split = train_module.DEFAULTS["data"]["test_start_day"] * train_module.DAY
    _, flipped = _encoded(small_data, lambda frame: frame["ts"] >= split)
    assert test[ENCODED].equals(flipped[ENCODED])
    assert test["device_fraud_cards"].max() > 0  # the test rows do see fit-time fraud


@pytest.mark.slow
def test_dvclive_source_logs_the_same_metrics(
    train: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.protocol.metric_sources import MetricSource, read_source

    assert train("data.sample=0.3", seed=1, trial="file").returncode == 0
    monkeypatch.setenv("MLAUDIT_METRICS_SOURCE", "dvclive")
    proc = train("data.sample=0.3", seed=1, trial="live")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "live" / "metrics.json").exists()
    reading = read_source(
        MetricSource(kind="dvclive", dir="dvclive"), tmp_path / "live", ["pr_auc"]
    )
    assert reading.metrics == _metrics(tmp_path / "file")
