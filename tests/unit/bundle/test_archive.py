"""Deterministic bundle archives and the hostile-archive corpus."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from audit.bundle.archive import Limits, read_archive, write_archive
from audit.errors import BundleError

MEMBERS = {"b/two.json": b'{"x": 2}\n', "a/one.txt": b"one\n", "manifest.json": b"{}"}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with path.open("wb") as handle:
        write_archive(members, handle)
    return path


def test_same_members_give_identical_bytes(tmp_path):
    first = _write(tmp_path / "1.tar.gz", MEMBERS)
    second = _write(tmp_path / "2.tar.gz", dict(reversed(list(MEMBERS.items()))))
    assert first.read_bytes() == second.read_bytes()


def test_header_fields_are_fixed(tmp_path):
    path = _write(tmp_path / "b.tar.gz", MEMBERS)
    raw = path.read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted(MEMBERS)
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.mode) == (0, 0, 0, 0o644)
        assert info.uname == info.gname == ""


def test_round_trip(tmp_path):
    assert read_archive(_write(tmp_path / "b.tar.gz", MEMBERS)) == MEMBERS


def _hostile(path: Path, build) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    ("name", "build", "message"),
    [
        ("dotdot", lambda t: _add(t, "../escape.txt"), "path traversal"),
        ("nested-dotdot", lambda t: _add(t, "a/../../escape"), "path traversal"),
        ("absolute", lambda t: _add(t, "/etc/cron.d/x"), "absolute path"),
        ("windows-drive", lambda t: _add(t, "C:/x"), "absolute path"),
        ("backslash", lambda t: _add(t, "a\\..\\x"), "backslash"),
        ("symlink", lambda t: _add(t, "link", kind=tarfile.SYMTYPE), "link"),
        ("hardlink", lambda t: _add(t, "hard", kind=tarfile.LNKTYPE), "link"),
        ("device", lambda t: _add(t, "dev", kind=tarfile.CHRTYPE), "non-regular"),
        ("fifo", lambda t: _add(t, "fifo", kind=tarfile.FIFOTYPE), "non-regular"),
        ("directory", lambda t: _add(t, "dir", kind=tarfile.DIRTYPE), "non-regular"),
        ("duplicate", lambda t: (_add(t, "a.json"), _add(t, "a.json")), "appears twice"),
    ],
)
def test_hostile_members_are_refused(tmp_path, name, build, message):
    path = _hostile(tmp_path / f"{name}.tar.gz", build)
    with pytest.raises(BundleError, match=message):
        read_archive(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.tar.gz"]


def test_oversized_member_is_refused(tmp_path):
    path = _hostile(tmp_path / "big.tar.gz", lambda t: _add(t, "big", b"0" * 4096))
    with pytest.raises(BundleError, match="over the limit"):
        read_archive(path, Limits(max_member_bytes=1024))


def test_decompression_bomb_is_refused(tmp_path):
    # 8 MiB of zeros compresses to a few KiB: far beyond the allowed expansion.
    path = _hostile(tmp_path / "bomb.tar.gz", lambda t: _add(t, "zeros", bytes(8 << 20)))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(BundleError, match="decompression bomb"):
        read_archive(path, Limits(max_total_bytes=1 << 20))


def test_truncated_archive_is_refused(tmp_path):
    whole = _write(tmp_path / "whole.tar.gz", {"a": bytes(range(256)) * 400}).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BundleError, match="truncated or corrupt"):
        read_archive(cut)


def test_not_gzip_is_refused(tmp_path):
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(BundleError):
        read_archive(path)


def test_writer_refuses_bad_names(tmp_path):
    with pytest.raises(BundleError, match="path traversal"), (tmp_path / "x").open("wb") as fh:
        write_archive({"../x": b""}, fh)
