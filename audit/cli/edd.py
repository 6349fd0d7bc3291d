"""`mlaudit edd`: validate, canonical, digest, sign and verify Experiment Design Documents.

Parses arguments, calls audit.edd, renders text or JSON and returns an exit code.
Must stay light: no mlflow, dvc, numpy, scipy or hydra on these paths.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from audit.cli._common import echo, emit_json, json_option, printable, project_option
from audit.errors import ExitCode, MlauditError, UsageError, ValidationFailed

if TYPE_CHECKING:
    from audit.edd.verify import EddVerification

_FILE = click.Path(dir_okay=False, path_type=Path)


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {value!r} is not an ISO 8601 / RFC 3339 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@click.group()
def edd() -> None:
    """Validate, canonicalise, sign and verify Experiment Design Documents."""


@edd.command()
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=_FILE)
@click.option("--at", "at_text", metavar="TIME", help="Check not_after at TIME (default: now).")
@click.option(
    "--trust-ref",
    metavar="REF",
    help="Also check the EDD against the policy REF holds (min_seeds, quorum, required "
    "roles), so nobody signs an EDD that can never verify.",
)
@project_option
@json_option
def validate(
    files: tuple[Path, ...],
    at_text: str | None,
    trust_ref: str | None,
    repo: Path | None,
    as_json: bool,
) -> int:
    """Check each FILE against the schema and the semantic rules; print every problem.

    Every file is checked, whatever an earlier one held (a pre-commit hook passes
    several). Exit 1 if any is invalid. With --json: one object for one FILE, a
    list of them for several.
    """
    at = parse_time(at_text) or datetime.now(timezone.utc)
    policy = _PolicyCheck(trust_ref, repo)
    if len(files) == 1:
        code, data = _validate_one(files[0], at, as_json, policy)
        if as_json:
            emit_json(data)
        return code
    codes, reports = [], []
    for file in files:
        try:
            code, data = _validate_one(file, at, as_json, policy)
        except MlauditError as error:  # unreadable, not YAML...: said, and the next file
            echo(f"mlaudit: error: {error.user_message()}", err=True)
            code = int(error.exit_code)
            data = {"file": str(file), "valid": False, **error.to_json()}
        codes.append(code)
        reports.append(data)
    if as_json:
        emit_json(reports)
    return max(codes)


class _PolicyCheck:
    """`--trust-ref`: the policy's demands on the design, checked per file."""

    def __init__(self, trust_ref: str | None, repo: Path | None) -> None:
        self.trust_ref = trust_ref
        self.repo = repo

    def problems(self, document: dict[str, Any], file: Path) -> list[tuple[str, str]]:
        if self.trust_ref is None:
            return []
        from audit.edd.policy import policy_problems_at

        return policy_problems_at(document, file, self.trust_ref, self.repo)


def _validate_one(
    file: Path, at: datetime, as_json: bool, policy: _PolicyCheck
) -> tuple[int, dict[str, Any]]:
    from audit.edd import load_edd, planned_trial_count

    try:
        loaded = load_edd(file, at=at)
        problems = policy.problems(loaded.document, file)
        if problems:
            raise ValidationFailed(str(file), problems)
    except ValidationFailed as failed:
        return _render_problems(failed), _problems_json(failed)
    from audit.edd.semantics import planning_warnings

    planned = planned_trial_count(loaded.document)
    warnings = planning_warnings(loaded.document)
    if not as_json:
        echo(f"{file}: valid ({loaded.id} v{loaded.version}, {planned} trials planned)")
        echo(f"sha256:{loaded.digest}")
        for pointer, message in warnings:
            echo(printable(f"warning: {file}:{pointer}: {message}"), err=True)
    data = {"file": str(file), "valid": True, "problems": [], "digest": loaded.digest}
    return int(ExitCode.OK), data | {
        "id": loaded.id,
        "version": loaded.version,
        "planned_trials": planned,
        "warnings": [{"pointer": p, "message": m} for p, m in warnings],
    }


def _problems_json(failed: ValidationFailed) -> dict[str, Any]:
    problems = [{"pointer": p, "message": m} for p, m in failed.problems]
    return {"file": failed.file, "valid": False, "problems": problems}


def _render_problems(failed: ValidationFailed) -> int:
    for line in failed.details():
        echo(printable(line), err=True)
    return int(ExitCode.CHECK_FAILED)


