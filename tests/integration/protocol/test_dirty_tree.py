"""The dirty-tree check on the fraud example's layout: out/ and the cache are gitignored.

git 2.39 refuses `git add -A -- . ':(exclude)out'` when out/ is ignored; the check
must neither trip over that nor show git's `hint:` lines instead of the cause.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from protocol_study import Study

from audit.errors import ProvenanceError
from audit.provenance.git import git_state

FRAUD_GITIGNORE = "/mlruns/\n/out/\n/.mlaudit-out/\n/.mlaudit/cache/\nmarkers/\n"


@pytest.fixture
def fraud_layout(study: Study) -> Study:
    """The study with the fraud example's .gitignore, a previous run's out/ and cache on disk."""
    (study.root / ".gitignore").write_text(FRAUD_GITIGNORE, encoding="utf-8")
    study.commit("fraud layout")
    for leftover in ("out/trials/x", ".mlaudit/cache/ab"):
        (study.root / leftover).mkdir(parents=True)
        (study.root / leftover / "metrics.json").write_text("{}\n")
    return study


def _edit_code(study: Study) -> None:
    (study.root / "train.py").write_text((study.root / "train.py").read_text() + "\n# edit\n")


def test_ignored_excludes_do_not_break_hashing_a_dirty_tree(fraud_layout: Study):
    _edit_code(fraud_layout)
    state = git_state(
        fraud_layout.root,
        exclude=[fraud_layout.root / "out", fraud_layout.root / ".mlaudit" / "cache"],
    )
    assert state.dirty is True
    assert state.dirty_paths == ("train.py",)


def test_clean_tree_with_ignored_out_and_cache_is_clean(fraud_layout: Study):
    state = git_state(fraud_layout.root, exclude=[fraud_layout.root / "out"])
    assert state.dirty is False


def test_dirty_refusal_names_the_file_not_a_git_hint(fraud_layout: Study, run_cli):
    _edit_code(fraud_layout)
    result = run_cli(*fraud_layout.run_args(fraud_layout.root / "out" / "run1"))
    assert result.exit_code == 1
    assert "work tree is dirty (train.py)" in result.stderr
    assert "hint" not in result.stderr


@pytest.mark.parametrize("inside", [True, False], ids=["out-inside", "out-outside"])
def test_allow_dirty_runs_with_ignored_out_and_cache(
    fraud_layout: Study, run_cli, tmp_path: Path, inside: bool
):
    _edit_code(fraud_layout)
    out = fraud_layout.root / "out" / "run2" if inside else tmp_path / "elsewhere"
    out.mkdir(parents=True)
    result = run_cli(*fraud_layout.run_args(out, "--allow-dirty"))
    assert result.exit_code == 0, result.stderr
    git = json.loads((out / "results.json").read_text())["provenance"]["git"]
    assert git["dirty"] is True
    assert git["allow_dirty"] is True


def test_git_errors_show_the_cause_without_hints(tmp_path: Path):
    from audit.provenance.git import _cause

    stderr = (
        "The following paths are ignored by one of your .gitignore files:\nout\n"
        "hint: Use -f if you really want to add them.\n"
        'hint: "git config advice.addIgnoredFile false"\n'
    )
    assert _cause(stderr) == "The following paths are ignored by one of your .gitignore files: out"
    with pytest.raises(ProvenanceError, match="not inside a git repository"):
        git_state(tmp_path)
