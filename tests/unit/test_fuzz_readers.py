"""Property-based fuzzing of the readers of outside input: no input is an internal error.

Each reader either returns a value or raises its documented MlauditError (for the
metrics reader: returns a reason); anything else would reach the CLI as exit 3.
Inputs are random bytes, structured near-misses, and byte mutations of valid
files. Seeds are fixed (derandomize) and budgets small, so `make test` stays fast
and a failure reproduces; the hostile files found so far are kept in
tests/corpus/hostile/readers/ and replayed by test_hostile_corpus_files.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.bundle.archive import Limits, read_archive, write_archive
from audit.edd.allowed_signers import parse_allowed_signers, parse_revoked_keys
from audit.edd.policy import parse_policy
from audit.edd.safe_yaml import parse_yaml_bytes
from audit.errors import BundleError, MlauditError, TrustError
from audit.protocol.metrics import read_metrics

T = TypeVar("T")
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
HOSTILE = CORPUS / "hostile" / "readers"
VALID_EDD = (CORPUS / "edd" / "valid" / "minimal.yaml").read_bytes()
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SIGNERS = f'a@example.com namespaces="mlaudit-edd" {KEY} c\n'.encode()

FUZZ = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

YAML_PIECES = st.sampled_from(
    [
        "a: ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        ": ",
        "\n",
        "  ",
        "&x ",
        "*x",
        "!!binary ",
        "? ",
        "'",
        '"',
        "\\u0000",
        "\\ud800",
        "9" * 20,
        "9" * 5000,
        "1e999",
        ".nan",
        "0x1F",
        "010",
        "~",
        "true",
        "yes",
        "2024-01-01",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "|\n",
        ">-\n",
        "\t",
        "\x00",
        "\x1b",
        "\x85",
        "\ufeff",
        "#",
        "key",
        "<<: ",
        "é",
    ]
)


def _outcome(call: Callable[[], T]) -> T | MlauditError:
    """The reader's value, or the MlauditError it raised; anything else propagates (a bug)."""
    try:
        return call()
    except MlauditError as error:
        return error


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """A valid file with a few bytes replaced, inserted or cut."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, max(len(data) - 1, 0)))
            action = draw(st.sampled_from(["flip", "insert", "cut"]))
            byte = draw(st.integers(0, 255))
            if action == "flip" and data:
                data[at] = byte
            elif action == "insert":
                data[at:at] = bytes([byte]) * draw(st.integers(1, 64))
            else:
                del data[at : at + draw(st.integers(1, 64))]
        return bytes(data)

    return mutate()


YAML_INPUTS = st.one_of(
    st.binary(max_size=512),
    st.lists(YAML_PIECES, max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "replace")),
    _mutations(VALID_EDD),
)


@FUZZ
@given(YAML_INPUTS)
def test_yaml_reader_returns_json_values_or_an_input_error(data):
    parsed = _outcome(lambda: parse_yaml_bytes(data, "fuzz.yaml"))
    if isinstance(parsed, MlauditError):
        assert parsed.user_message().startswith("fuzz.yaml")
    else:
        json.dumps(parsed.value, allow_nan=False)  # plain JSON values only


@FUZZ
@given(YAML_INPUTS)
def test_policy_reader_returns_a_policy_or_an_input_error(data):
    policy = _outcome(lambda: parse_policy(b"quorum: 1\nroles: {r: [a]}\n" + data, "policy.yaml"))
    if isinstance(policy, MlauditError):
        assert policy.user_message().startswith("policy.yaml")


SIGNER_PIECES = st.sampled_from(
    [
        "a@example.com ",
        "*,!b ",
        '"quoted principal" ',
        'namespaces="mlaudit-edd" ',
        'valid-after="20240101" ',
        'valid-before="99991231235959" ',
        'valid-before="0000" ',
        "cert-authority ",
        "ssh-ed25519 ",
        "ssh-rsa ",
        "AAAA",
        KEY + " ",
        "====",
        "\n",
        "#",
        "\x00",
        "\x1b",
        '"',
        ",",
        "=",
        "*" * 50,
        "?",
    ]
)
SIGNER_INPUTS = st.one_of(
    st.binary(max_size=400),
    st.lists(SIGNER_PIECES, max_size=30).map(lambda parts: "".join(parts).encode()),
    _mutations(SIGNERS),
)


@FUZZ
@given(SIGNER_INPUTS)
def test_allowed_signers_reader_returns_entries_or_a_trust_error(data):
    entries = _outcome(lambda: parse_allowed_signers(data, "allowed_signers"))
    if isinstance(entries, MlauditError):
        assert isinstance(entries, TrustError)
        assert entries.user_message().startswith("allowed_signers")
    else:
        assert all(entry.key.blob for entry in entries)


@FUZZ
@given(SIGNER_INPUTS)
def test_revoked_keys_reader_returns_blobs_or_a_trust_error(data):
    revoked = _outcome(lambda: parse_revoked_keys(data, "revoked_keys"))
    if isinstance(revoked, MlauditError):
        assert isinstance(revoked, TrustError)
        assert revoked.user_message().startswith("revoked_keys")


JSON_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"score"',
        '"a"',
        "1",
        "-0",
        "1e400",
        "1" + "0" * 400,
        "NaN",
        "Infinity",
        "true",
        "null",
        '"\\u0000"',
        '"\\ud800"',
        " ",
        "\n",
        "[" * 200,
        "{" * 100,
        "0." + "1" * 500,
        "\x00",
        "\xff",
    ]
)
METRICS_INPUTS = st.one_of(
    st.binary(max_size=512),
    st.lists(JSON_PIECES, max_size=60).map(lambda parts: "".join(parts).encode("utf-8", "replace")),
    st.recursive(
        st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.booleans(), st.none()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    _mutations(b'{"score": 0.5, "nested": {"loss": 0.25}}'),
)


@FUZZ
@given(METRICS_INPUTS, st.sampled_from(["metrics.json", "metrics.yaml"]))
def test_metrics_reader_always_answers_with_metrics_or_a_reason(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    reading = read_metrics(path, ["score"], within=tmp_path)
    assert (reading.metrics is None) != (reading.problem is None)
    if reading.problem is not None:
        assert reading.problem.startswith(name)
        assert reading.problem.isprintable()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    write_archive(members, buffer)
    return buffer.getvalue()


VALID_ARCHIVE = _archive({"manifest.json": b"{}", "a/b.txt": b"x" * 700, "c.json": b"[]"})


@st.composite
def _raw_tars(draw: st.DrawFn) -> bytes:
    """Tar streams with hostile member names, types and sizes, gzip'd (or not)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=draw(st.sampled_from([0, 1, 2]))) as tar:
        for _ in range(draw(st.integers(0, 4))):
            info = tarfile.TarInfo(
                draw(st.sampled_from(["a", "../x", "/abs", "d/", "a//b", "é", "x" * 600, "n\x01"]))
            )
            info.type = draw(
                st.sampled_from(
                    [
                        tarfile.REGTYPE,
                        tarfile.SYMTYPE,
                        tarfile.LNKTYPE,
                        tarfile.DIRTYPE,
                        tarfile.FIFOTYPE,
                        tarfile.GNUTYPE_SPARSE,
                        tarfile.CONTTYPE,
                    ]
                )
            )
            data = draw(st.binary(max_size=64))
            info.size = len(data)
            info.linkname = draw(st.sampled_from(["", "/etc/passwd", "../../x"]))
            try:
                tar.addfile(info, io.BytesIO(data))
            except (ValueError, tarfile.TarError):
                continue
    data = raw.getvalue()
    cut = draw(st.integers(0, len(data)))
    return gzip.compress(data[:cut] if draw(st.booleans()) else data)


