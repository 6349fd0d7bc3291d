"""CI shards: split a plan's trials into N balanced parts, one per CI job.

A shard is `I/N` (1-based). Trials go round-robin over the seed-major plan
order, so shard sizes differ by at most one and every shard mixes all arms.
The matrix printed for CI is a list of objects with string values, which is at
once a GitHub Actions `strategy.matrix.include` list and a GitLab `parallel:matrix`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from audit.errors import UsageError
from audit.protocol.plan import Plan, Trial

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    match = _SHARD.match(text)
    if not match:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 2/4")
    index, total = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= total:
        raise UsageError(f"--shard {text!r}: I must be between 1 and N")
    return index, total


def format_shard(index: int, total: int) -> str:
    return f"{index}/{total}"


def shard_trials(trials: Sequence[Trial], index: int, total: int) -> list[Trial]:
    return [trial for position, trial in enumerate(trials) if position % total == index - 1]


def shard_matrix(plan: Plan, total: int) -> list[dict[str, str]]:
    if total < 1:
        raise UsageError("--shards must be at least 1")
    if total > plan.trial_count:
        raise UsageError(f"--shards {total} is more than the {plan.trial_count} planned trials")
    return [
        {
            "MLAUDIT_SHARD": format_shard(index, total),
            "MLAUDIT_SHARD_TRIALS": str(len(shard_trials(plan.trials, index, total))),
        }
        for index in range(1, total + 1)
    ]
