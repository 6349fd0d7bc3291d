"""What a publish did (or, with --dry-run, would do): results as data for the CLI to print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.report.marker import Marker


@dataclass(frozen=True)
class Action:
    target: str  # comment, note, status, check-run, step-summary
    action: str  # created, updated, skipped, appended, would-send
    detail: str = ""
    request: dict[str, Any] | None = None  # dry-run: method, path, body preview

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": self.target, "action": self.action}
        if self.detail:
            data["detail"] = self.detail
        if self.request is not None:
            data["request"] = self.request
        return data


@dataclass(frozen=True)
class PublishRequest:
    """One report to post: the body and what the publisher must know about it."""

    body: str
    key: str
    passed: bool
    timestamp: str  # ISO 8601 UTC, seconds precision, ends in Z
    sha: str | None = None
    pr_number: int | None = None
    dry_run: bool = False
    untrusted: bool = False  # body from a fork's artifact: defang, and verify the PR
    title: str = ""


@dataclass
class PublishOutcome:
    platform: str
    pr_number: int | None = None
    sha: str | None = None
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "pr_number": self.pr_number,
            "sha": self.sha,
            "actions": [a.to_json() for a in self.actions],
            "notes": list(self.notes),
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
