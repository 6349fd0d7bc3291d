"""The `mlaudit` entry point: the root command group and the one error handler.

Every MlauditError is turned into a one-line message and its exit code here and
nowhere else; anything unexpected is a bug (exit 3) with a pointer to report it.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Sequence

import click

from audit import __version__
from audit.cli._common import JSON_MODE, emit_json
from audit.cli._lazy import LazyGroup
from audit.errors import REPORT_URL, ExitCode, MlauditError

# name -> (module:attribute, short help). Modules are imported only when used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "audit.cli.init:init",
        "Set up mlaudit in a git repository: EDD skeleton, trust files, CI.",
    ),
    "edd": (
        "audit.cli.edd:edd",
        "Validate, canonicalise, sign and verify Experiment Design Documents.",
    ),
    "ablate": ("audit.cli.ablate:ablate", "Plan, run, collect and analyse the ablation protocol."),
    "track": (
        "audit.cli.track:track",
        "Log results to MLflow, take checkpoints, verify the ledger.",
    ),
    "server": ("audit.cli.server:server", "Run the append-only MLflow tracking server."),
    "report": ("audit.cli.report:report", "Render the report and publish it to the PR/MR."),
    "gate": ("audit.cli.gate:gate", "Decide whether the change may merge, with evidence."),
    "bundle": ("audit.cli.bundle:bundle", "Create and verify the offline audit bundle."),
    "finish": (
        "audit.cli.finish:finish",
        "Analyze, checkpoint, gate, report and bundle in one process.",
    ),
    "promote": (
        "audit.cli.promote:promote",
        "Move a model registry alias only on a verified, passing audit bundle.",
    ),
}

# Nothing phones home: regulated users need that, and CI machines have no internet.
QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mlaudit")
def cli() -> None:
    """mlaudit turns an ML ablation study into an auditable pull-request check.

    \b
    Typical flow:
      mlaudit init
      mlaudit edd validate edd.yaml
      mlaudit edd verify edd.yaml --trust-ref origin/main
      mlaudit ablate run edd.yaml --trust-ref origin/main --out out/
      mlaudit ablate analyze out/results.json -o out/analysis.json
      mlaudit report render out/analysis.json -o report.md
      mlaudit gate --analysis out/analysis.json --results out/results.json ...

    Exit codes: 0 success, 1 a check failed, 2 usage error, 3 internal error,
    4 `ablate run` finished but planned trials did not succeed.
    """


def _report_error(error: MlauditError) -> int:
    if JSON_MODE.get():
        emit_json(error.to_json())
    click.echo(f"mlaudit: error: {error.user_message()}", err=True)
    for line in error.details():
        click.echo(f"  {line}", err=True)
    return int(error.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:
        # Called as the program (console script, python -m audit): the process exits next.
        # Interpreter shutdown collects garbage over every object still alive - Hydra's,
        # DVC's... - about a tenth of a second of nothing; frozen, they are skipped. atexit
        # handlers, weakref finalizers and stream flushes still run.
        gc.freeze()
    return code


def _main(argv: Sequence[str] | None) -> int:
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    # A previous in-process call (tests) may have left --json switched on.
    JSON_MODE.set(False)
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except MlauditError as error:
        return _report_error(error)
    except click.exceptions.Abort:
        click.echo("mlaudit: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        return int(ExitCode.USAGE) if isinstance(error, click.UsageError) else error.exit_code
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except KeyboardInterrupt:
        click.echo("mlaudit: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception:
        if os.environ.get("MLAUDIT_DEBUG"):
            traceback.print_exc()
        else:
            click.echo(
                "mlaudit: internal error (a bug in mlaudit, not in your input); "
                f"rerun with MLAUDIT_DEBUG=1 for the traceback and report it at {REPORT_URL}",
                err=True,
            )
        return int(ExitCode.INTERNAL)
    # Commands return their exit code; a None means success.
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
