"""Metrics parsing (DVC format), the journal's crash tolerance, the trial cache."""

from __future__ import annotations

import json

import pytest

from audit.protocol.cache import TrialCache
from audit.protocol.determinism import ReproducibilityRule, Tolerance, compare_metrics
from audit.protocol.journal import Journal, read_journal
from audit.protocol.metrics import read_metrics
from audit.protocol.trial import TrialOutcome, expand_command


def _write(tmp_path, text, name="metrics.json"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_nested_metrics_are_flattened(tmp_path):
    reading = read_metrics(_write(tmp_path, '{"score": 1, "val": {"auc": 0.5, "f": {"1": 2}}}'))
    assert reading.metrics == {"score": 1.0, "val.auc": 0.5, "val.f.1": 2.0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"score": NaN}', "NaN is not a finite number"),
        ('{"score": Infinity}', "Infinity is not a finite number"),
        ('{"score": "high"}', "metric 'score' is not a number (str)"),
        ('{"score": true}', "metric 'score' is not a number (bool)"),
        ('{"a": {"score": [1]}}', "metric 'a.score' is not a number (list)"),
        ('{"score": 1e999}', "metric 'score' is not finite"),
        ("[1, 2]", "must hold an object"),
        ("{broken", "is not valid"),
    ],
)
def test_bad_metrics_are_failures_with_reasons(tmp_path, text, problem):
    reading = read_metrics(_write(tmp_path, text))
    assert reading.metrics is None
    assert problem in reading.problem


def test_missing_file_and_missing_metric(tmp_path):
    assert "wrote no metrics.json" in read_metrics(tmp_path / "metrics.json").problem
    reading = read_metrics(_write(tmp_path, '{"loss": 1}'), ["score"])
    assert reading.problem == "metrics.json lacks the metric 'score'"


def test_yaml_metrics(tmp_path):
    assert read_metrics(_write(tmp_path, "score: .nan\n", "m.yaml")).metrics is None
    assert read_metrics(_write(tmp_path, "a: {b: 2}\n", "m.yaml")).metrics == {"a.b": 2.0}


def test_journal_skips_a_torn_last_line_and_fences_it(tmp_path):
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"event": "a"})
    with path.open("ab") as handle:
        handle.write(b'{"event": "torn')  # what a SIGKILL mid-write leaves
    assert [e["event"] for e in read_journal(path)] == ["a"]
    with Journal(path) as journal:
        journal.append({"event": "b"})
    assert [e["event"] for e in read_journal(path)] == ["a", "b"]
    assert path.read_bytes().count(b"\n") == 3


def test_cache_round_trip_and_corruption(tmp_path):
    cache = TrialCache(tmp_path)
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, {"trial_id": "baseline/0", "metrics": {"score": 1.0}})
    assert cache.get("ab" * 32)["trial_id"] == "baseline/0"
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_text("{half")
    assert cache.get("ab" * 32) is None
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_text(json.dumps({"fingerprint": "other"}))
    assert cache.get("ab" * 32) is None


def test_overrides_become_separate_argv_items():
    template = ["python", "train.py", "{overrides}", "--flag"]
    overrides = ["model.name=x; rm -rf /", "a=1"]
    assert expand_command(template, overrides, via="argv") == (
        "python",
        "train.py",
        "model.name=x; rm -rf /",
        "a=1",
        "--flag",
    )
    assert expand_command(template, overrides, via="params_file") == (
        "python",
        "train.py",
        "--flag",
    )


def test_compare_metrics_tolerances():
    rerun = TrialOutcome("succeeded", {"score": 1.0 + 1e-9, "loss": 2.0})

    def rule(names, abs_=0.0, rel=0.0):
        return ReproducibilityRule(compared=names, tolerance=Tolerance(abs_, rel))

    exact = compare_metrics({"score": 1.0, "loss": 2.0}, rerun, rule(("score", "loss")))
    assert exact["passed"] is False
    assert "metric 'score' differs" in exact["reason"]
    loose = compare_metrics({"score": 1.0, "loss": 2.0}, rerun, rule(("score", "loss"), 1e-6))
    assert loose["passed"] is True
    relative = compare_metrics({"score": 1.0}, rerun, rule(("score",), rel=1e-8))
    assert relative["passed"] is True
    crashed = TrialOutcome("failed", reason="x")
    failed = compare_metrics({"score": 1.0}, crashed, rule(("score",), 1))
    assert failed["passed"] is False
    assert failed["metrics"]["score"]["rerun"] is None


def test_leftover_trial_processes_of_a_killed_runner_are_killed(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    from audit.protocol.containment import kill_leftovers, process_start_ticks

    pid_file = tmp_path / "grandchild.pid"
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, pathlib; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"pathlib.Path({str(pid_file)!r}).write_text(str(c.pid))",
        ],
        start_new_session=True,
    )
    ticks = process_start_ticks(leader.pid)
    leader.wait()  # the leader is gone; its grandchild lives on in the session
    grandchild = int(pid_file.read_text())
    assert Path(f"/proc/{grandchild}").exists()
    kill_leftovers([{"pid": leader.pid, "pid_start": ticks}])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{grandchild}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the leftover grandchild is still running")


def test_processes_holding_a_submission_token_are_killed_wherever_they_are(tmp_path):
    """The resume's net for a trial whose start a killed driver never journaled."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from audit.protocol.containment import SUBMISSION_VARIABLE, sweep_submission

    def holder(token: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, SUBMISSION_VARIABLE: token}
        code = "import time; time.sleep(60)"
        return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)

    mine, other, longer = holder("tok-1"), holder("tok-2"), holder("tok-10")
    try:
        assert sweep_submission("tok-1") == [mine.pid]
        # Killed and reaped by the sweep (it was our child here), so it is gone.
        assert not Path(f"/proc/{mine.pid}").exists()
        assert other.poll() is None  # other tokens, even one it prefixes, are spared
        assert longer.poll() is None
    finally:
        for process in (mine, other, longer):
            process.kill()
            process.wait()


def test_one_runner_per_out_dir(tmp_path):
    from audit.errors import UsageError
    from audit.protocol.runner import _exclusive

    with _exclusive(tmp_path), pytest.raises(UsageError, match="another mlaudit run"):  # noqa: SIM117
        with _exclusive(tmp_path):
            pass
    with _exclusive(tmp_path):
        pass


def test_hostile_metric_keys_cannot_reach_a_terminal_raw(tmp_path):
    reading = read_metrics(_write(tmp_path, json.dumps({"\x1b[31mred": "x"})))
    assert "\x1b" not in reading.problem
    assert "\\x1b[31mred" in reading.problem


def test_the_sweep_reads_only_the_runners_descendants(tmp_path):
    """With the subreaper on, the kernel's children lists name every process to look at."""
    from audit.protocol.containment import _descendants

    def task(pid: int, tid: int, children: str) -> None:
        folder = tmp_path / str(pid) / "task" / str(tid)
        folder.mkdir(parents=True)
        (folder / "children").write_text(children)

    task(10, 10, "11 12 ")
    task(10, 13, "14")  # a thread's children count too
    task(11, 11, "")
    task(12, 12, "15")
    task(15, 15, "")
    task(20, 20, "21")  # not ours
    assert sorted(_descendants(10, tmp_path) or []) == [11, 12, 14, 15]
    assert _descendants(99, tmp_path) is None  # no children lists: the caller scans all
