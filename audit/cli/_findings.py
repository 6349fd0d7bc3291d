"""The terminal renderer of findings (audit.findings), shared by every checking command."""

from __future__ import annotations

from collections.abc import Sequence

from audit.cli._common import echo, printable
from audit.findings import Finding


def finding_lines(findings: Sequence[Finding], *, width: int = 20) -> list[str]:
    """`PASS  id  reason [pointer]` per finding, control characters made visible."""
    lines = []
    for finding in findings:
        mark = "PASS" if finding.passed else "FAIL"
        where = f" [{printable(finding.pointer)}]" if finding.pointer else ""
        name = printable(finding.id)
        lines.append(f"{mark}  {name:<{width}} {printable(finding.reason)}{where}")
    return lines


def echo_findings(findings: Sequence[Finding], *, width: int = 20, err: bool = False) -> None:
    for line in finding_lines(findings, width=width):
        echo(line, err=err)
