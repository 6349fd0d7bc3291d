"""The loaded EDD as a value: its parsed document, canonical bytes and digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Edd:
    path: Path
    document: dict[str, Any]
    canonical: bytes
    # JSON pointer -> 1-based line in the YAML file, for error messages.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # The file's exact bytes as loaded: what an audit bundle carries, never a second read.
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def digest(self) -> str:
        """sha256 (hex) of the RFC 8785 canonical bytes: what approvers sign."""
        return hashlib.sha256(self.canonical).hexdigest()

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def version(self) -> int:
        return int(self.document["version"])

    @property
    def owners(self) -> list[str]:
        return [str(owner) for owner in self.document["owners"]]

    @property
    def seeds(self) -> list[int]:
        return [int(seed) for seed in self.document["protocol"]["seeds"]]
