"""Generate docs/cli.md, the CLI reference, from the `--help` of every mlaudit command.

The reference is rendered from the click command tree itself, so it cannot say
anything the CLI does not. Run it after changing a command; `--check` exits 1 when
the committed docs/cli.md is stale (tests/unit/test_readme_cli_reference.py does
the same check in the test suite).

    .venv/bin/python tests/tools/gen_cli_reference.py          # rewrite docs/cli.md
    .venv/bin/python tests/tools/gen_cli_reference.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_DOC = REPO_ROOT / "docs" / "cli.md"
REGENERATE = ".venv/bin/python tests/tools/gen_cli_reference.py"

# A fixed width, so the output does not depend on the terminal (or CI log) it runs in.
# 98 is what click renders in any terminal at least 100 columns wide
# (max_content_width=100 minus its 2-column margin), so the page matches what users see.
HELP_WIDTH = 98
MAX_CONTENT_WIDTH = 100

HEADER = f"""# mlaudit CLI reference

<!-- Generated from the commands' --help by tests/tools/gen_cli_reference.py. Do not edit.
     Regenerate: {REGENERATE}
     tests/unit/test_readme_cli_reference.py fails when this page is stale. -->

Generated from `mlaudit <command> --help`; do not edit by hand. Regenerate with:

```sh
{REGENERATE}
```

Every command takes `--json` for machine-readable output where it prints a result.
Exit codes: 0 success, 1 a check failed, 2 usage error, 3 internal error (a bug in mlaudit).
"""


@dataclass(frozen=True)
class CommandHelp:
    """One command of the tree: its path (e.g. ("mlaudit", "edd", "verify")) and help."""

    path: tuple[str, ...]
    short_help: str
    help_text: str


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    # Built without parsing arguments, so required options and env vars play no part.
    settings = {
        **command.context_settings,
        "max_content_width": MAX_CONTENT_WIDTH,
        "terminal_width": HELP_WIDTH,
    }
    return click.Context(command, info_name=name, parent=parent, **settings)


def walk(
    command: click.Command,
    path: tuple[str, ...] = ("mlaudit",),
    parent: click.Context | None = None,
) -> Iterator[CommandHelp]:
    """Yield every command under `command` depth-first, subcommands in listed order."""
    ctx = _context(command, path[-1], parent)
    yield CommandHelp(
        path=path,
        short_help=command.get_short_help_str(limit=120),
        help_text=command.get_help(ctx).rstrip() + "\n",
    )
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            # LazyGroup imports the subcommand's module here.
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, (*path, name), ctx)


def root_command() -> click.Command:
    from audit.cli.main import cli

    return cli


def command_paths(command: click.Command | None = None) -> list[str]:
    """Every command path as typed, e.g. "mlaudit edd verify"."""
    return [" ".join(item.path) for item in walk(command or root_command())]


def _anchor(path: tuple[str, ...]) -> str:
    # GitHub's and GitLab's heading anchors: lowercase, spaces become hyphens.
    return "-".join(path).lower()


def render(command: click.Command | None = None) -> str:
    """The whole docs/cli.md page."""
    commands = list(walk(command or root_command()))
    lines = [HEADER, "## Commands", "", "| command | what it does |", "| --- | --- |"]
    for item in commands[1:]:
        title = " ".join(item.path)
        summary = item.short_help.replace("|", "\\|")
        lines.append(f"| [`{title}`](#{_anchor(item.path)}) | {summary} |")
    lines.append("")
    for item in commands:
        lines += [f"## {' '.join(item.path)}", "", "```text", item.help_text.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def stale_diff(expected: str, actual: str) -> str:
    """A unified diff from the committed page to the generated one; empty when equal."""
    return "".join(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile="docs/cli.md (committed)",
            tofile="docs/cli.md (generated)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md is stale")
    parser.add_argument("--output", type=Path, default=CLI_DOC, help="default: docs/cli.md")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        diff = stale_diff(page, current)
        if diff:
            sys.stdout.write(diff)
            print(f"{args.output} is stale; regenerate with: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page, encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
