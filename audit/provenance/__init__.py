"""Provenance of a protocol run: code (git), data (DVC), environment, and their fingerprint.

Each part is a plain function over a project directory; nothing here reads
os.environ for configuration (the CLI passes values such as the image digest in).
The package imports nothing itself: `ablate run`'s `dvc status` child imports only
audit.provenance.dvc, not git, lakeFS and the environment's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.provenance.record import Provenance, collect_provenance, trial_fingerprint

__all__ = ["Provenance", "collect_provenance", "trial_fingerprint"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from audit.provenance import record

        return getattr(record, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
