"""The one exception tree of mlaudit.

Every error a user can cause carries its own one-line message and exit code;
the CLI catches `MlauditError` once at the top (audit/cli/main.py) and maps it
to output and an exit status there, never anywhere else. Core code raises these
and must never print or call sys.exit itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REPORT_URL = "https://github.com/mlaudit/mlaudit/issues"


class ExitCode(enum.IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    INTERNAL = 3
    # `ablate run` finished but some planned trials did not succeed (attrition). Not 1:
    # nothing was judged yet; CI carries on to collect/gate (`--attrition-ok`).
    TRIALS_FAILED = 4
    INTERRUPTED = 130


# The one statement of the exit-code contract. The README's table is generated
# from it (tests/tools/gen_cli_reference.py) and a test keeps the two equal.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success; the EDD is approved, the gate passed, the bundle verified",
    ExitCode.CHECK_FAILED: (
        "a check failed or an input is bad: invalid or malformed EDD, results, metrics or "
        "bundle, missing approval, bad signature, gate failed, tampering found"
    ),
    ExitCode.USAGE: (
        "usage error: a wrong option, an input file that does not exist, "
        "an `--out` that already holds a run"
    ),
    ExitCode.INTERNAL: (
        "internal error: a bug in mlaudit; rerun with `MLAUDIT_DEBUG=1` for the traceback "
        "and report it"
    ),
    ExitCode.TRIALS_FAILED: (
        "`ablate run` finished but some planned trials did not succeed (attrition); "
        "`--attrition-ok` makes it 0 so CI carries the study on to the gate, which judges it"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table() -> str:
    """The README's exit-code table, as Markdown."""
    rows = [f"| {int(code)} | {meaning} |" for code, meaning in EXIT_CODE_MEANINGS.items()]
    return "\n".join(["| code | meaning |", "| --- | --- |", *rows]) + "\n"


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file and, inside it, an RFC 6901 JSON pointer."""

    file: str
    pointer: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.pointer}" if self.pointer else self.file


def escape_pointer_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_of(parts: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a path of keys / indexes (e.g. a jsonschema error path)."""
    return "".join("/" + escape_pointer_token(p) for p in parts)


class MlauditError(Exception):
    """Base of every error mlaudit raises on purpose."""

    exit_code: ExitCode = ExitCode.CHECK_FAILED

    def __init__(self, message: str, *, location: Location | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def user_message(self) -> str:
        """One line for a human: `file:/pointer: message` when the place is known."""
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def details(self) -> list[str]:
        """Further lines (e.g. every schema error); empty for most errors."""
        return []

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "error": type(self).__name__,
            "message": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.location:
            data["file"] = self.location.file
            data["pointer"] = self.location.pointer
        if self.hint:
            data["hint"] = self.hint
        if self.details():
            data["details"] = self.details()
        return data


class UsageError(MlauditError):
    """The command line itself is wrong (bad flag combination, missing file)."""

    exit_code = ExitCode.USAGE


class MissingInput(UsageError):
    """A file named on the command line does not exist (a usage error, as click's own)."""


def unreadable_input(error: OSError, file: str) -> MlauditError:
    """The error for an input file that cannot be opened: missing is usage, the rest input."""
    if isinstance(error, FileNotFoundError):
        return MissingInput("no such file", location=Location(file))
    return InputError(f"cannot read: {error.strerror}", location=Location(file))


class InternalError(MlauditError):
    """A bug in mlaudit: the user did nothing wrong."""

    exit_code = ExitCode.INTERNAL

    def user_message(self) -> str:
        return f"internal error: {self.message}; please report it at {REPORT_URL}"


# -- input and checks (exit 1) ------------------------------------------------


class InputError(MlauditError):
    """A file the user gave is unreadable or malformed."""


class ValidationFailed(InputError):
    """A document broke its schema or semantic rules; carries every problem at once."""

    def __init__(self, file: str, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        first_pointer, first_message = self.problems[0] if self.problems else ("", "invalid")
        count = len(self.problems)
        summary = first_message if count == 1 else f"{first_message} (and {count - 1} more)"
        super().__init__(summary, location=Location(file, first_pointer))
        self.file = file

    def details(self) -> list[str]:
        return [f"{Location(self.file, pointer)}: {message}" for pointer, message in self.problems]


class CheckFailed(MlauditError):
    """A check ran to completion and the answer is no (quorum, gate, tamper)."""


class SignatureError(CheckFailed):
    """An approval signature is malformed or does not verify."""


class TrustError(MlauditError):
    """The trust root (allowed_signers, policy) cannot be read from the given ref."""


class PolicyError(CheckFailed):
    """The approvals do not satisfy the trust policy (quorum, roles, owners)."""


class ProtocolError(MlauditError):
    """The ablation protocol cannot run as signed (confound, budget, bad overrides)."""


class ConfoundError(ProtocolError):
    """An arm differs from the baseline in a key its component does not declare."""


class BudgetError(ProtocolError):
    """The planned or executed work does not fit the signed budget."""


class ExecutorError(MlauditError):
    """The engine trials run on (a Ray cluster) cannot be reached or cannot run them."""


class ProvenanceError(MlauditError):
    """The code, data or environment is not in a state that can be recorded honestly."""


class TrackingError(MlauditError):
    """The MLflow server refused, failed or is unreachable."""


class SealedRunError(TrackingError):
    """A change to a sealed (immutable) run was attempted."""


class TamperError(CheckFailed):
    """Recorded history no longer matches its seals or checkpoint."""


class PublishError(MlauditError):
    """Posting the report to GitHub or GitLab failed."""


class BundleError(CheckFailed):
    """An audit bundle is malformed, hostile or does not verify."""


class TimestampError(CheckFailed):
    """An RFC 3161 timestamp token is missing, malformed, or does not verify."""
