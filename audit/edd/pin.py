"""Pinning a run to one signed EDD: refuse any other EDD, however well approved.

An orchestrator (a Kubeflow pipeline, a scheduled job) is compiled for one study;
it passes the EDD digest it was compiled for, and every step that loads the EDD
refuses bytes with another digest, so a later commit cannot swap in another plan.
"""

from __future__ import annotations

import re

from audit.edd.model import Edd
from audit.errors import Location, PolicyError, UsageError

_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def parse_expected_digest(text: str) -> str:
    """`--expect-digest`: 64 lowercase hex digits, optionally prefixed `sha256:`."""
    match = _SHA256.match(text.strip())
    if not match:
        raise UsageError(
            f"--expect-digest {text!r}: expected a sha256 (64 lowercase hex digits, "
            "as `mlaudit edd digest` prints)"
        )
    return match.group(1)


def check_pinned_digest(edd: Edd, expected: str | None) -> None:
    """Raise PolicyError unless the loaded EDD is the pinned one (no pin: nothing to check)."""
    if expected is None:
        return
    pinned = parse_expected_digest(expected)
    if edd.digest != pinned:
        raise PolicyError(
            f"this EDD's digest is sha256:{edd.digest} but this run is pinned to "
            f"sha256:{pinned}; refusing to run a plan other than the signed one",
            location=Location(str(edd.path)),
        )
