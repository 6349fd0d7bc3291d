"""The fraud example's data: a portable generator, as-of-time features, a DVC lock that holds."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE, SMALL_GENERATE, example_env, run_script, write_params


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generate(folder: Path, generate: dict[str, object], name: str) -> Path:
    params = write_params(folder, generate)
    out = folder / name
    run_script("generate", "--params", params, "--out", out)
    return out


def test_generator_output_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first = _generate(tmp_path, SMALL_GENERATE, "first.csv")
    second = _generate(tmp_path, SMALL_GENERATE, "second.csv")
    other = _generate(tmp_path, {**SMALL_GENERATE, "seed": 8}, "other.csv")
    assert _sha256(first) == _sha256(second)
    assert _sha256(first) != _sha256(other)


def test_generated_transactions_look_like_card_traffic(small_data: Path) -> None:
    raw = (small_data / "transactions.csv").read_bytes()
    assert b"\r" not in raw
    with (small_data / "transactions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "txn_id", "ts", "card_id", "merchant_id", "mcc", "device_id", "amount", "is_fraud"
    ]  # fmt: skip
    times = [int(r["ts"]) for r in rows]
    assert times == sorted(times)
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", r["amount"]) for r in rows)
    fraud = [r for r in rows if r["is_fraud"] == "1"]
    assert 0.002 < len(fraud) / len(rows) < 0.02
    # Rings reuse devices across cards: some fraud device serves several cards.
    cards_per_device: dict[str, set[str]] = {}
    for r in fraud:
        cards_per_device.setdefault(r["device_id"], set()).add(r["card_id"])
    assert max(len(c) for c in cards_per_device.values()) >= 3


def test_features_use_only_the_past(small_data: Path) -> None:
    with (small_data / "features.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen_cards: set[str] = set()
    device_cards: dict[str, int] = {}
    for r in rows:
        if r["card_id"] not in seen_cards:
            # A card's first transaction has no history to count.
            assert (r["card_txn_24h"], r["card_new_merchant"], r["card_devices"]) == ("1", "0", "1")
            seen_cards.add(r["card_id"])
        count = int(r["device_cards"])
        assert count >= device_cards.get(r["device_id"], 1)
        device_cards[r["device_id"]] = count
        assert int(r["card_txn_1h"]) <= int(r["card_txn_24h"])


@pytest.mark.slow
def test_dvc_repro_in_a_fresh_copy_matches_the_committed_lock(tmp_path: Path) -> None:
    """On this machine the full pipeline reproduces the bytes recorded in dvc.lock."""
    workspace = tmp_path / "fraud"
    shutil.copytree(
        EXAMPLE,
        workspace,
        ignore=shutil.ignore_patterns("data", "cache", "tmp", "mlruns", "out", "__pycache__"),
    )
    committed = (EXAMPLE / "dvc.lock").read_text()
    env = example_env()

    def sh(*argv: str) -> str:
        proc = subprocess.run(
            list(argv), cwd=workspace, env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    sh("git", "init", "-q", "-b", "main")
    sh(sys.executable, "-m", "dvc", "repro")
    assert "up to date" in sh(sys.executable, "-m", "dvc", "status")
    assert (workspace / "dvc.lock").read_text() == committed
    lock = yaml.safe_load(committed)
    for stage in lock["stages"].values():
        for out in stage["outs"]:
            data = (workspace / out["path"]).read_bytes()
            assert hashlib.md5(data).hexdigest() == out["md5"]
            assert len(data) == out["size"]
