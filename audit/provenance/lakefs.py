"""Data kept in lakeFS: `lakefs://repo/ref/path` pinned to an immutable commit and a manifest.

A branch moves, so it is resolved to its head commit when the run starts and the
commit is recorded; a tag or a commit id is checked to exist (a commit id must be
given in full). The objects at or under the path are then listed at that commit,
never at the branch, and a manifest digest is taken over (path, checksum, size) of
every one. Talks to the server only through the `lakefs` SDK (imported here, on
use), configured the SDK's own way (LAKECTL_* variables or ~/.lakectl.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from audit.errors import ProvenanceError
from audit.provenance._hashing import sha256_json

SCHEME = "lakefs://"
# lakeFS repository ids: lower-case letters, digits and dashes, 3-63 characters.
_URI = re.compile(r"^lakefs://([a-z0-9][a-z0-9-]{2,62})/([^/\s]+)/(.*)$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{64}$")

ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class LakeFSUri:
    repository: str
    ref: str
    path: str  # may be empty (the whole ref) or end with "/" (a prefix)

    @classmethod
    def parse(cls, uri: str) -> LakeFSUri:
        match = _URI.match(uri)
        if match is None:
            raise ValueError(f"{uri!r} is not lakefs://<repository>/<ref>/<path>")
        return cls(match.group(1), match.group(2), match.group(3))

    def __str__(self) -> str:
        return f"{SCHEME}{self.repository}/{self.ref}/{self.path}"


@dataclass(frozen=True)
class LakeFSPin:
    uri: str
    ref_kind: str  # branch | tag | commit
    commit_id: str
    objects: tuple[tuple[str, str, int], ...]  # (path, checksum, size)

    @property
    def manifest_digest(self) -> str:
        return sha256_json([list(o) for o in self.objects])

    @property
    def immutable_uri(self) -> str:
        """The same data named by commit: what a reader can fetch again, bit for bit."""
        parsed = LakeFSUri.parse(self.uri)
        return str(LakeFSUri(parsed.repository, self.commit_id, parsed.path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "ref_kind": self.ref_kind,
            "commit_id": self.commit_id,
            "immutable_uri": self.immutable_uri,
            "object_count": len(self.objects),
            "total_bytes": sum(size for _, _, size in self.objects),
            "manifest_sha256": self.manifest_digest,
            "objects": [
                {"path": path, "checksum": checksum, "size": size}
                for path, checksum, size in self.objects
            ],
        }


def default_client() -> Any:
    try:
        import lakefs
    except ImportError:
        raise ProvenanceError(
            "the EDD declares lakeFS data but the lakefs SDK is not installed",
            hint="pip install 'mlaudit[lakefs]'",
        ) from None
    from lakefs.exceptions import NoAuthenticationFound

    try:
        return lakefs.Client()  # type: ignore[no-untyped-call]
    except NoAuthenticationFound:
        raise ProvenanceError(
            "the EDD declares lakeFS data but no lakeFS server or credentials are configured",
            hint="set LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID and "
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY, or write ~/.lakectl.yaml",
        ) from None


def lakefs_pins(
    uris: Sequence[str], client_factory: ClientFactory | None = None
) -> dict[str, LakeFSPin]:
    """Each URI resolved to its commit and the manifest of the objects it names."""
    if not uris:
        return {}
    client = (client_factory or default_client)()
    return {uri: _pin(LakeFSUri.parse(uri), client) for uri in uris}


def _pin(uri: LakeFSUri, client: Any) -> LakeFSPin:
    from lakefs.exceptions import LakeFSException
    from urllib3.exceptions import HTTPError

    try:
        kind, commit_id = _resolve(uri, client)
        objects = _objects(uri, commit_id, client)
    except LakeFSException as error:
        raise ProvenanceError(f"{uri}: lakeFS: {_describe(error)}") from None
    except HTTPError as error:
        # The SDK lets connection failures through as urllib3's own errors.
        reason = getattr(error, "reason", None) or error
        raise ProvenanceError(f"{uri}: cannot reach the lakeFS server: {reason}") from None
    if not objects:
        raise ProvenanceError(f"{uri}: no objects at {uri.path!r} in commit {commit_id[:12]}")
    return LakeFSPin(str(uri), kind, commit_id, objects)


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    reason = getattr(error, "reason", None) or type(error).__name__
    return f"{status} {reason}" if status else str(reason)


def _resolve(uri: LakeFSUri, client: Any) -> tuple[str, str]:
    """(kind, commit id): a branch's head now; a tag's commit; a commit id as given."""
    import lakefs
    from lakefs.exceptions import NotFoundException, api_exception_handler

    try:
        head = lakefs.Branch(uri.repository, uri.ref, client=client).head
        return "branch", str(head.id)
    except NotFoundException:
        pass
    try:
        with api_exception_handler():
            tag = client.sdk_client.tags_api.get_tag(uri.repository, uri.ref)
        return "tag", str(tag.commit_id)
    except NotFoundException:
        pass
    if not _COMMIT_ID.match(uri.ref):
        raise ProvenanceError(
            f"{uri}: {uri.ref!r} is no branch or tag of lakeFS repository {uri.repository!r}, "
            "and not a full (64 hex digit) commit id"
        )
    try:
        commit = lakefs.Reference(uri.repository, uri.ref, client=client).get_commit()
    except NotFoundException:
        raise ProvenanceError(
            f"{uri}: no commit {uri.ref} in lakeFS repository {uri.repository!r}"
        ) from None
    if commit.id != uri.ref:
        raise ProvenanceError(f"{uri}: lakeFS resolved commit {uri.ref} to {commit.id}")
    return "commit", uri.ref


def _objects(uri: LakeFSUri, commit_id: str, client: Any) -> tuple[tuple[str, str, int], ...]:
    """Objects at or under the path, listed at the commit (not the branch, which may move)."""
    import lakefs

    reference = lakefs.Reference(uri.repository, commit_id, client=client)
    found = []
    for item in reference.objects(prefix=uri.path):
        if not isinstance(item, lakefs.ObjectInfo):
            continue  # a common prefix: only listed with a delimiter, which is not asked for
        path = str(item.path)
        if uri.path and not _covers(uri.path, path):
            continue  # "data/a" also prefixes "data/ab"
        size = item.size_bytes
        found.append((path, str(item.checksum), int(size) if size is not None else -1))
    return tuple(sorted(found))


def _covers(declared: str, path: str) -> bool:
    return path == declared or declared.endswith("/") or path.startswith(declared + "/")


def moved(recorded: LakeFSPin, now: LakeFSPin) -> str | None:
    """Why the data a URI names now differs from what was recorded (None: the same)."""
    if now.commit_id != recorded.commit_id:
        return (
            f"{recorded.uri}: lakeFS {recorded.ref_kind} {LakeFSUri.parse(recorded.uri).ref!r} "
            f"moved from commit {recorded.commit_id[:12]} to {now.commit_id[:12]} during the run"
        )
    if now.manifest_digest != recorded.manifest_digest:
        return f"{recorded.uri}: the objects at commit {recorded.commit_id[:12]} changed"
    return None
