"""asrtools.utils.provenance: the record of the process that made the numbers, and its one-line form."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asrtools.utils.provenance as prov

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="optional: not run from a git checkout")
def test_commit_and_dirty_state_of_the_checkout() -> None:
    prov.git_state.cache_clear()  # computed once per process: compare with the tree as it is now
    commit, dirty = prov.git_state()
    assert commit == _git("rev-parse", "HEAD")
    assert dirty == bool(_git("status", "--porcelain", "--untracked-files=no"))


def test_without_a_git_checkout_nothing_is_claimed(monkeypatch, tmp_path) -> None:
    prov.git_state.cache_clear()
    monkeypatch.setattr(prov, "SOURCE_ROOT", tmp_path)  # not a repository
    try:
        assert prov.git_state() == (None, None)
        record = prov.provenance()
        assert record["git_commit"] is None and record["git_dirty"] is None
        assert "(not a git checkout)" in prov.format_provenance(record)
    finally:
        prov.git_state.cache_clear()


def test_a_repository_that_only_contains_the_package_does_not_count(monkeypatch, tmp_path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"],
                   check=True)
    prov.git_state.cache_clear()
    monkeypatch.setattr(prov, "SOURCE_ROOT", tmp_path / "site-packages")  # e.g. a .venv inside a clone
    (tmp_path / "site-packages").mkdir()
    try:
        assert prov.git_state() == (None, None)
    finally:
        prov.git_state.cache_clear()


def test_threads_and_torch_without_importing_torch() -> None:
    code = ("import sys; from asrtools.utils.provenance import provenance; p = provenance(); "
            "assert 'torch' not in sys.modules; print(p['torch'], p['threads'], p['gpu'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import torch

    assert out == [torch.__version__, "None", "None"]
    assert prov.provenance()["threads"] == torch.get_num_threads()
    assert prov.provenance(threads=3)["threads"] == 3


def test_one_line_form() -> None:
    record = {"asrtools": "0.1.0", "git_commit": "0123456789abcdef" * 2 + "01234567", "git_dirty": True,
              "python": "3.11.7", "torch": "2.9.1", "cpu": "Some CPU", "cpu_count": 16, "gpu": "NVIDIA H200",
              "threads": 1}
    assert prov.format_provenance(record) == ("asrtools 0.1.0 at git 0123456789ab (dirty tree); Python 3.11.7, "
                                              "torch 2.9.1; CPU Some CPU, 16 cores; GPU NVIDIA H200; 1 thread")
    assert prov.format_provenance(None) == prov.format_provenance({}) == "provenance not recorded"
