"""Provenance of a protocol run: code (git), data (DVC), environment, and their fingerprint.

Each part is a plain function over a project directory; nothing here reads
os.environ for configuration (the CLI passes values such as the image digest in).
"""

from __future__ import annotations

from audit.provenance.record import Provenance, collect_provenance, trial_fingerprint

__all__ = ["Provenance", "collect_provenance", "trial_fingerprint"]