ARCHIVE_INPUTS = st.one_of(st.binary(max_size=600), _mutations(VALID_ARCHIVE), _raw_tars())
SMALL_LIMITS = Limits(max_members=8, max_member_bytes=4096, max_total_bytes=16384)


@FUZZ
@given(ARCHIVE_INPUTS)
def test_archive_reader_returns_members_or_a_bundle_error(tmp_path, data):
    path = tmp_path / "fuzz.tar.gz"
    path.write_bytes(data)
    members = _outcome(lambda: read_archive(path, SMALL_LIMITS))
    if isinstance(members, MlauditError):
        assert isinstance(members, BundleError)
        assert members.user_message().startswith(str(path))
    else:
        assert all(isinstance(body, bytes) for body in members.values())


# -- the hostile files found so far, replayed -------------------------------------------


def _replay(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    kind = path.parent.name
    if kind == "yaml":
        with pytest.raises(MlauditError):
            parse_yaml_bytes(data, path.name)
    elif kind == "allowed_signers":
        with pytest.raises(TrustError):
            parse_allowed_signers(data, path.name)
    elif kind == "metrics":
        target = tmp_path / ("metrics" + path.suffix)
        target.write_bytes(data)
        reading = read_metrics(target, within=tmp_path)
        assert reading.metrics is None
        assert reading.problem
    elif kind == "archives":
        with pytest.raises(BundleError):
            read_archive(path)
    else:
        raise AssertionError(f"no reader for {path}")


HOSTILE_FILES = sorted(p for p in HOSTILE.rglob("*") if p.is_file() and p.name != "README.md")


def test_hostile_corpus_is_there():
    assert {p.parent.name for p in HOSTILE_FILES} == {
        "yaml",
        "allowed_signers",
        "metrics",
        "archives",
    }


@pytest.mark.parametrize("path", HOSTILE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hostile_corpus_files(path, tmp_path):
    _replay(path, tmp_path)
