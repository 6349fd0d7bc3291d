"""End to end: the whole audited PR check vs the same trial commands run bare by `xargs -P 2`.

Audited, as CI runs it: `edd verify` -> `ablate run --workers 2` with live logging to a live
`mlaudit server` -> analyze -> checkpoint -> gate -> report md + html -> bundle create ->
bundle verify, each step its own command; then the same steps after the run again, in one
process (`mlaudit finish`, which ends with `bundle verify`'s checks, on a copy of the same
results.json), so both are printed. Bare:
the trial commands of the plan (every arm x seed and the determinism re-run; same argv,
environment variables and working directory) run by `xargs -P 2`. Bare and audited rounds
alternate (A/B, then B/A) and each figure is the median of the rounds. A fresh server is
started for every audited round (its start is timed apart, not counted) so every ledger
holds exactly one study, as a CI job's server does. Trials run with --no-cache.

Studies: `fraud` (examples/fraud, the quick EDD: 48 trials + the re-run, data made by
`dvc repro`, two approvers) and `synthetic` (a trial script that spins `--work` million
steps and writes one metric). Targets (fraud): audited / bare <= 1.10, the steps after the
run <= 4 s (with `mlaudit finish`); exit 1 when missed (--no-targets: only report).
Usage: .venv/bin/python bench/e2e_overhead.py [--study fraud|synthetic|both] [--rounds 3]
       [--seeds 20] [--work 0.5] [--no-targets]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from protocol_common import BIN, MLAUDIT, QUIET, ROOT, edd, make_study

TARGET_RATIO = 1.10
TARGET_STEPS = 4.0
WORKERS = 2

# The synthetic trial: spins `work` million steps, then writes one metric whose paired
# difference (0.1 plus a little seed noise) an `improves` claim can pass on 2 seeds.
TRIAL = """import hashlib, json, os, sys
config = dict(a.split("=", 1) for a in sys.argv[1:])
total = 0
for i in range(int(float(config.get("work", "0")) * 1e6)):
    total += i
seed = int(os.environ["MLAUDIT_SEED"])
arm = config.get("features.a", "true")
noise = int(hashlib.sha256(f"{seed}/{arm}".encode()).hexdigest()[:8], 16) / 2**32 * 0.01
d = os.environ["MLAUDIT_TRIAL_DIR"]
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "metrics.json"), "w") as f:
    json.dump({"score": 0.5 + 0.1 * (arm != "false") + noise}, f)
"""


@dataclass
class Study:
    name: str
    workdir: Path  # the project root: where trials run and the EDD lives
    env: dict[str, str]
    scratch: Path
    trials: list[tuple[str, int, list[str]]] = field(default_factory=list)


def mlaudit(*args: str) -> list[str]:
    return [MLAUDIT, *args]


def sh(study: Study, argv: Sequence[str], *, ok: Sequence[int] = (0,)) -> float:
    """Wall seconds of one command; stops the benchmark when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv), cwd=study.workdir, env=study.env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        tail = proc.stdout[-2000:] + proc.stderr[-3000:]
        raise SystemExit(f"{shlex.join(argv)} exited {proc.returncode}:\n{tail}")
    return seconds


# ---------------------------------------------------------------- the two studies


def synthetic_study(tmp: Path, seeds: int, work: float) -> Study:
    repo = make_study(tmp, edd(seeds, work=work), trial=TRIAL)
    env = {**os.environ, **QUIET, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return Study("synthetic", repo, env, tmp)


def fraud_study(tmp: Path) -> Study:
    """The demo's quick workspace, built by the demo's own steps (keys, git, dvc repro, sign)."""
    sys.path.insert(0, str(ROOT / "examples" / "fraud"))
    import demo  # examples/fraud/demo.py

    state = demo.Demo(quick=True, workers=WORKERS, root=tmp / "fraud")
    with contextlib.redirect_stdout(io.StringIO()):
        demo.prepare_env(state)
        demo.make_keys(state)
        demo.build_workspace(state)
        demo.reproduce_data(state)
        demo.sign(state)
    return Study("fraud quick", state.ws, dict(state.env), tmp)


def plan_trials(study: Study) -> None:
    """Every (arm, seed, argv) the plan runs, and the determinism re-run."""
    proc = subprocess.run(
        mlaudit("ablate", "plan", "edd.yaml", "--json"),
        cwd=study.workdir,
        env=study.env,
        capture_output=True,
        text=True,
        check=True,
    )
    plan = json.loads(proc.stdout)
    runs = [(arm, seed) for seed in plan["seeds"] for arm in plan["arms"]]
    repro = plan["reproducibility"]
    runs += [(a, repro["seed"]) for a in plan["arms"] if a["name"] == repro["arm"]]
    for arm, seed in runs:
        argv: list[str] = []
        for item in plan["command"]:
            argv.extend(arm["overrides"] if item == "{overrides}" else [item])
        study.trials.append((arm["name"], int(seed), argv))


# ---------------------------------------------------------------- bare


def bare_seconds(study: Study, round_no: int) -> float:
    out = study.scratch / f"bare-{round_no}"
    lines = []
    for index, (arm, seed, argv) in enumerate(study.trials):
        trial_dir = out / arm / f"{seed}-{index}"
        trial_dir.mkdir(parents=True)
        env = [
            f"MLAUDIT_SEED={seed}",
            f"PYTHONHASHSEED={seed}",
            f"MLAUDIT_ARM={arm}",
            f"MLAUDIT_TRIAL_ID={arm}/{seed}",
            f"MLAUDIT_TRIAL_DIR={trial_dir}",
        ]
        lines.append(shlex.join([*env, *argv]))
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(WORKERS), "-L", "1", "env"],
        input="\n".join(lines) + "\n",
        text=True,
        cwd=study.workdir,
        env=study.env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return seconds


