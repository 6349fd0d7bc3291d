"""The study as the exports read it: the bundle's evidence members, parsed once.

Every export is a pure function of these bytes, so the same bundle gives the same
exports byte for byte, and `bundle verify` can render them again and compare.
Nothing here verifies anything: the bundle's own checks do that.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from audit.bundle import layout

# Namespace of every UUID an export mints (uuid5 of this URL): fixed forever, so the
# same bundle gives the same identifiers in every version of mlaudit.
_UUID_ROOT = uuid5(NAMESPACE_URL, "https://mlaudit.dev/bundle-exports")


@dataclass(frozen=True)
class ExportStudy:
    """One bundle's evidence: documents parsed, every member's sha256, the evidence digest."""

    edd_path: str
    edd: Mapping[str, Any]
    results: Mapping[str, Any]
    analysis: Mapping[str, Any]
    gate: Mapping[str, Any]
    files: Mapping[str, str]  # evidence member path -> sha256
    roles: Mapping[str, str]

    @functools.cached_property
    def digest(self) -> str:
        """sha256 over the evidence members' names and digests: what the exports describe."""
        import rfc8785

        return hashlib.sha256(rfc8785.dumps(dict(self.files))).hexdigest()

    def uuid(self, *parts: str) -> str:
        """A version-5 UUID for one object of one export, derived from the evidence digest."""
        return str(uuid5(self._namespace, "/".join(parts)))

    @functools.cached_property
    def _namespace(self) -> UUID:
        return uuid5(_UUID_ROOT, self.digest)

    @property
    def edd_id(self) -> str:
        return str(self.edd.get("id", ""))

    @property
    def edd_version(self) -> int:
        value = self.edd.get("version")
        return value if isinstance(value, int) else 0

    @property
    def edd_digest(self) -> str:
        return str(self.results["edd"]["digest"])

    @property
    def created_at(self) -> str:
        """When the protocol ran (results.json): the date every export carries."""
        return str(self.results["created_at"])

    @property
    def passed(self) -> bool:
        return bool(self.gate.get("passed"))

    def members_under(self, prefix: str) -> list[str]:
        return sorted(name for name in self.files if name.startswith(prefix + "/"))

    def member(self, role: str) -> list[str]:
        path = self.roles.get(role)
        return [path] if path is not None and path in self.files else []


def read_study(members: Mapping[str, bytes], roles: Mapping[str, str]) -> ExportStudy:
    """Parse the evidence members the bundle is built from (or was read back into)."""
    from audit.documents import parse_object
    from audit.edd.safe_yaml import parse_yaml_bytes

    edd_path = roles["edd"]
    edd = parse_yaml_bytes(members[edd_path], edd_path).value
    return ExportStudy(
        edd_path=edd_path,
        edd=edd if isinstance(edd, dict) else {},
        results=parse_object(members[roles["results"]], layout.RESULTS),
        analysis=parse_object(members[roles["analysis"]], layout.ANALYSIS),
        gate=parse_object(members[roles["gate"]], layout.GATE),
        files={name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
        roles=dict(roles),
    )
