"""What a publish did (or, with --dry-run, would do): results as data for the CLI to print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.report.marker import Marker
from audit.report.verdict import State, Verdict

UNPRIVILEGED = "advisory, evidence from an unprivileged run"


@dataclass(frozen=True)
class Action:
    target: str  # comment, note, status, check-run, step-summary
    action: str  # created, updated, skipped, appended, would-send
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": self.target, "action": self.action}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class ApiRequest:
    """One request exactly as it is sent (dry run: as it would be): method, path, JSON body."""

    method: str
    path: str
    json: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "json": self.json}


@dataclass(frozen=True)
class PublishRequest:
    """One report to post: mlaudit's own rendered body and the gate's verdict as data."""

    body: str
    key: str
    verdict: Verdict
    timestamp: str  # ISO 8601 UTC, seconds precision, ends in Z
    sha: str | None = None
    pr_number: int | None = None
    dry_run: bool = False
    # The evidence came from an unprivileged (fork) run: the PR is verified against
    # the API and the status says the result is advisory.
    untrusted: bool = False

    @property
    def state(self) -> State:
        return self.verdict.state

    def status_text(self) -> str:
        """The gate's verdict in one plain line, marked advisory for unprivileged evidence."""
        text = self.verdict.summary()
        return f"{UNPRIVILEGED}: {text}" if self.untrusted else text


@dataclass
class PublishOutcome:
    platform: str
    pr_number: int | None = None
    sha: str | None = None
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)  # the writes sent (or, dry: planned)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "pr_number": self.pr_number,
            "sha": self.sha,
            "actions": [a.to_json() for a in self.actions],
            "notes": list(self.notes),
            "requests": [r.to_json() for r in self.requests],
        }


def existing_is_newer(existing: Marker, ours: Marker, head_sha: str | None) -> bool:
    """True when the comment already posted reports a newer state than ours.

    The PR's current head decides first: a report for the head beats one for
    any older commit. Between reports for the same commit (or when neither is
    for the head), the higher run number, then the later timestamp, wins.
    """
    if head_sha:
        if existing.sha == head_sha and ours.sha != head_sha:
            return True
        if ours.sha == head_sha and existing.sha != head_sha:
            return False
    ours_order = (ours.run if ours.run is not None else -1, ours.timestamp or "")
    theirs_order = (existing.run if existing.run is not None else -1, existing.timestamp or "")
    return theirs_order > ours_order
