"""Fixtures for the fraud example: its folder, its scripts as modules, a small dataset."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fraud"

# A world small enough for seconds, large enough that every fraud mechanism appears
# on both sides of the time split.
SMALL_GENERATE = {
    "seed": 7,
    "n_cards": 4000,
    "n_merchants": 400,
    "days": 90,
    "txns_per_card_max": 20,
    "household_share": 0.1,
    "n_public_devices": 10,
    "public_device_use": 0.005,
    "risky_merchant_share": 0.03,
    "n_rings": 12,
    "ring_cards_max": 20,
    "ring_devices_max": 4,
    "n_lone_fraud_cards": 60,
    "n_friendly_fraud": 30,
}


def load_script(name: str) -> ModuleType:
    """Import examples/fraud/<name>.py as a module (the example is not a package)."""
    spec = importlib.util.spec_from_file_location(f"fraud_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def example_env() -> dict[str, str]:
    """The example's scripts say `python`: it must be this interpreter."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def write_params(folder: Path, generate: dict[str, Any]) -> Path:
    params = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    params["generate"] = generate
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_script(name: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / f"{name}.py"), *[str(a) for a in args]],
        capture_output=True,
        text=True,
        check=False,
        env=env or example_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """transactions.csv and features.csv of the small world, built once per session."""
    folder = tmp_path_factory.mktemp("fraud-small")
    params = write_params(folder, SMALL_GENERATE)
    run_script("generate", "--params", params, "--out", folder / "transactions.csv")
    run_script(
        "featurize",
        "--params",
        params,
        "--in",
        folder / "transactions.csv",
        "--out",
        folder / "features.csv",
    )
    return folder


@pytest.fixture
def train(small_data: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run train.py on the small world as the protocol would: seed and trial dir in env."""

    def run(
        *overrides: str, seed: int = 0, trial: str = "trial"
    ) -> subprocess.CompletedProcess[str]:
        env = example_env()
        env["MLAUDIT_SEED"] = str(seed)
        env["MLAUDIT_TRIAL_DIR"] = str(tmp_path / trial)
        return subprocess.run(
            [
                sys.executable,
                str(EXAMPLE / "train.py"),
                f"data.features={small_data / 'features.csv'}",
                "model.max_iter=30",
                *overrides,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=tmp_path,
        )

    return run
