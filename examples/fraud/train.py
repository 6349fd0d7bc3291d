"""Train and evaluate the fraud model for one ablation trial; write metrics.json.

This is user code: it knows nothing about mlaudit. The protocol runs it as
    python train.py [key=value ...]
with the trial's seed in MLAUDIT_SEED and its output directory in MLAUDIT_TRIAL_DIR.

Components (each switched by an override, as the EDD's ablation plan declares):
  features.velocity=true|false       card velocity features (bursts, spend, gaps)
  features.merchant_risk=true|false  merchant fraud rate, target-encoded out-of-fold
  features.device_graph=true|false   the proposed pipeline: device sharing plus
                                     fraud-labelled device neighbours (out-of-fold)
  model.class_weight=balanced|none|<fraud weight>

Evaluation is time-based: fit on days [0, valid_start_day), choose the alert threshold
that minimises cost on [valid_start_day, test_start_day), report on the days after.
Label-derived encodings for validation and test rows use only the fit rows' labels;
for fit rows they come from the other folds (folds group whole cards), so no row ever
sees its own label.

The seed changes (a) which fit rows are used (a `data.train_fraction` subsample),
(b) the encoding folds and (c) the model's feature subsampling, so repeated seeds
give a real spread and paired comparisons between arms are meaningful.

Metrics go where the EDD's protocol.metrics_source says (mlaudit passes its kind in
MLAUDIT_METRICS_SOURCE): metrics.json by default, or DVCLive (`dvclive/` in the trial
directory), or MLflow (the trial's own run, from MLFLOW_TRACKING_URI and MLFLOW_RUN_ID).
Metrics (flat, DVC metrics format):
  pr_auc               average precision on the test period
  recall_at_1pct_fpr   share of fraud caught while flagging at most 1% of legit traffic
  expected_cost        (missed fraud amounts + review_fee x false alarms) / test transactions
One trial takes one core (OMP_NUM_THREADS=1 unless set): parallelism belongs to the
ablation runner, not to each trial.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import copy
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

HERE = Path(__file__).resolve().parent
DAY = 86_400

DEFAULTS: dict[str, Any] = {
    "data": {
        "features": "data/features.csv",
        "sample": 1.0,  # share of cards kept (quick runs); the same for every seed
        "train_fraction": 0.8,  # per-seed subsample of the fit rows
        "valid_start_day": 63,
        "test_start_day": 70,
    },
    "features": {"velocity": True, "merchant_risk": True, "device_graph": True},
    "encoding": {"folds": 5, "prior_weight": 20.0},
    "model": {
        "class_weight": 5,
        "max_iter": 100,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "max_features": 0.8,
    },
    "cost": {"review_fee": 5.0},
    "seed": 0,
}

BASE = ["amount", "mcc", "hour"]
VELOCITY = [
    "card_txn_1h",
    "card_txn_24h",
    "card_amount_24h",
    "secs_since_prev",
    "amount_to_card_mean",
    "card_new_merchant",
]
DEVICE = ["device_cards", "device_txn_24h", "card_devices", "card_new_device"]
DEVICE_LABELLED = ["device_fraud_cards", "device_fraud_rate"]


class UsageError(Exception):
    pass


def parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Hydra-style `a.b=value`; an unknown key is an error so a typo cannot go unnoticed."""
    resolved = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"override {item!r} is not key=value")
        *parents, leaf = key.lstrip("+").split(".")
        node = resolved
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise UsageError(f"override {item!r}: unknown key {key!r}")
            node = node[part]
        if leaf not in node or isinstance(node[leaf], dict):
            raise UsageError(f"override {item!r}: unknown key {key!r}")
        node[leaf] = parse_value(raw)
    return resolved


def load(config: dict[str, Any]) -> pd.DataFrame:
    path = Path(config["data"]["features"])
    frame = pd.read_csv(path if path.is_absolute() else HERE / path)
    sample = float(config["data"]["sample"])
    if sample < 1.0:
        # Keep whole cards (a fixed hash, not the seed) so velocity stays meaningful.
        keep = (frame["card_id"].to_numpy() * 2654435761 % 10_000) < sample * 10_000
        frame = frame[keep]
    return frame.reset_index(drop=True)


def card_folds(cards: pd.Series, k: int, rng: np.random.Generator) -> np.ndarray:
    unique = cards.unique()
    fold_of = dict(zip(unique, rng.permutation(len(unique)) % k, strict=True))
    return cards.map(fold_of).to_numpy()


