"""Deterministic tar.gz writing and hostile-safe reading of audit bundles.

Writing: the same members give byte-identical archives (sorted names, fixed
mtime/uid/gid/mode, gzip header mtime 0, no file name in the gzip header).
Reading never touches the file system: members are read into memory under hard
limits, and anything but plain regular files with clean relative names is refused.
The limits keep a hostile archive's peak memory near 100 MB: the decompressed
stream is counted as it is read, every member is read in chunks (never a whole
claimed size at once), and tar's own extended headers (PAX, GNU long names),
which tarfile would otherwise read whole into memory, are bounded before it does.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from audit.errors import BundleError, Location

FIXED_MTIME = 0
FILE_MODE = 0o644
MAX_NAME_LENGTH = 512
MAX_EXTENDED_HEADER_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
_EXTENDED_HEADER_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile archive from exhausting memory or disk."""

    # A bundle holds documents and reports (no model artifacts): tens of MB at most.
    # Everything is held in memory at once, so the total bounds the peak.
    max_members: int = 20_000
    max_member_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 96 * 1024 * 1024
    max_compressed_bytes: int = 512 * 1024 * 1024


def write_archive(members: Mapping[str, bytes], target: BinaryIO) -> None:
    """Write `members` (archive path -> bytes) as a deterministic tar.gz."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            check_member_name(name)
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    with gzip.GzipFile(filename="", mode="wb", fileobj=target, mtime=FIXED_MTIME) as gz:
        gz.write(raw.getvalue())


def check_member_name(name: str) -> None:
    """Refuse names that could escape a directory or confuse a reader."""
    problem = _name_problem(name)
    if problem:
        raise BundleError(f"member name {name!r} refused: {problem}")


def _name_problem(name: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH:
        return "empty or too long"
    if "\x00" in name or "\\" in name or any(ord(c) < 0x20 for c in name):
        return "control character or backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in parts) or name.endswith("/") or "//" in name:
        return "path traversal or non-canonical path"
    return ""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader(io.RawIOBase):
    """Caps how many decompressed bytes may come out of the gzip stream (bomb guard)."""

    def __init__(self, inner: _Readable, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        self.count += len(data)
        if self.count > self._limit:
            raise BundleError(
                f"archive expands beyond {self._limit} bytes: refused as a decompression bomb"
            )
        buffer[: len(data)] = data
        return len(data)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses an extended header (PAX, GNU long name) that claims more than a few KiB.

    tarfile reads such a header whole into memory before any member is seen, so
    a header claiming 8 GiB would otherwise be decompressed into RAM.
    """

    def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADER_TYPES and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise BundleError(
                f"extended tar header claims {self.size} bytes "
                f"(limit {MAX_EXTENDED_HEADER_BYTES}): refused"
            )
        return super()._proc_member(tarfile)  # type: ignore[misc, no-any-return]


def _read_member(extracted: _Readable, size: int) -> bytes:
    """A member's bytes, read in chunks so a lying header never sizes one allocation."""
    buffer = io.BytesIO()
    remaining = size
    while remaining > 0:
        chunk = extracted.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            break
        buffer.write(chunk)
        remaining -= len(chunk)
    return buffer.getvalue()


def read_archive(path: Path, limits: Limits | None = None) -> dict[str, bytes]:
    """Read every member into memory, refusing anything hostile. Never writes to disk."""
    limits = limits or Limits()
    where = Location(str(path))
    try:
        size = path.stat().st_size
    except OSError as error:
        raise BundleError(f"cannot read: {error.strerror}", location=where) from None
    if size > limits.max_compressed_bytes:
        raise BundleError(f"archive is {size} bytes, over the limit", location=where)
    members: dict[str, bytes] = {}
    with path.open("rb") as handle:
        stream = _CountingReader(gzip.GzipFile(fileobj=handle, mode="rb"), limits.max_total_bytes)
        buffered = io.BufferedReader(stream)
        try:
            with tarfile.open(fileobj=buffered, mode="r|", tarinfo=_BoundedTarInfo) as tar:
                for info in tar:
                    _admit(info, members, limits, where)
                    extracted = tar.extractfile(info)
                    data = _read_member(extracted, info.size) if extracted else b""
                    if len(data) != info.size:
                        raise BundleError(f"member {info.name!r} is truncated", location=where)
                    members[info.name] = data
        except BundleError as error:
            # Raised deep in the stream (bomb guard, extended header): name the archive.
            raise BundleError(error.message, location=error.location or where) from None
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as error:
            raise BundleError(
                f"not a readable tar.gz (truncated or corrupt): {error}", location=where
            ) from None
    return members


def _admit(
    info: tarfile.TarInfo, members: Mapping[str, bytes], limits: Limits, where: Location
) -> None:
    name = info.name
    problem = _name_problem(name)
    if problem:
        raise BundleError(f"member {name!r} refused: {problem}", location=where)
    if not info.isreg() or info.issparse():
        kind = "link" if info.issym() or info.islnk() else "non-regular or sparse file"
        raise BundleError(f"member {name!r} refused: {kind}", location=where)
    if name in members:
        raise BundleError(f"member {name!r} appears twice", location=where)
    if len(members) >= limits.max_members:
        raise BundleError(f"more than {limits.max_members} members", location=where)
    if info.size > limits.max_member_bytes:
        raise BundleError(f"member {name!r} is {info.size} bytes, over the limit", location=where)
    total = sum(len(data) for data in members.values()) + info.size
    if total > limits.max_total_bytes:
        raise BundleError(
            f"member {name!r} takes the archive beyond {limits.max_total_bytes} bytes: "
            "refused as a decompression bomb",
            location=where,
        )
