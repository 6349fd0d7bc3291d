"""The hidden marker that identifies mlaudit's sticky comment and orders its updates.

`<!-- mlaudit:report key=KEY sha=HEAD run=N ts=ISO -->`. The key says which
report (one per EDD by default); sha/run/ts let the publisher refuse to
replace a report for a newer head commit with one for an older commit. Every
field has a fixed alphabet, so a marker can never close the HTML comment early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from audit.report.escape import marker_key

_MARKER = re.compile(
    r"<!-- mlaudit:report key=(?P<key>[A-Za-z0-9._-]{1,64})"
    r"(?: sha=(?P<sha>[0-9a-f]{7,64}))?"
    r"(?: run=(?P<run>[0-9]{1,20}))?"
    r"(?: ts=(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z))?"
    r" -->"
)


@dataclass(frozen=True)
class Marker:
    key: str
    sha: str | None = None
    run: int | None = None
    timestamp: str | None = None

    def render(self) -> str:
        parts = [f"key={marker_key(self.key)}"]
        if self.sha and re.fullmatch(r"[0-9a-f]{7,64}", self.sha):
            parts.append(f"sha={self.sha}")
        if self.run is not None and 0 <= self.run < 10**20:
            parts.append(f"run={self.run}")
        if self.timestamp and re.fullmatch(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z", self.timestamp
        ):
            parts.append(f"ts={self.timestamp}")
        return f"<!-- mlaudit:report {' '.join(parts)} -->"


def find_marker(body: str) -> Marker | None:
    """The first mlaudit marker in a comment body, or None."""
    match = _MARKER.search(body)
    if not match:
        return None
    run = match.group("run")
    return Marker(
        key=match.group("key"),
        sha=match.group("sha"),
        run=int(run) if run else None,
        timestamp=match.group("ts"),
    )


def replace_marker(body: str, marker: Marker) -> str:
    """Put `marker` in place of the body's marker (or append it)."""
    rendered = marker.render()
    if _MARKER.search(body):
        return _MARKER.sub(lambda _: rendered, body, count=1)
    return body.rstrip("\n") + "\n\n" + rendered + "\n"
