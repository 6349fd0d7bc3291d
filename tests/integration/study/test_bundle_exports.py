"""The bundle's compliance exports, each checked by an independent tool.

Two studies: the fraud-like fixture study (tests/fixtures/study/passing, the demo's
shape, gate passed) built in-process, and a real small study whose gate FAILS, run
through the whole pipeline and `mlaudit bundle create` / `bundle verify`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from export_validators import cyclonedx_problems, hf_card, oscal_problems, python_pattern
from toystudy import CLAIM_B_FAILS, ToyStudy, build_toy_study, gate_args, mlaudit

from audit.bundle import exports, layout
from audit.bundle.archive import read_archive, write_archive
from audit.bundle.attestation import envelope, statement
from audit.bundle.create import BundleInputs, SealedRecord, build_members
from audit.bundle.exports.oscal import NS as OSCAL_NS
from audit.bundle.verify import verify_bundle
from audit.documents import dumps

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "study"
EXPORT_PATHS = sorted(exports.ROLES.values())


def _fixture_inputs(**edd_changes: Any) -> BundleInputs:
    sys.path.insert(0, str(FIXTURES))
    import make_fixtures as mf

    edd = mf.edd_document(
        design="leave-one-out",
        seeds=list(range(10)),
        components=mf.ALL[:2],
        claims=[mf.MAIN_CLAIMS[0], mf.MAIN_CLAIMS[1], mf.MAIN_CLAIMS[4]],
    )
    edd.update(edd_changes)
    folder = FIXTURES / "passing"
    return BundleInputs(
        edd_name="edd.yaml",
        edd=yaml.safe_dump(edd, sort_keys=False).encode(),
        approvals={},
        trust_files={},
        trust_source={"ref": "main", "commit": "a" * 40, "protected": True},
        results=(folder / "results.json").read_bytes(),
        analysis=(folder / "analysis.json").read_bytes(),
        gate=(folder / "gate.json").read_bytes(),
        dvc_lock=b"schema: '2.0'\nstages: {}\n",
    )


@pytest.fixture(scope="module")
def fraud() -> dict[str, bytes]:
    return build_members(_fixture_inputs())


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[ToyStudy, Path]:
    """A real study whose gate fails (claim b is not met), bundled by the CLI."""
    root = tmp_path_factory.mktemp("failing")
    toy = build_toy_study(root, edd_id="toy-failing", seeds=3, claim_b=CLAIM_B_FAILS)
    out, repo = toy.out, toy.repo
    # The pipeline without the reports (run_pipeline renders two): fewer processes.
    mlaudit("ablate", "run", toy.edd, "--trust-ref", "main", "--out", out, cwd=repo)
    mlaudit("ablate", "analyze", out / "results.json", "-o", out / "analysis.json", cwd=repo)
    mlaudit("gate", *gate_args(toy), "-o", out / "gate.json", cwd=repo, check=False)
    bundle = root / "bundle.tar.gz"
    mlaudit(
        "bundle", "create", "-o", bundle, "--edd", toy.edd, "--dir", toy.out,
        "--trust-ref", "main", cwd=toy.repo,
    )  # fmt: skip
    return toy, bundle


def _oscal(members: dict[str, bytes]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(members[exports.OSCAL])
    return document["assessment-results"]


def _check_every_export(members: dict[str, bytes]) -> None:
    assert oscal_problems(json.loads(members[exports.OSCAL])) == []
    assert cyclonedx_problems(members[exports.CYCLONEDX].decode()) == []
    hf_card(members[exports.MODEL_CARD].decode())


def test_fraud_bundle_exports_pass_their_independent_checkers(fraud):
    _check_every_export(fraud)
    manifest = json.loads(fraud[layout.MANIFEST])
    for path in EXPORT_PATHS:
        assert manifest["files"][path] == hashlib.sha256(fraud[path]).hexdigest()
        assert path in fraud[layout.INDEX].decode()


@pytest.mark.slow
def test_failing_gate_bundle_exports_pass_their_checkers_and_verify(failing):
    toy, bundle = failing
    gate = json.loads((toy.out / "gate.json").read_text())
    assert not gate["passed"]
    members = read_archive(bundle)
    _check_every_export(members)
    checks = dict(verify_bundle(bundle).checks)
    assert checks["exports"], checks
    assert all(checks.values()), checks
    # One finding per failed rule, tied to that rule's observation; none for the others.
    result = _oscal(members)["results"][0]
    failed = [r["rule"] for r in gate["rules"] if not r["passed"]]
    assert [f["target"]["target-id"] for f in result["findings"]] == failed
    by_uuid = {o["uuid"]: o for o in result["observations"]}
    for finding in result["findings"]:
        observation = by_uuid[finding["related-observations"][0]["observation-uuid"]]
        assert {"name": "result", "ns": OSCAL_NS, "value": "fail"} in observation["props"]
    assert "merge gate **FAILED**" in members[exports.EVIDENCE_MAP_MD].decode()


def test_oscal_observes_every_rule_and_lists_every_member_by_hash(fraud):
    document = _oscal(fraud)
    result = document["results"][0]
    gate = json.loads(fraud[layout.GATE])
    assert [o["title"] for o in result["observations"]] == [r["title"] for r in gate["rules"]]
    assert "findings" not in result  # the gate passed
    resources = {r["title"]: r for r in document["back-matter"]["resources"]}
    evidence = exports.evidence_members(fraud)
    assert set(resources) == set(evidence)
    for name, data in evidence.items():
        (rlink,) = resources[name]["rlinks"]
        assert rlink["hashes"] == [
            {"algorithm": "SHA-256", "value": hashlib.sha256(data).hexdigest()}
        ]
    # Every piece of relevant evidence points at a back-matter resource.
    uuids = {r["uuid"] for r in resources.values()}
    for observation in result["observations"]:
        for item in observation["relevant-evidence"]:
            assert item["href"].removeprefix("#") in uuids
    assert uuid.UUID(document["uuid"]).version == 5


def test_exports_are_byte_identical_for_the_same_bundle_and_change_with_it(fraud):
    again = build_members(_fixture_inputs())
    assert {p: again[p] for p in EXPORT_PATHS} == {p: fraud[p] for p in EXPORT_PATHS}
    other = build_members(_fixture_inputs(title="Another title"))
    assert _oscal(other)["uuid"] != _oscal(fraud)["uuid"]


def test_model_cards_carry_the_analysis_numbers_hypothesis_and_data_hashes(fraud):
    analysis = json.loads(fraud[layout.ANALYSIS])
    results = json.loads(fraud[layout.RESULTS])
    first = analysis["comparisons"][0]
    bom = json.loads(fraud[exports.CYCLONEDX])
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    metric = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]
    assert float(metric["value"]) == first["delta"]["value"]
    assert float(metric["confidenceInterval"]["lowerBound"]) == first["ci"]["low"]
    assert float(metric["confidenceInterval"]["upperBound"]) == first["ci"]["high"]
    properties = {p["name"]: p["value"] for p in model["modelCard"]["properties"]}
    assert properties["mlaudit:edd:hypothesis"].startswith("Graph features raise PR-AUC")
    assert model["modelCard"]["considerations"]["technicalLimitations"]
    ((path, md5),) = results["provenance"]["data"].items()
    (data,) = bom["components"]
    assert (data["name"], data["hashes"]) == (path, [{"alg": "MD5", "content": md5}])
    card = hf_card(fraud[exports.MODEL_CARD].decode())
    deltas = [r for r in card.data.eval_results if r.metric_args]
    assert deltas[0].metric_value == first["delta"]["value"]
    assert deltas[0].metric_args["confidence_interval"] == [first["ci"]["low"], first["ci"]["high"]]
    assert card.data.eval_results[0].dataset_args == {"dvc_hashes": {path: md5}}


def test_evidence_map_links_requirements_to_files_and_escapes_the_edd():
    hostile = '<script>alert(1)</script> [x](https://evil.example) <img src=x onerror="y">'
    members = build_members(_fixture_inputs(title=hostile, owners=["<b>@boss</b>"]))
    html = members[exports.EVIDENCE_MAP_HTML].decode()
    markdown = members[exports.EVIDENCE_MAP_MD].decode()
    for page in (html, markdown):
        for raw in ("<script", "<img", "<b>"):
            assert raw not in page
    assert 'href="https://evil' not in html
    assert "](https://evil" not in markdown
    assert "Content-Security-Policy" in html
    for requirement in ("Annex IV 2(b)", "Annex IV 2(d)", "Annex IV 2(g)", "effective challenge"):
        assert requirement in html
    assert 'href="../edd/edd.yaml"' in html
    assert 'href="../results/gate.json"' in html
    assert "paraphrase, not the official wording" in markdown


def test_evidence_map_shows_a_folder_of_many_records_as_one_link():
    records = [
        SealedRecord("1", f"{i:032x}", i, "0" * 64, {"run_id": f"{i:032x}"}, i, [])
        for i in range(7)
    ]
    inputs = _fixture_inputs()
    members = build_members(replace(inputs, records=records, checkpoint=b"{}"))
    page = members[exports.EVIDENCE_MAP_MD].decode()
    assert "[`tracking/records/1/`](../tracking/records/1/) (7 files)" in page
    assert "00000000-" not in page  # no record listed on its own
    resources = _oscal(members)["back-matter"]["resources"]
    assert sum(r["title"].startswith("tracking/records/") for r in resources) == 7


def _repack(members: dict[str, bytes], target: Path) -> Path:
    with target.open("wb") as handle:
        write_archive(members, handle)
    return target


def _reseal(members: dict[str, bytes]) -> dict[str, bytes]:
    """What a forger of an unsigned bundle does: recompute the manifest and the attestation."""
    manifest = json.loads(members[layout.MANIFEST])
    files = {n for n in members if n not in (layout.MANIFEST, layout.ATTESTATION)}
    manifest["files"] = {n: hashlib.sha256(members[n]).hexdigest() for n in sorted(files)}
    manifest["layout"] = {k: v for k, v in manifest["layout"].items() if v in members}
    members = {**members, layout.MANIFEST: dumps(manifest)}
    rest = {n: d for n, d in members.items() if n != layout.ATTESTATION}
    stmt = statement(rest, {"edd": manifest["edd"], "decision": manifest["decision"]})
    return {**members, layout.ATTESTATION: dumps(envelope(stmt, None))}


@pytest.mark.slow
def test_a_tampered_export_is_caught_and_a_bundle_without_exports_verifies(failing, tmp_path):
    _, bundle = failing
    members = read_archive(bundle)
    document = json.loads(members[exports.OSCAL])
    document["assessment-results"]["results"][0].pop("findings")  # hide the failure
    forged = {**members, exports.OSCAL: dumps(document)}
    # Caught by the manifest's digest; and, with the manifest recomputed, by re-rendering.
    for name, tampered in (("manifest", forged), ("exports", _reseal(forged))):
        path = _repack(tampered, tmp_path / f"{name}.tar.gz")
        report = verify_bundle(path)
        assert name in {f.id for f in report.findings}, report.to_dict()
    # Evidence the exports cannot read is reported by the other checks, never a crash.
    broken = _reseal({**members, layout.GATE: b"{}"})
    report = verify_bundle(_repack(broken, tmp_path / "broken.tar.gz"))
    assert not report.passed
    assert "exports not re-rendered: the evidence did not load" in report.notes
    # A bundle from before the exports existed still verifies.
    old = _reseal({n: d for n, d in members.items() if not n.startswith("exports/")})
    report = verify_bundle(_repack(old, tmp_path / "old.tar.gz"))
    assert report.passed, report.to_dict()


def test_the_oscal_checker_is_live_tokens_dates_and_patterns():
    assert python_pattern(r"^(\p{L}|_)$").startswith("^([")
    with pytest.raises(AssertionError, match="cannot map"):
        python_pattern(r"\p{Lu}")
    members = build_members(_fixture_inputs())
    document = json.loads(members[exports.OSCAL])
    results = document["assessment-results"]["results"][0]
    results["props"][0]["name"] = "1-not-a-token"
    results["start"] = "2026-11-20 11:00"
    results["observations"][0]["props"][0]["name"] = "énoncé_1"  # a valid Unicode token
    problems = oscal_problems(document)
    assert any("is not a 'date-time'" in p for p in problems), problems  # format checked
    assert any("/props/0/name: '1-not-a-token' does not match" in p for p in problems)
    assert not any("observations" in p for p in problems), problems  # Unicode letters pass