# ---------------------------------------------------------------- audited


@contextlib.contextmanager
def live_server(study: Study, folder: Path):  # type: ignore[no-untyped-def]
    """A fresh `mlaudit server` on its own SQLite store; stopped as a process group."""
    folder.mkdir(parents=True)
    argv = mlaudit(
        "server",
        "--backend-store-uri",
        f"mlaudit+sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--port",
        "0",
    )
    with (folder / "console.log").open("w") as log:
        server = subprocess.Popen(
            argv,
            cwd=folder,
            env=study.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    try:
        yield _address(server, folder)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def _address(server: subprocess.Popen[str], folder: Path) -> str:
    assert server.stdout is not None
    deadline = time.monotonic() + 180
    while (remaining := deadline - time.monotonic()) > 0:
        if not select.select([server.stdout], [], [], remaining)[0]:
            break
        line = server.stdout.readline()
        if not line:
            break
        match = re.search(r"mlaudit server: (https?://\S+)", line)
        if match:
            return match.group(1)
    raise SystemExit(f"mlaudit server did not start; see {folder / 'console.log'}")


def steps_after_run(study: Study, out: Path, uri: str) -> dict[str, float]:
    """The steps after the run, each its own command, as CI's separate jobs run them."""
    results, analysis = str(out / "results.json"), str(out / "analysis.json")
    checkpoint, gate = str(out / "checkpoint.json"), str(out / "gate.json")
    bundle = str(out / "audit.bundle.tar.gz")
    report = [analysis, "--results", results, "--checkpoint", checkpoint, "--gate", gate]
    tracking = ["--tracking-uri", uri, "--checkpoint", checkpoint]
    commands = {
        "analyze": mlaudit("ablate", "analyze", results, "-o", analysis),
        "checkpoint": mlaudit(
            "track", "checkpoint", "--tracking-uri", uri, "--with-records", "-o", checkpoint
        ),
        "gate": mlaudit(
            *("gate", "--analysis", analysis, "--results", results, "--edd", "edd.yaml"),
            *("--trust-ref", "main", "-o", gate, "--junit", str(out / "gate.junit.xml")),
            *tracking,
        ),
        "report md": mlaudit("report", "render", *report, "-o", str(out / "report.md")),
        "report html": mlaudit(
            "report", "render", *report, "--format", "html", "-o", str(out / "report.html")
        ),
        "bundle create": mlaudit(
            *("bundle", "create", "-o", bundle, "--edd", "edd.yaml", "--dir", str(out)),
            *("--trust-ref", "main", *tracking),
        ),
        "bundle verify": mlaudit("bundle", "verify", bundle),
    }
    return {name: sh(study, argv) for name, argv in commands.items()}


def finish_after_run(study: Study, out: Path, uri: str) -> dict[str, float] | None:
    """The same steps with `mlaudit finish` (one process; it checks the bundle as
    `bundle verify` does), or, on a build whose `finish` does not, then `bundle verify`."""
    usage = subprocess.run(
        mlaudit("finish", "--help"), capture_output=True, text=True, env=study.env
    )
    if usage.returncode:
        return None  # this build has no `finish`
    args = ("--edd", "edd.yaml", "--trust-ref", "main", "--tracking-uri", uri)
    if "--no-verify" in usage.stdout:
        return {"finish, bundle verify included": sh(study, mlaudit("finish", str(out), *args))}
    return {
        "finish": sh(study, mlaudit("finish", str(out), *args)),
        "bundle verify": sh(study, mlaudit("bundle", "verify", str(out / "audit.bundle.tar.gz"))),
    }


@dataclass
class Audited:
    verify: float
    run: float
    steps: dict[str, float]
    finish: dict[str, float] | None
    server_start: float

    @property
    def total(self) -> float:
        return self.verify + self.run + sum(self.steps.values())

    @property
    def total_finish(self) -> float | None:
        if self.finish is None:
            return None
        return self.verify + self.run + sum(self.finish.values())


def audited(study: Study, round_no: int) -> Audited:
    folder = study.scratch / f"audited-{round_no}"
    out = folder / "out"
    started = time.perf_counter()
    with live_server(study, folder / "mlruns") as uri:
        server_start = time.perf_counter() - started
        verify = sh(study, mlaudit("edd", "verify", "edd.yaml", "--trust-ref", "main"))
        run = sh(
            study,
            mlaudit(
                *("ablate", "run", "edd.yaml", "--trust-ref", "main", "--out", str(out)),
                *("--workers", str(WORKERS), "--no-cache", "--tracking-uri", uri),
            ),
        )
        again = folder / "out-finish"
        again.mkdir()
        shutil.copyfile(out / "results.json", again / "results.json")
        steps = steps_after_run(study, out, uri)
        finish = finish_after_run(study, again, uri)
    return Audited(verify, run, steps, finish, server_start)


# ---------------------------------------------------------------- report


def measure(study: Study, rounds: int) -> tuple[list[float], list[Audited]]:
    plan_trials(study)
    bares: list[float] = []
    runs: list[Audited] = []
    for round_no in range(rounds):
        # A/B then B/A: neither side always runs on the warmer (or busier) machine.
        order = ("bare", "audited") if round_no % 2 == 0 else ("audited", "bare")
        for side in order:
            if side == "bare":
                bares.append(bare_seconds(study, round_no))
            else:
                runs.append(audited(study, round_no))
        line = f"  round {round_no + 1}: bare {bares[-1]:.2f} s, audited {runs[-1].total:.2f} s"
        if runs[-1].total_finish is not None:
            line += f" (with finish {runs[-1].total_finish:.2f} s)"
        print(line, flush=True)
    return bares, runs


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def summarize(
    study: Study, bares: list[float], runs: list[Audited], *, judged: bool = True
) -> tuple[float, float | None]:
    """Prints the medians; returns (ratio, steps after the run with finish, if available).

    The targets are printed only where they are judged (the fraud study): the synthetic
    study's trials last milliseconds, so fixed costs decide its ratio by design.
    """
    bare = median(bares)
    print(f"{study.name}: {len(study.trials)} trial commands, {WORKERS} workers, "
          f"median of {len(runs)} interleaved rounds")  # fmt: skip
    print(f"  server start (apart, not counted) {median([r.server_start for r in runs]):7.2f} s")
    print(f"  bare (xargs -P {WORKERS})              {bare:7.2f} s")
    print(f"  edd verify                        {median([r.verify for r in runs]):7.2f} s")
    print(f"  ablate run (live logging)         {median([r.run for r in runs]):7.2f} s   "
          f"ratio to bare {median([r.run for r in runs]) / bare:5.2f}x")  # fmt: skip
    for name in runs[0].steps:
        print(f"  {name:34s}{median([r.steps[name] for r in runs]):7.2f} s")
    steps = median([sum(r.steps.values()) for r in runs])
    total = median([r.total for r in runs])
    print(f"  steps after the run, separate     {steps:7.2f} s")
    print(f"  audited, separate commands        {total:7.2f} s   ratio {total / bare:5.2f}x")
    ratio, finish_steps = total / bare, None
    finishes = [r.finish for r in runs if r.finish is not None]
    if finishes:
        for name in finishes[0]:
            print(f"  {name + ' (finish path)':34s}{median([f[name] for f in finishes]):7.2f} s")
        finish_steps = median([sum(f.values()) for f in finishes])
        total_finish = median([r.total_finish for r in runs if r.total_finish is not None])
        ratio = total_finish / bare
        steps_target = f"   (target <= {TARGET_STEPS} s)" if judged else ""
        ratio_target = f" (target <= {TARGET_RATIO}x)" if judged else " (no target)"
        print(f"  steps after the run, finish       {finish_steps:7.2f} s{steps_target}")
        print(f"  audited, with finish              {total_finish:7.2f} s   ratio {ratio:5.2f}x"
              f"{ratio_target}")  # fmt: skip
    return ratio, finish_steps


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", choices=("fraud", "synthetic", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=20, help="synthetic study: seeds per arm")
    parser.add_argument("--work", type=float, default=0.5, help="synthetic: M steps per trial")
    parser.add_argument("--no-targets", action="store_true", help="report only, never fail")
    args = parser.parse_args()
    missed = []
    with tempfile.TemporaryDirectory(prefix="mlaudit-e2e-") as tmp:
        if args.study in ("synthetic", "both"):
            study = synthetic_study(Path(tmp) / "synthetic", args.seeds, args.work)
            summarize(study, *measure(study, args.rounds), judged=False)
        if args.study in ("fraud", "both"):
            study = fraud_study(Path(tmp))
            ratio, steps = summarize(study, *measure(study, args.rounds))
            if ratio > TARGET_RATIO:
                missed.append(f"end-to-end ratio {ratio:.2f}x > {TARGET_RATIO}x")
            if steps is None or steps > TARGET_STEPS:
                missed.append(f"steps after the run {steps} s > {TARGET_STEPS} s")
    for miss in missed:
        print(f"target missed: {miss}")
    return 1 if missed and not args.no_targets else 0


if __name__ == "__main__":
    sys.exit(main())
