"""Re-sign this repository's copy of the fraud study for its own CI.

This repository's audit pipeline (.github/workflows/audit.yml, .gitlab-ci.yml) runs
mlaudit on examples/fraud, so edd.yaml needs approvals that verify against
examples/fraud/.mlaudit/ on main. They come from two throwaway keys made here: the
public halves go into .mlaudit/allowed_signers, the signatures into approvals/, and
the private halves are deleted when this script ends. Nobody can sign anything else
with them, which is the point: after a change to edd.yaml, run this again and commit
allowed_signers and approvals/ together (the new trust file takes effect once it is
on main, like any change to a trust root).

Usage: .venv/bin/python examples/fraud/sign_example.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# The principals and roles .mlaudit/policy.yaml requires (the demo uses the same).
APPROVERS = (
    ("risk", "risk-reviewer@risk.example.com", "model-risk reviewer"),
    ("lead", "ml-lead@example.com", "ML lead"),
)
EDD = "edd.yaml"


def main() -> int:
    signers = [
        "# Throwaway approver keys for this repository's own CI on examples/fraud; their",
        "# private halves were deleted after signing (examples/fraud/sign_example.py).",
    ]
    approvals = HERE / "approvals"
    shutil.rmtree(approvals, ignore_errors=True)
    with tempfile.TemporaryDirectory() as keys:
        for name, principal, role in APPROVERS:
            key = Path(keys) / name
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
                check=True,
                capture_output=True,
            )
            kind, blob = key.with_suffix(".pub").read_text().split()[:2]
            signers.append(f'{principal} namespaces="mlaudit-edd" {kind} {blob} {role}')
            subprocess.run(
                [
                    str(BIN / "mlaudit"),
                    "edd",
                    "sign",
                    EDD,
                    "--key",
                    str(key),
                    "--principal",
                    principal,
                ],
                cwd=HERE,
                check=True,
            )
    (HERE / ".mlaudit" / "allowed_signers").write_text("\n".join(signers) + "\n")
    check = subprocess.run(
        [str(BIN / "mlaudit"), "edd", "verify", EDD, "--trust-dir", ".mlaudit"],
        cwd=HERE,
        check=False,
    )
    print("commit examples/fraud/.mlaudit/allowed_signers and examples/fraud/approvals/")
    return check.returncode


if __name__ == "__main__":
    sys.exit(main())
