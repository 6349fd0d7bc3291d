"""`mlaudit bundle verify` on hostile archives: refused, with peak memory under 200 MB.

Regression from the hardening review (issue 16): a gzip bomb was refused only after
1.56 GB of resident memory, and an extended tar header claiming 8 GiB was read
into memory whole. The archives are built from gzip members concatenated (a
stream of gzip members is one gzip file), so a GiB of zeros costs a few KiB.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

MAX_RSS_BYTES = 200 * 1024 * 1024
MIB = 1024 * 1024
ZEROS_MIB = gzip.compress(bytes(MIB), compresslevel=9)
MLAUDIT = str(Path(sys.executable).parent / "mlaudit")


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT))


def _zeros(mib: int) -> bytes:
    return ZEROS_MIB * mib


def _bomb(path: Path) -> Path:
    # Members of 60 MiB each (each under any member limit), 1.2 GiB in all.
    parts = [_header(f"zeros-{i}", 60 * MIB) + _zeros(60) for i in range(20)]
    path.write_bytes(b"".join(parts) + _zeros(1))
    return path


def _huge_member_header(path: Path) -> Path:
    path.write_bytes(_header("huge", 8 << 30) + _zeros(2048))
    return path


def _huge_pax_header(path: Path) -> Path:
    # A PAX extended header that claims 8 GiB: tarfile reads such headers whole.
    path.write_bytes(_header("././@PaxHeader", 8 << 30, tarfile.XHDTYPE) + _zeros(2048))
    return path


# Measures from a small intermediate process: a child's max RSS counts the memory
# it shared with its parent before exec, so a child forked by a big pytest process
# would report pytest's size, not mlaudit's.
_MEASURE = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as errors:
    child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=errors)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)  # KiB on Linux
"""


def _verify_peak_rss(archive: Path) -> tuple[int, str, int]:
    """(exit code, stderr, max RSS in bytes) of `mlaudit bundle verify` on the archive."""
    errors = archive.with_name("stderr.txt")
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(errors), MLAUDIT, "bundle", "verify", str(archive)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    code, peak = map(int, measured.stdout.split())
    return code, errors.read_text(errors="replace"), peak


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_bomb, "decompression bomb"),
        (_huge_member_header, "over the limit"),
        (_huge_pax_header, "extended tar header claims 8589934592 bytes"),
    ],
    ids=["gzip-bomb", "8GiB-member-header", "8GiB-pax-header"],
)
def test_hostile_archive_is_refused_within_200_mb(tmp_path, build, message):
    archive = build(tmp_path / "hostile.tar.gz")
    assert archive.stat().st_size < 16 * MIB
    code, stderr, peak = _verify_peak_rss(archive)
    assert code == 1, stderr
    assert message in stderr
    assert str(archive) in stderr
    assert "internal error" not in stderr
    assert peak < MAX_RSS_BYTES, f"peak RSS {peak / MIB:.0f} MiB"
