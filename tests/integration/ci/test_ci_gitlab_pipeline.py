"""The GitLab template runs for real: gitlab-ci-local executes every job on examples/fraud.

The workspace is a fresh git repository like the one a team has: the example project
with its trust root (.mlaudit/policy.yaml and allowed_signers with throwaway keys)
committed on `main`, and the signed quick EDD on a feature branch. gitlab-ci-local
(--force-shell-executor) runs the template's jobs as a merge-request pipeline: the
build job builds the training image with buildah and exports its digest through a
dotenv report, the shards run with `parallel:matrix`, the collect job starts the
immutable MLflow server, and the gate's JUnit, the report and the bundle come out
as artifacts. The tests assert on those artifacts, not on log lines.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from ci_gitlab_run import JOBS, PipelineRun
from ci_support import Buildah

pytestmark = [pytest.mark.slow, pytest.mark.buildah]


def _needs(run: PipelineRun, job: str) -> None:
    if job not in run.jobs:
        pytest.fail(f"{job} cannot run in this build: {run.missing}")


def test_every_job_of_the_template_ran(gitlab_pipeline: PipelineRun) -> None:
    assert gitlab_pipeline.missing == [], "every mlaudit command the template calls exists"
    assert gitlab_pipeline.jobs == list(JOBS)


def test_the_jobs_before_the_gate_pass(gitlab_pipeline: PipelineRun) -> None:
    for job in gitlab_pipeline.jobs:
        if job in {"mlaudit-gate", "mlaudit-export"}:
            continue
        assert gitlab_pipeline.job_passed(job), f"{job} failed:\n{gitlab_pipeline.log[-6000:]}"


def test_the_build_job_exports_the_image_digest(
    gitlab_pipeline: PipelineRun, buildah: Buildah
) -> None:
    dotenv = (gitlab_pipeline.out / "build.env").read_text()
    m = re.fullmatch(r"MLAUDIT_IMAGE_DIGEST=(sha256:[0-9a-f]{64})\n", dotenv)
    assert m, dotenv
    image = gitlab_pipeline.training_image
    found = buildah.run("inspect", "--type", "image", "--format", "{{.FromImageID}}", image)
    assert f"sha256:{found.strip().removeprefix('sha256:')}" == m.group(1)
    # The image the pipeline built is a working training image.
    ctr = buildah.run("from", "--quiet", image).strip()
    try:
        out = buildah.run(
            "run", "--isolation", "chroot", ctr, "--", "python", "-c", "import sklearn"
        )
        assert out == ""
    finally:
        buildah.run("rm", ctr, check=False)


def test_the_shards_cover_the_plan_and_record_the_image(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-collect")
    plan = json.loads((gitlab_pipeline.out / "plan.json").read_text())
    assert [s["MLAUDIT_SHARD"] for s in plan] == ["1/4", "2/4", "3/4", "4/4"]
    shard_dirs = sorted(p.name for p in gitlab_pipeline.out.glob("shard-*"))
    assert shard_dirs == ["shard-1", "shard-2", "shard-3", "shard-4"]
    results = json.loads((gitlab_pipeline.out / "final" / "results.json").read_text())
    planned = sum(int(s["MLAUDIT_SHARD_TRIALS"]) for s in plan)
    trials = results["trials"]
    assert len(trials) >= planned
    failed = [f"{t['trial_id']}: {t.get('reason')}" for t in trials if t["status"] != "succeeded"]
    assert not failed, failed[:3]
    digest = (gitlab_pipeline.out / "build.env").read_text().strip().split("=", 1)[1]
    assert digest in json.dumps(results["provenance"]), "MLAUDIT_IMAGE_DIGEST reached provenance"


def test_the_gate_result_matches_the_analysis(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-gate")
    analysis = json.loads((gitlab_pipeline.out / "final" / "analysis.json").read_text())
    junit = ET.parse(gitlab_pipeline.out / "gate.xml").getroot()
    cases = junit.findall(".//testcase")
    assert cases, "one testcase per gate rule"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    passed = gitlab_pipeline.job_passed("mlaudit-gate")
    assert passed == (not failed), failed
    assert passed == bool(analysis["decision"]["passed"]), analysis["decision"]


def test_the_report_and_bundle_are_artifacts(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-export")
    report = (gitlab_pipeline.out / "final" / "report.md").read_text()
    assert report.strip()
    bundle = gitlab_pipeline.out / "bundle.tar.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "bundle", "verify", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
