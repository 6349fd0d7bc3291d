"""Git LFS data pins with the real git-lfs on a local repository (no remote, no network)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from audit.errors import ProvenanceError
from audit.provenance.pins import changed_pins, collect_pins

CONTENT = b"weights " * 1000


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, input=stdin
    ).stdout


@pytest.fixture(scope="module")
def lfs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME and the global git config in tmp: git lfs install --local touches nothing else."""
    return tmp_path_factory.mktemp("lfs-home")


@pytest.fixture
def lfs_repo(tmp_path: Path, lfs_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(lfs_home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(lfs_home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "user.name", "Test")
    _git(repo, "config", "commit.gpgsign", "false")
    _git(repo, "lfs", "install", "--local")
    _git(repo, "lfs", "track", "*.bin")
    (repo / "data").mkdir()
    (repo / "data" / "weights.bin").write_bytes(CONTENT)
    (repo / "data" / "more").mkdir()
    (repo / "data" / "more" / "b.bin").write_bytes(b"b" * 10)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "data")
    return repo


def test_pins_record_oid_size_and_a_matching_canonical_pointer(lfs_repo: Path):
    pins = collect_pins(lfs_repo, ["data/weights.bin", "data/more"])
    record = pins.to_dict()["git_lfs"]
    head = _git(lfs_repo, "rev-parse", "HEAD").decode().strip()
    weights = next(p for p in record if p["path"] == "data/weights.bin")
    assert weights["commit"] == head
    assert weights["objects"] == [
        {
            "path": "data/weights.bin",
            "oid": "sha256:" + hashlib.sha256(CONTENT).hexdigest(),
            "size": len(CONTENT),
            "canonical": True,
            "worktree_sha256": hashlib.sha256(CONTENT).hexdigest(),
            "matches": True,
        }
    ]
    directory = next(p for p in record if p["path"] == "data/more")
    assert [o["path"] for o in directory["objects"]] == ["data/more/b.bin"]
    assert pins.hashes()["data/weights.bin"] == weights["digest"]


def test_a_missing_smudge_is_refused_naming_git_lfs_pull(lfs_repo: Path):
    # A clone without the LFS objects: the pointer text is what is on disk.
    pointer = _git(lfs_repo, "cat-file", "blob", "HEAD:data/weights.bin")
    (lfs_repo / "data" / "weights.bin").write_bytes(pointer)
    with pytest.raises(ProvenanceError) as caught:
        collect_pins(lfs_repo, ["data/weights.bin"])
    assert "data/weights.bin" in caught.value.message
    assert "still the LFS pointer" in caught.value.message
    assert "git lfs pull" in caught.value.message


def test_an_edited_file_is_refused(lfs_repo: Path):
    (lfs_repo / "data" / "weights.bin").write_bytes(CONTENT + b"!")
    with pytest.raises(ProvenanceError, match="is not the LFS object"):
        collect_pins(lfs_repo, ["data/weights.bin"])


def test_a_non_canonical_pointer_is_recorded_as_such(lfs_repo: Path):
    oid = hashlib.sha256(b"raw").hexdigest()
    # Valid for git-lfs, but not what it writes: a size with a leading zero.
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 03\n"
    blob = _git(lfs_repo, "hash-object", "-w", "--stdin", stdin=text.encode()).decode().strip()
    _git(lfs_repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},data/raw.bin")
    _git(lfs_repo, "commit", "-q", "-m", "hand-made pointer")
    (lfs_repo / "data" / "raw.bin").write_bytes(b"raw")
    pins = collect_pins(lfs_repo, ["data/raw.bin"])
    (obj,) = pins.to_dict()["git_lfs"][0]["objects"]
    assert obj["canonical"] is False
    assert obj["matches"] is True


def test_a_path_not_in_lfs_is_refused(lfs_repo: Path):
    (lfs_repo / "plain.txt").write_text("not lfs\n")
    _git(lfs_repo, "add", "plain.txt")
    _git(lfs_repo, "commit", "-q", "-m", "plain")
    with pytest.raises(ProvenanceError, match="not stored in Git LFS"):
        collect_pins(lfs_repo, ["plain.txt"])


def test_an_object_changed_during_the_run_is_named(lfs_repo: Path):
    recorded = collect_pins(lfs_repo, ["data/weights.bin"]).to_dict()
    assert changed_pins(recorded, lfs_repo) == []
    (lfs_repo / "data" / "weights.bin").write_bytes(b"new weights")
    _git(lfs_repo, "commit", "-q", "-am", "new weights")
    problems = changed_pins(recorded, lfs_repo)
    assert problems == ["data/weights.bin: the Git LFS data changed during the run"]
