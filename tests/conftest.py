"""Shared pytest fixtures (a tiny synthetic corpus built once per session) and the CI skip policy.

Under ``ASRTOOLS_CI=1`` a skipped test fails unless its reason starts with ``optional:``
(tests/ci_skip_policy.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

# The CI skip policy's hooks, registered by being names of this conftest.
from ci_skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
ASRTOOLS = [sys.executable, "-m", "asrtools.cli.main"]

# Subprocesses (the CLI, recipes, torchrun) import asrtools from this checkout, also when the
# shared .venv's editable install points at another one (a git worktree).
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != str(REPO):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def run_asrtools(args: List[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run `asrtools ARGS...` in a subprocess (as a user would), capturing output."""
    proc = subprocess.run([*ASRTOOLS, *args], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"asrtools {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def have_tts() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None and shutil.which("flite") is not None


TTS_MISSING = "espeak-ng/flite/sox not installed (scripts/setup_env.sh installs them)"
needs_tts = pytest.mark.skipif(not have_tts(), reason=TTS_MISSING)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A tiny corpus + manifests + features + BPE, built with the CLI once per session."""
    if not have_tts():
        pytest.skip(TTS_MISSING)
    root = tmp_path_factory.mktemp("tiny")
    run_asrtools(["data", "synth", "--preset", "tiny", "--out-dir", str(root / "synth"), "-j", "2"])
    run_asrtools(["data", "manifests", "--corpus-dir", str(root / "synth"), "--out-dir", str(root / "manifests")])
    run_asrtools(["data", "features", "--manifest-dir", str(root / "manifests"), "--out-dir", str(root / "fbank"),
                  "--set", "shard_size=16"])
    run_asrtools(["bpe", "train", "--supervisions", str(root / "manifests" / "supervisions_train.jsonl.gz"),
                  "--set", "vocab_size=64", "--out-dir", str(root / "lang_bpe")])
    return root
