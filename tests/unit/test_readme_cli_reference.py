"""docs/cli.md, the sample report and the README's CLI section cannot drift from the code."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
CLI_DOC = REPO_ROOT / "docs" / "cli.md"
CLI_SECTION = "## CLI"


def _load_generator() -> ModuleType:
    path = REPO_ROOT / "tests" / "tools" / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_reference", module)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def generated() -> str:
    return str(gen.render())


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return dict(gen.generated_pages(README.read_text(encoding="utf-8")))


def _cli_section(readme: str) -> str:
    start = readme.find(f"\n{CLI_SECTION}\n")
    assert start >= 0, f"README.md has no '{CLI_SECTION}' section"
    rest = readme[start + len(CLI_SECTION) + 2 :]
    end = re.search(r"^## ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def _mentioned_commands(text: str) -> list[str]:
    """Every `mlaudit ...` code span (inline or in a fenced block line)."""
    spans = re.findall(r"`(mlaudit(?: [^`\n]*)?)`", text)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("mlaudit ")]
    return spans + lines


def _unknown_word(root: click.Command, mention: str) -> str | None:
    """The first word that names no subcommand of the group before it, or None.

    Walks the tree as click would: words are subcommands while the current command is
    a group; an option or a word after a leaf command is an argument and ends the walk.
    """
    command, ctx = root, click.Context(root, info_name="mlaudit")
    for word in mention.split()[1:]:
        if not isinstance(command, click.Group) or not re.fullmatch(r"[a-z][a-z-]*", word):
            return None
        sub = command.get_command(ctx, word)
        if sub is None:
            return word
        command, ctx = sub, click.Context(sub, info_name=word, parent=ctx)
    return None


@pytest.mark.parametrize("relative", ["docs/cli.md", "docs/sample-report.md", "README.md"])
def test_generated_page_is_current(pages, relative):
    target = REPO_ROOT / relative
    committed = target.read_text(encoding="utf-8") if target.exists() else ""
    diff = gen.stale_diff(pages[relative], committed, name=relative)
    assert not diff, f"{relative} is stale; regenerate with: {gen.REGENERATE}\n{diff}"


def test_stale_check_catches_a_changed_line(generated):
    # The comparison must be able to fail: one changed option line is a stale page.
    mutated = generated.replace("Protected git ref", "Protected git branch", 1)
    assert mutated != generated
    assert "Protected git branch" in gen.stale_diff(generated, mutated)
    assert gen.stale_diff(generated, generated) == ""
    assert gen.stale_diff(generated, generated.rstrip("\n")) != ""


def _write_pages(root: Path, pages: dict[str, str]) -> None:
    for relative, page in pages.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(page, encoding="utf-8")


def test_check_mode_exits_1_on_a_stale_page(tmp_path, pages):
    _write_pages(tmp_path, pages)
    assert gen.main(["--check", "--root", str(tmp_path)]) == 0
    cli_md = tmp_path / "docs" / "cli.md"
    cli_md.write_text(pages["docs/cli.md"].replace("## mlaudit gate\n", "## mlaudit gait\n"))
    assert gen.main(["--check", "--root", str(tmp_path)]) == 1
    # Regenerating repairs it; the README excerpt is rebuilt between its markers too.
    readme = tmp_path / "README.md"
    readme.write_text(pages["README.md"].replace("| ✅ improves |", "| ✅ improved |"))
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert cli_md.read_text(encoding="utf-8") == pages["docs/cli.md"]
    assert readme.read_text(encoding="utf-8") == pages["README.md"]


def test_readme_excerpt_is_the_top_of_the_sample_report(pages):
    readme, sample = pages["README.md"], pages["docs/sample-report.md"]
    begin = readme.index(gen.EXCERPT_BEGIN) + len(gen.EXCERPT_BEGIN)
    excerpt = readme[begin : readme.index(gen.EXCERPT_END)].strip().splitlines()
    assert excerpt[0].startswith("> ## ")  # the decision headline comes first
    assert excerpt[-1].startswith("> |")  # and it ends with the first table
    for line in excerpt:
        assert line == ">" or line.removeprefix("> ") in sample, line
    with pytest.raises(ValueError, match="markers"):
        gen.readme_with_excerpt("# no markers here\n", sample)


def test_reference_has_a_help_section_per_command(generated):
    paths = gen.command_paths()
    assert "mlaudit edd verify" in paths
    assert "mlaudit server init-db" in paths
    for path in paths:
        assert f"\n## {path}\n\n```text\nUsage: {path} " in generated


def test_reference_is_deterministic(generated):
    assert gen.render() == generated
    assert str(REPO_ROOT) not in generated
    assert str(Path.home()) not in generated


def test_reference_ignores_terminal_and_environment(tmp_path, pages):
    # A narrow terminal and set env vars (option defaults come from some) change nothing.
    _write_pages(tmp_path, pages)
    env = {
        **os.environ,
        "COLUMNS": "40",
        "LINES": "10",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "MLAUDIT_SPOOL_DIR": str(tmp_path / "spool"),
        "MLAUDIT_SHARD": "2/3",
    }
    script = REPO_ROOT / "tests" / "tools" / "gen_cli_reference.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check", "--root", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_cli_section_names_only_real_commands():
    from audit.cli.main import cli

    section = _cli_section(README.read_text(encoding="utf-8"))
    mentions = _mentioned_commands(section)
    assert mentions, "the README's CLI section names no commands"
    unknown = {m: w for m in mentions if (w := _unknown_word(cli, m)) is not None}
    assert not unknown, f"README names commands that do not exist: {unknown}"


def test_readme_cli_section_covers_every_top_level_command():
    from audit.cli.main import SUBCOMMANDS

    section = _cli_section(README.read_text(encoding="utf-8"))
    missing = [name for name in SUBCOMMANDS if f"`mlaudit {name}" not in section]
    assert not missing, f"the README's CLI section does not mention: {missing}"
    assert "docs/cli.md" in section


def test_unknown_command_check_can_fail():
    from audit.cli.main import cli

    assert _unknown_word(cli, "mlaudit edd frobnicate FILE") == "frobnicate"
    assert _unknown_word(cli, "mlaudit frobnicate") == "frobnicate"
    assert _unknown_word(cli, "mlaudit track verify --tracking-uri URI") is None
    assert _unknown_word(cli, "mlaudit edd verify edd.yaml") is None
    assert _unknown_word(cli, "mlaudit server --port 0") is None
    assert _unknown_word(cli, "mlaudit server init-db URI") is None
    assert _unknown_word(cli, "mlaudit server start") == "start"