@edd.command()
@click.argument("file", type=_FILE)
@json_option
def canonical(file: Path, as_json: bool) -> int:
    """Print the RFC 8785 canonical bytes of FILE (what approvers sign), no newline.

    With --json: the canonical text, its sha256 and the EDD id and version.
    """
    from audit.edd import load_edd

    loaded = load_edd(file)
    data = loaded.canonical
    if as_json:
        emit_json(
            {"file": str(file), "id": loaded.id, "version": loaded.version}
            | {"sha256": loaded.digest, "canonical": data.decode("utf-8")}
        )
        return int(ExitCode.OK)
    # Raw bytes: a text layer could re-encode or add a newline and break the signature.
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return int(ExitCode.OK)


@edd.command()
@click.argument("file", type=_FILE)
@json_option
def digest(file: Path, as_json: bool) -> int:
    """Print the sha256 of FILE's canonical bytes."""
    from audit.edd import load_edd

    loaded = load_edd(file)
    if as_json:
        emit_json({"file": str(file), "algorithm": "sha256", "digest": loaded.digest})
    else:
        echo(loaded.digest)
    return int(ExitCode.OK)


@edd.command()
@click.argument("file", type=_FILE)
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(path_type=Path),
    help="Private key, or public key held in ssh-agent.",
)
@click.option("--principal", required=True, help="Your principal as listed in allowed_signers.")
@json_option
def sign(file: Path, key: Path, principal: str, as_json: bool) -> int:
    """Sign FILE with ssh-keygen and write approvals/PRINCIPAL.sig next to it."""
    from audit.edd.approve import sign_edd

    written = sign_edd(file, key=key, principal=principal)
    if as_json:
        emit_json({"file": str(file), "principal": principal, "signature": str(written.path)})
        return int(ExitCode.OK)
    echo(f"wrote {written.path} ({written.key_fingerprint}, sha256:{written.digest})")
    return int(ExitCode.OK)


@edd.command()
@click.argument("file", type=_FILE)
@click.option(
    "--trust-ref", metavar="REF", help="Protected git ref holding .mlaudit/ (e.g. origin/main)."
)
@project_option
@click.option(
    "--trust-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local folder with allowed_signers and policy.yaml (NOT protected).",
)
@click.option("--at", "at_text", metavar="TIME", help="Verify as of TIME (RFC 3339; default: now).")
@json_option
def verify(
    file: Path,
    trust_ref: str | None,
    repo: Path | None,
    trust_dir: Path | None,
    at_text: str | None,
    as_json: bool,
) -> int:
    """Verify the approvals of FILE against the trust root; exit 1 unless approved."""
    from audit.edd import load_edd
    from audit.edd.trust import UNPROTECTED_WARNING
    from audit.edd.verify import verify_edd

    if trust_dir is not None:
        # Said before anything else, so it cannot scroll out of view of a passing result.
        echo(UNPROTECTED_WARNING.format(path=trust_dir), err=True)
    result = verify_edd(
        load_edd(file), trust_ref=trust_ref, repo=repo, trust_dir=trust_dir, at=parse_time(at_text)
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        _render_verification(file, result)
    return int(ExitCode.OK if result.passed else ExitCode.CHECK_FAILED)


def _render_verification(file: Path, result: EddVerification) -> None:
    echo(f"EDD {result.edd_id} v{result.edd_version}  sha256:{result.edd_digest}  ({file})")
    if result.protected:
        where = f"{result.trust_project}/.mlaudit/" if result.trust_project else ".mlaudit/"
        ref = f"{result.trust_ref} @ {result.trust_commit}"
        echo(f"trust: {printable(where)} at {ref} (protected ref)")
    else:
        echo("trust: local directory (NOT PROTECTED)")
    header = ("PRINCIPAL", "ROLE", "KEY FINGERPRINT", "VERDICT", "REASON")
    rows = [header] + [
        (a.principal, a.role, a.key_fingerprint, a.verdict, a.reason) for a in result.approvals
    ]
    if not result.approvals:
        echo("no approvals found in approvals/*.sig")
    else:
        echo(_table([tuple(printable(cell) for cell in row) for row in rows]))
    verdict = "APPROVED" if result.passed else "NOT APPROVED"
    echo(f"decision: {verdict}")
    for reason in result.reasons:
        echo(f"  - {printable(reason)}")
    hint = result.hint()
    if hint:
        echo(f"hint: {hint}")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
