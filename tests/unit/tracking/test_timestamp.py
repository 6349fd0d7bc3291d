"""RFC 3161 timestamps over checkpoints, against a real local TSA (`openssl ts -reply`)."""

from __future__ import annotations

import json
import subprocess

import pytest

from audit.documents import parse_checkpoint_document
from audit.errors import TimestampError, TrackingError
from audit.tracking.checkpoint import Checkpoint, check_timestamp, timestamp_checkpoint
from audit.tracking.timestamp import parse_timestamp, request_timestamp, verify_timestamp

ROOT = "ab" * 32


@pytest.fixture(scope="module")
def stamped(tsa) -> Checkpoint:
    return timestamp_checkpoint(Checkpoint("h/experiments/1", "1", 3, ROOT), tsa.url)


def test_a_timestamped_checkpoint_round_trips_its_reader_and_verifies(stamped, tsa, tmp_path):
    document = stamped.to_json()
    assert document["timestamp"]["tsa"] == tsa.url
    parsed = parse_checkpoint_document(json.dumps(document).encode(), "cp.json")
    when = check_timestamp(parsed, tsa.ca_cert)
    assert when == document["timestamp"]["gen_time"]
    # The independent verifier agrees on the same token and note.
    token = parse_timestamp(document["timestamp"], "/timestamp").token
    (tmp_path / "token").write_bytes(token)
    (tmp_path / "note").write_bytes(stamped.note())
    argv = ["openssl", "ts", "-verify", "-data", str(tmp_path / "note"), "-in"]
    argv += [str(tmp_path / "token"), "-token_in", "-CAfile", str(tsa.ca_cert)]
    assert subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_the_token_covers_this_checkpoint_only(stamped, tsa):
    moved = Checkpoint(stamped.origin, "1", 4, ROOT, timestamp=stamped.timestamp)
    with pytest.raises(TimestampError, match="message imprint mismatch"):
        check_timestamp(moved, tsa.ca_cert)


def test_a_certificate_that_did_not_issue_the_tsa_is_refused(stamped, tsa):
    with pytest.raises(TimestampError, match="unable to get local issuer certificate"):
        check_timestamp(stamped, tsa.other_ca_cert)
    assert check_timestamp(stamped, tsa.tsa_cert)  # the TSA certificate itself is an anchor


def test_an_unstamped_checkpoint_has_nothing_to_check(tsa):
    with pytest.raises(TimestampError, match="carries no RFC 3161 timestamp"):
        check_timestamp(Checkpoint("h/experiments/1", "1", 3, ROOT), tsa.ca_cert)


def test_a_replayed_reply_for_another_request_is_refused(tsa):
    request_timestamp(b"first\n", tsa.url)
    with pytest.raises(TimestampError, match="does not answer the request"):
        request_timestamp(b"second\n", f"{tsa.base}/replay")


def test_a_failing_or_absent_authority_is_a_clear_error(tsa):
    with pytest.raises(TrackingError, match="answered HTTP 500"):
        request_timestamp(b"x\n", f"{tsa.base}/broken")
    with pytest.raises(TrackingError, match="unreachable"):
        request_timestamp(b"x\n", "http://127.0.0.1:9/tsa")


def test_a_garbled_token_is_refused(stamped, tsa):
    bad = dict(stamped.timestamp or {}, token="bm90IGEgdG9rZW4=")
    with pytest.raises(TimestampError, match="not a timestamp token"):
        verify_timestamp(parse_timestamp(bad, "/timestamp"), stamped.note(), tsa.ca_cert)
