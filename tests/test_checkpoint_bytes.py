"""Reproduced runs write byte-identical checkpoints (sha256 checks of a rerun must pass).

torch.save names the zip archive inside a checkpoint after the file it writes to; the atomic
save writes to a temporary name holding the writer's pid, so before `save_checkpoint` passed
an open file, every run's bytes differed although the weights matched.
"""
from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import torch

from asrtools.models.checkpoint import save_checkpoint
from asrtools.pipeline import atomic

from test_train_helpers import make_corpus, train_cmd, train_env, write_config


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_state_gives_the_same_bytes_whatever_the_writer_and_file_name(tmp_path, monkeypatch):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 3, "averaged_from": ["epoch-1.pt"]}
    save_checkpoint(tmp_path / "a" / "averaged.pt", state)
    monkeypatch.setattr(atomic.os, "getpid", lambda: 4242)  # another process's temporary name
    save_checkpoint(tmp_path / "b" / "other-name.pt", state)
    assert _sha256(tmp_path / "a" / "averaged.pt") == _sha256(tmp_path / "b" / "other-name.pt")
    assert {name.split("/")[0] for name in zipfile.ZipFile(tmp_path / "a" / "averaged.pt").namelist()} == {"archive"}


def test_two_identical_tiny_trainings_write_byte_identical_checkpoints(tmp_path):
    corpus = make_corpus(tmp_path / "data", num_train=6)
    config = write_config(tmp_path / "c.yaml", {"num_epochs": 2, "average_last_n": 2})
    for run in ("one", "two"):  # two processes (two pids), two experiment directories
        subprocess.run(train_cmd(config, corpus, tmp_path / run), env=train_env(), check=True, capture_output=True)
    # The model files; resumable checkpoints (epoch-N.pt) also hold the measured training seconds.
    for name in ("averaged.pt", "final.pt"):
        assert _sha256(tmp_path / "one" / name) == _sha256(tmp_path / "two" / name), name
