"""Stop a study whose first trial of every arm failed for one and the same reason.

A missing module or a wrong interpreter fails every trial alike; running the other
59 of 60 only burns the budget and hides the cause under a wall of identical
failures. One failure per arm for the same reason is proof enough. A single arm
that succeeds, or two different reasons, and the study runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class FirstTrialWatch:
    """Watches the first finished trial of each arm this session runs."""

    def __init__(self, arms: Iterable[str]) -> None:
        self.arms = set(arms)
        self.first: dict[str, tuple[str, str]] = {}  # arm -> (status, reason as compared)
        self.stop_reason: str | None = None

    def observe(self, record: Mapping[str, Any]) -> bool:
        """Note a finished trial; True when the study should stop now."""
        arm = str(record["arm"])
        if arm in self.arms and arm not in self.first:
            self.first[arm] = (str(record["status"]), _comparable(record))
        if self.stop_reason is None and self._all_failed_alike():
            status, reason = next(iter(self.first.values()))
            self.stop_reason = (
                f"stopped early: the first trial of each of the {len(self.arms)} arms "
                f"{status} the same way ({reason})"
            )
            return True
        return False

    def _all_failed_alike(self) -> bool:
        if len(self.arms) < 2 or set(self.first) != self.arms:
            return False
        outcomes = set(self.first.values())
        return len(outcomes) == 1 and next(iter(outcomes))[0] != "succeeded"


def _comparable(record: Mapping[str, Any]) -> str:
    """The reason without this trial's own directory, which a traceback line may name."""
    reason = str(record.get("reason") or "")
    trial_dir = record.get("trial_dir")
    if trial_dir:
        reason = reason.replace(str(trial_dir), "<trial dir>")
    return reason
