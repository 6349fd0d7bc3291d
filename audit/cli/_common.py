"""Options and output helpers shared by every command.

Commands render results; they never decide exit codes for errors (main.py does).
"""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# Set by --json so the top-level error handler can answer in JSON as well.
JSON_MODE: contextvars.ContextVar[bool] = contextvars.ContextVar("mlaudit_json", default=False)


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        JSON_MODE.set(True)
    return value


def json_option(func: F) -> F:
    """`--json`: print one JSON document on stdout instead of text."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        callback=_remember_json,
        is_eager=True,
        help="Print machine-readable JSON on stdout instead of text.",
    )(func)


def project_option(func: F) -> F:
    """`--repo`: where the lookup of the project's trust files starts (edd verify, gate, bundle)."""
    return click.option(
        "--repo",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where to look for the project's .mlaudit/ from, upwards (default: the EDD's folder).",
    )(func)


def trust_options(func: F) -> F:
    """Where the trust files come from: `--trust-ref` (protected) or `--trust-dir` (local).

    One set for every command that judges a study (gate, finish, bundle create), so
    their wording and checks cannot drift apart; `one_trust_source` enforces the choice.
    """
    func = click.option(
        "--trust-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Local trust files instead of a ref (NOT a protected source; for local use).",
    )(func)
    func = project_option(func)
    return click.option(
        "--trust-ref", metavar="REF", help="Protected git ref holding .mlaudit/ trust files."
    )(func)


def one_trust_source(trust_ref: object, trust_dir: object) -> None:
    """Exactly one of --trust-ref and --trust-dir; say so when the local one is used."""
    from audit.errors import UsageError

    if (trust_ref is None) == (trust_dir is None):
        raise UsageError("give exactly one of --trust-ref REF or --trust-dir DIR")
    if trust_dir is not None:
        echo("mlaudit: warning: --trust-dir is NOT a protected trust source", err=True)


def reproducible_now(env: Mapping[str, str]) -> datetime:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible comments and summaries, as in tests)."""
    epoch = env.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), timezone.utc)
    return datetime.now(timezone.utc)


def emit_json(data: object) -> None:
    """Write one JSON document to stdout, keys in a stable order."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def printable(text: str) -> str:
    """Untrusted text (file names, server data, signature fields) must not drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err)
