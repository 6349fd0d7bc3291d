"""lakeFS data pins via the real `lakefs` SDK against a loopback fake checked by its OpenAPI."""

from __future__ import annotations

import hashlib

import pytest
from lakefs_fake import FakeLakeFS

from audit.errors import ProvenanceError
from audit.provenance._hashing import sha256_json
from audit.provenance.lakefs import lakefs_pins
from audit.provenance.pins import changed_pins, collect_pins

TRAIN = {"transactions/2026-01.csv": b"a,b\n1,2\n", "transactions/2026-02.csv": b"a,b\n3,4\n"}


@pytest.fixture
def lakefs(httpserver, monkeypatch: pytest.MonkeyPatch, tmp_path) -> FakeLakeFS:
    fake = FakeLakeFS(httpserver)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.lakectl.yaml of the machine's
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    repo = fake.repository("fraud-data")
    repo.commit("main", {**TRAIN, "transactions-old/x.csv": b"old", "labels.csv": b"y\n1\n"})
    yield fake
    assert fake.violations == []


def test_a_branch_is_resolved_to_its_head_and_listed_at_that_commit(lakefs: FakeLakeFS):
    head = lakefs.repository("fraud-data").branches["main"]
    pin = lakefs_pins(["lakefs://fraud-data/main/transactions/"])[
        "lakefs://fraud-data/main/transactions/"
    ]
    assert (pin.ref_kind, pin.commit_id) == ("branch", head)
    assert pin.immutable_uri == f"lakefs://fraud-data/{head}/transactions/"
    expected = [
        [path, hashlib.md5(data).hexdigest(), len(data)] for path, data in sorted(TRAIN.items())
    ]
    assert [list(o) for o in pin.objects] == expected
    assert pin.manifest_digest == sha256_json(expected)
    # Listed at the immutable commit, never at the branch that may move meanwhile.
    listings = [path for method, path in lakefs.log if path.endswith("/objects/ls")]
    assert listings == [f"/api/v1/repositories/fraud-data/refs/{head}/objects/ls"]


def test_a_path_without_a_slash_does_not_take_its_siblings(lakefs: FakeLakeFS):
    pins = lakefs_pins(["lakefs://fraud-data/main/transactions"])
    paths = [o[0] for o in pins["lakefs://fraud-data/main/transactions"].objects]
    assert paths == sorted(TRAIN)


def test_a_tag_and_a_commit_id_are_checked(lakefs: FakeLakeFS):
    repo = lakefs.repository("fraud-data")
    head = repo.branches["main"]
    repo.tags["v1"] = head
    pins = lakefs_pins(
        ["lakefs://fraud-data/v1/labels.csv", f"lakefs://fraud-data/{head}/labels.csv"]
    )
    assert pins["lakefs://fraud-data/v1/labels.csv"].ref_kind == "tag"
    assert pins[f"lakefs://fraud-data/{head}/labels.csv"].ref_kind == "commit"
    assert {p.commit_id for p in pins.values()} == {head}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("lakefs://fraud-data/nope/labels.csv", "no branch or tag"),
        ("lakefs://fraud-data/" + "0" * 64 + "/labels.csv", "no commit"),
        ("lakefs://fraud-data/main/missing/", "no objects at 'missing/'"),
        ("lakefs://other-repo/main/x", "no branch or tag of lakeFS repository .other-repo."),
    ],
)
def test_what_cannot_be_pinned_is_refused_clearly(lakefs: FakeLakeFS, uri: str, message: str):
    with pytest.raises(ProvenanceError, match=message):
        lakefs_pins([uri])


def test_wrong_credentials_are_a_clear_refusal(lakefs: FakeLakeFS, monkeypatch):
    monkeypatch.setenv("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ProvenanceError, match="401"):
        lakefs_pins(["lakefs://fraud-data/main/labels.csv"])


def test_a_branch_moved_during_the_run_is_named(lakefs: FakeLakeFS, tmp_path):
    uri = "lakefs://fraud-data/main/transactions/"
    recorded = collect_pins(tmp_path, lakefs_uris=[uri]).to_dict()
    assert changed_pins(recorded, tmp_path) == []
    before = lakefs.repository("fraud-data").branches["main"]
    after = lakefs.repository("fraud-data").commit("main", {**TRAIN, "labels.csv": b"y\n0\n"})
    (problem,) = changed_pins(recorded, tmp_path)
    assert problem == (
        f"{uri}: lakeFS branch 'main' moved from commit {before[:12]} to {after[:12]} "
        "during the run"
    )


def test_no_configuration_is_a_clear_refusal(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("LAKECTL_SERVER_ENDPOINT_URL", "LAKECTL_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProvenanceError, match="no lakeFS server or credentials"):
        lakefs_pins(["lakefs://fraud-data/main/labels.csv"])


def test_an_unreachable_server_is_a_clear_refusal(lakefs: FakeLakeFS, monkeypatch):
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LAKECTL_SERVER_ENDPOINT_URL", f"http://127.0.0.1:{port}/api/v1")
    with pytest.raises(ProvenanceError, match="cannot reach the lakeFS server"):
        lakefs_pins(["lakefs://fraud-data/main/labels.csv"])