def merchant_rate(ref: pd.DataFrame, rows: pd.DataFrame, prior: float, base: float) -> np.ndarray:
    stats = ref.groupby("merchant_id")["is_fraud"].agg(["sum", "count"])
    joined = rows[["merchant_id"]].join(stats, on="merchant_id").fillna(0.0)
    return ((joined["sum"] + prior * base) / (joined["count"] + prior)).to_numpy()


def device_neighbours(
    ref: pd.DataFrame, rows: pd.DataFrame, prior: float, base: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fraud among OTHER cards on the same device: distinct fraud cards and a smoothed rate."""
    pair = ref.groupby(["device_id", "card_id"])["is_fraud"].agg(["sum", "count"]).reset_index()
    pair["fraud_card"] = (pair["sum"] > 0).astype(float)
    device = pair.groupby("device_id")[["sum", "count", "fraud_card"]].sum()
    joined = rows[["device_id", "card_id"]].join(device, on="device_id")
    joined = joined.merge(
        pair, on=["device_id", "card_id"], how="left", suffixes=("", "_own")
    ).fillna(0.0)
    fraud = joined["sum"] - joined["sum_own"]
    count = joined["count"] - joined["count_own"]
    cards = joined["fraud_card"] - joined["fraud_card_own"]
    return cards.to_numpy(), ((fraud + prior * base) / (count + prior)).to_numpy()


def add_encodings(
    fit: pd.DataFrame, others: list[pd.DataFrame], config: dict[str, Any], rng: np.random.Generator
) -> None:
    """Label-derived columns: out-of-fold for fit rows, from all fit rows for the rest."""
    prior = float(config["encoding"]["prior_weight"])
    base = float(fit["is_fraud"].mean())
    folds = card_folds(fit["card_id"], int(config["encoding"]["folds"]), rng)
    fit["merchant_risk"] = 0.0
    fit["device_fraud_cards"] = 0.0
    fit["device_fraud_rate"] = 0.0
    for k in np.unique(folds):
        ref, part = fit[folds != k], fit[folds == k]
        fit.loc[folds == k, "merchant_risk"] = merchant_rate(ref, part, prior, base)
        cards, rate = device_neighbours(ref, part, prior, base)
        fit.loc[folds == k, "device_fraud_cards"] = cards
        fit.loc[folds == k, "device_fraud_rate"] = rate
    for frame in others:
        frame["merchant_risk"] = merchant_rate(fit, frame, prior, base)
        cards, rate = device_neighbours(fit, frame, prior, base)
        frame["device_fraud_cards"] = cards
        frame["device_fraud_rate"] = rate


def feature_columns(config: dict[str, Any]) -> list[str]:
    switches = config["features"]
    columns = list(BASE)
    if switches["velocity"]:
        columns += VELOCITY
    if switches["merchant_risk"]:
        columns.append("merchant_risk")
    if switches["device_graph"]:
        columns += DEVICE + DEVICE_LABELLED
    return columns


def class_weight(value: Any) -> str | dict[int, float] | None:
    if value is None or value == "none":
        return None
    if value == "balanced":
        return "balanced"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return {0: 1.0, 1: float(value)}
    raise UsageError(f"model.class_weight={value!r}: expected balanced, none or a positive number")


def fit_model(
    fit: pd.DataFrame, columns: list[str], config: dict[str, Any], seed: int
) -> HistGradientBoostingClassifier:
    m = config["model"]
    model = HistGradientBoostingClassifier(
        max_iter=int(m["max_iter"]),
        learning_rate=float(m["learning_rate"]),
        max_leaf_nodes=int(m["max_leaf_nodes"]),
        min_samples_leaf=int(m["min_samples_leaf"]),
        l2_regularization=float(m["l2_regularization"]),
        max_features=float(m["max_features"]),
        class_weight=class_weight(m["class_weight"]),
        categorical_features=[columns.index("mcc")],
        early_stopping=False,
        random_state=seed,
    )
    # mcc codes are large integers; the model wants small category indices.
    return model.fit(mcc_as_category(fit[columns]), fit["is_fraud"].to_numpy())


MCC_CODES = (4722, 5411, 5541, 5732, 5812, 5816, 5912, 5944, 5947, 5999)


def mcc_as_category(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=float)
    column = list(frame.columns).index("mcc")
    codes = np.searchsorted(np.array(MCC_CODES), frame["mcc"].to_numpy())
    values[:, column] = codes
    return values


def alert_threshold(scores: np.ndarray, fraud: np.ndarray, amount: np.ndarray, fee: float) -> float:
    """The score cut-off that minimises cost on the validation days (alert = score >= cut)."""
    order = np.argsort(-scores, kind="stable")
    s, f, a = scores[order], fraud[order], amount[order]
    caught = np.cumsum(a * f)
    false_alarms = np.cumsum(1 - f)
    cost = (a * f).sum() - caught + fee * false_alarms
    best = int(np.argmin(cost))
    no_alerts = (a * f).sum()
    return float(s[best]) if cost[best] < no_alerts else float("inf")


def evaluate(
    scores: np.ndarray, fraud: np.ndarray, amount: np.ndarray, cut: float, fee: float
) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(fraud, scores)
    alerts = scores >= cut
    missed = float((amount * fraud * ~alerts).sum())
    false_alarms = int((alerts & (fraud == 0)).sum())
    return {
        "pr_auc": float(average_precision_score(fraud, scores)),
        "recall_at_1pct_fpr": float(tpr[fpr <= 0.01].max()),
        "expected_cost": (missed + fee * false_alarms) / len(fraud),
        "roc_auc": float(roc_auc_score(fraud, scores)),
        "alert_rate": float(alerts.mean()),
        "missed_fraud_amount": missed,
        "false_alarms": false_alarms,
    }


def run(config: dict[str, Any], seed: int, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    frame = load(config)
    valid_start = int(config["data"]["valid_start_day"]) * DAY
    test_start = int(config["data"]["test_start_day"]) * DAY
    fit = frame[frame["ts"] < valid_start]
    fit = fit[rng.random(len(fit)) < float(config["data"]["train_fraction"])].copy()
    valid = frame[(frame["ts"] >= valid_start) & (frame["ts"] < test_start)].copy()
    test = frame[frame["ts"] >= test_start].copy()
    add_encodings(fit, [valid, test], config, rng)
    columns = feature_columns(config)
    model = fit_model(fit, columns, config, seed)
    fee = float(config["cost"]["review_fee"])
    valid_scores = model.predict_proba(mcc_as_category(valid[columns]))[:, 1]
    cut = alert_threshold(
        valid_scores, valid["is_fraud"].to_numpy(), valid["amount"].to_numpy(), fee
    )
    test_scores = model.predict_proba(mcc_as_category(test[columns]))[:, 1]
    metrics: dict[str, Any] = evaluate(
        test_scores, test["is_fraud"].to_numpy(), test["amount"].to_numpy(), cut, fee
    )
    metrics.update(
        n_features=len(columns),
        n_train=len(fit),
        n_test=len(test),
        test_frauds=int(test["is_fraud"].sum()),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    log_metrics(metrics, out_dir)
    # Wall time varies run to run, so it stays out of metrics.json: the protocol's
    # determinism check re-runs a trial and expects every metric to match exactly.
    seconds = round(time.perf_counter() - started, 3)
    trial = {"seed": seed, "config": config, "feature_columns": columns, "seconds": seconds}
    (out_dir / "trial.json").write_text(json.dumps(trial, indent=2, sort_keys=True) + "\n")
    # The fitted model: mlaudit logs every file of the trial directory with the trial's
    # sealed run, so a model version can be registered from it and promoted on the gate.
    with (out_dir / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle, protocol=5)
    return metrics


def log_metrics(metrics: dict[str, Any], out_dir: Path) -> None:
    """Log the trial's metrics with the logger the study declares (one EDD field)."""
    source = os.environ.get("MLAUDIT_METRICS_SOURCE", "metrics_file")
    if source == "dvclive":
        from dvclive import Live

        folder = out_dir / os.environ.get("MLAUDIT_METRICS_DIR", "dvclive")
        with Live(str(folder), save_dvc_exp=False, dvcyaml=None) as live:
            for key, value in metrics.items():
                live.log_metric(key, value, plot=False)
    elif source == "mlflow":
        import mlflow

        with mlflow.start_run():  # resumes the run in MLFLOW_RUN_ID
            mlflow.log_metrics({key: float(value) for key, value in metrics.items()})
    else:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    try:
        config = apply_overrides(DEFAULTS, argv)
        seed = int(os.environ.get("MLAUDIT_SEED", config["seed"]))
    except (UsageError, ValueError) as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    config["seed"] = seed
    out_dir = Path(os.environ.get("MLAUDIT_TRIAL_DIR", "."))
    try:
        metrics = run(config, seed, out_dir)
    except UsageError as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{k}={metrics[k]:.4f}" for k in ("pr_auc", "recall_at_1pct_fpr"))
    print(f"train.py seed={seed}: {summary}, expected_cost={metrics['expected_cost']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
