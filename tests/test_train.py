"""The trainer: config strictness, filtering, NaN guard, overfitting, exact resume, DDP."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asrtools.errors import ConfigError, DataError
from asrtools.data.cuts import load_cuts
from asrtools.models.checkpoint import average_state_dicts, load_checkpoint
from asrtools.training.checkpoints import epoch_checkpoints, latest_checkpoint, step_checkpoints
from asrtools.training.config import load_train_config
from asrtools.training.data import filter_trainable
from asrtools.training.distributed import setup_distributed
from asrtools.training.trainer import Trainer, TrainingDivergedError, TrainPaths

from test_train_helpers import OVERFIT_TEXTS, make_corpus, overfit_run, train_cmd, train_env, write_config

torch.set_num_threads(1)


def _paths(corpus, exp_dir: Path) -> TrainPaths:
    return TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], exp_dir)


def test_unknown_and_mistyped_keys_are_config_errors(tmp_path):
    bad = write_config(tmp_path / "a.yaml", {"optim": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="learning_rate"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="num_epochs"):
        load_train_config(write_config(tmp_path / "b.yaml"), ["num_epochs=many"])
    with pytest.raises(ConfigError, match="scheduler"):
        load_train_config(write_config(tmp_path / "c.yaml"), ["optim.scheduler=cosine"])


def test_more_tokens_than_frames_are_filtered_and_counted(tmp_path):
    corpus = make_corpus(tmp_path, num_train=8)
    cuts = load_cuts(corpus["cuts_train"])
    # With 3 tokens per cut and 8x subsampling, the short (1-2 word) cuts have too few frames.
    kept, dropped = filter_trainable(cuts, lambda texts: [[5] * 3 for _ in texts], lambda n: n // 8, 0.0, 100.0)
    expected = sum(1 for c in cuts if 3 > c.num_frames // 8)
    assert 0 < expected < len(cuts)
    assert dropped == {"more_tokens_than_frames": expected}
    assert len(kept) == len(cuts) - expected
    one_token = lambda texts: [[5] for _ in texts]  # noqa: E731
    _, dropped = filter_trainable(cuts, one_token, lambda n: n // 4, 0.15, 0.3)
    assert dropped.get("too_short", 0) == sum(c.duration < 0.15 for c in cuts)
    assert dropped.get("too_long", 0) == sum(c.duration > 0.3 for c in cuts)
    with pytest.raises(DataError, match="no trainable cuts"):
        filter_trainable(cuts, one_token, lambda n: n // 4, 100.0, 200.0)


def test_nan_batches_are_skipped_then_stop_training(tmp_path):
    corpus = make_corpus(tmp_path / "data", num_train=8, nan_cuts=2)
    config = load_train_config(write_config(tmp_path / "c.yaml", {"num_epochs": 1, "max_bad_batches": 10}))
    trainer = Trainer(config, _paths(corpus, tmp_path / "exp"), setup_distributed("cpu"))
    (tmp_path / "exp").mkdir()
    trainer.run()
    assert 1 <= trainer.progress.bad_batches <= 2
    assert trainer.progress.step == trainer.progress.batches_in_epoch - trainer.progress.bad_batches
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    strict = load_train_config(write_config(tmp_path / "s.yaml", {"num_epochs": 1, "max_bad_batches": 0}))
    trainer = Trainer(strict, _paths(corpus, tmp_path / "exp2"), setup_distributed("cpu"))
    (tmp_path / "exp2").mkdir()
    with pytest.raises(TrainingDivergedError, match="non-finite loss"):
        trainer.run()


def test_tiny_model_overfits_and_greedy_recovers_training_texts():
    from asrtools.decoding.recognize import DecodeOptions, decode_features, load_model
    from asrtools.text.tokenizer import Tokenizer
    from asrtools.data.cuts import AsrDataset

    run = overfit_run()
    assert run["final_pruned"] < 0.05 * run["initial_pruned"], run
    model, _ = load_model(run["exp_dir"] / "averaged.pt")
    tokenizer = Tokenizer(run["corpus"]["bpe_model"])
    batch = AsrDataset()[load_cuts(run["corpus"]["cuts_dev"])]
    ids = decode_features(model, batch["features"], batch["feature_lens"], DecodeOptions(method="greedy"))
    assert tokenizer.decode(ids) == batch["texts"]
    assert sorted(batch["texts"]) == sorted(OVERFIT_TEXTS)


def test_checkpoint_averaging_and_pruning(tmp_path):
    corpus = make_corpus(tmp_path / "data", num_train=6)
    config = load_train_config(write_config(tmp_path / "c.yaml", {
        "num_epochs": 4, "save_every_n_steps": 1, "keep_last_k": 2, "average_last_n": 3}))
    trainer = Trainer(config, _paths(corpus, tmp_path / "exp"), setup_distributed("cpu"))
    (tmp_path / "exp").mkdir()
    trainer.run()
    exp = tmp_path / "exp"
    assert len(step_checkpoints(exp)) == 2
    epochs = epoch_checkpoints(exp)
    assert [e for e, _ in epochs] == [2, 3, 4]
    expected = average_state_dicts([load_checkpoint(p)["model"] for _, p in epochs])
    averaged = load_checkpoint(exp / "averaged.pt")
    assert averaged["averaged_from"] == ["epoch-2.pt", "epoch-3.pt", "epoch-4.pt"]
    for key, value in expected.items():
        assert torch.equal(averaged["model"][key], value)
    assert latest_checkpoint(exp) == exp / "epoch-4.pt"


def _resume_config(tmp_path: Path) -> Path:
    # Dropout, SpecAugment and shuffling make every RNG matter for exactness.
    return write_config(tmp_path / "resume.yaml", {
        "num_epochs": 4, "save_every_n_steps": 2, "keep_last_k": 2,
        "model": {"encoder_params": {"dropout": 0.1}},
        "data": {"spec_augment": {"enabled": True, "time_warp_factor": 5, "features_mask_size": 5,
                                  "frames_mask_size": 5, "num_frame_masks": 1}},
    })


def test_exact_resume_after_sigkill_is_bit_identical(tmp_path):
    corpus = make_corpus(tmp_path / "data", num_train=24)
    config = _resume_config(tmp_path)
    subprocess.run(train_cmd(config, corpus, tmp_path / "straight"), env=train_env(), check=True,
                   capture_output=True)

    kill_after = random.Random().choice([2, 4, 6])
    exp = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(config, corpus, exp), env=train_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (exp / f"checkpoint-{kill_after}.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    still_running = proc.poll() is None and not (exp / "final.pt").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running, "training finished before it could be killed"

    resumed = subprocess.run(train_cmd(config, corpus, exp), env=train_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint-" in resumed.stderr

    for name in ("final.pt", "averaged.pt"):
        straight = load_checkpoint(tmp_path / "straight" / name)["model"]
        again = load_checkpoint(exp / name)["model"]
        assert straight.keys() == again.keys()
        for key in straight:
            assert torch.equal(straight[key], again[key]), (name, key)
    steps = [load_checkpoint(p)["step"] for p in (tmp_path / "straight" / "final.pt", exp / "final.pt")]
    assert steps[0] == steps[1] > kill_after

    rerun = subprocess.run(train_cmd(config, corpus, exp), env=train_env(), capture_output=True, text=True)
    assert rerun.returncode == 0 and "up to date" in rerun.stderr


def test_torchrun_two_processes_on_cpu(tmp_path):
    corpus = make_corpus(tmp_path / "data", num_train=12)
    config = write_config(tmp_path / "c.yaml", {"num_epochs": 1, "save_every_n_steps": 1,
                                                "data": {"max_duration": 0.8}})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
           *train_cmd(config, corpus, tmp_path / "exp")]
    result = subprocess.run(cmd, env=train_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "exp" / "epoch-1.pt")
    assert len(ckpt["rank_states"]) == 2
    assert ckpt["step"] >= 2
    assert (tmp_path / "exp" / "averaged.pt").is_file()
    log = (tmp_path / "log" / "exp.log").read_text()
    assert log.count("training done") == 1
    # Only rank 0 wrote logs: every step line appears once.
    assert log.count("epoch 1 done") == 1
