"""Shared fixtures for the transducer/train/decode tests: a tiny learnable synthetic corpus.

Each utterance's 80-dim "fbank" is built from its BPE tokens: every token is a fixed random
spectral template held for `FRAMES_PER_TOKEN` frames (plus a little noise), tokens separated
by a short silence template, so a tiny transducer can learn (and overfit) it in seconds.
"""
from __future__ import annotations

import functools
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml
from lhotse import CutSet, Features, LilcomChunkyWriter, MonoCut, NumpyFilesWriter, SupervisionSegment

from asrtools.text.tokenizer import Tokenizer, train_bpe

REPO = Path(__file__).resolve().parents[1]
ASRTOOLS = str(Path(sys.executable).parent / "asrtools")


def train_cmd(config: Path, corpus: Dict[str, Path], exp_dir: Path) -> List[str]:
    """`asrtools train` of `config` on a `make_corpus` corpus into `exp_dir`."""
    return [ASRTOOLS, "train", "--config", str(config), "--cuts-train", str(corpus["cuts_train"]),
            "--cuts-dev", str(corpus["cuts_dev"]), "--bpe-model", str(corpus["bpe_model"]),
            "--exp-dir", str(exp_dir)]


def train_env() -> Dict[str, str]:
    """Environment of a training subprocess: one thread, the native RNN-T loss, this checkout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", ASRTOOLS_RNNT_BACKEND="native")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# Short words so that a 35-piece BPE model has one piece per word.
WORDS = ["BA", "DO", "KI", "LO", "MU", "NE", "SE", "TA"]
FEATURE_DIM = 80
FRAMES_PER_TOKEN = 4  # one encoder frame per token after 4x subsampling
GAP_FRAMES = 4

# A tiny model: trains a step in a few milliseconds on one core.
TINY_CONFIG = {
    "model": {
        "encoder": "lstm",
        "encoder_params": {"hidden_dim": 48, "num_layers": 1, "subsampling_dim": 32,
                           "subsampling_channels": 8, "dropout": 0.0},
        "decoder_dim": 24,
        "joiner_dim": 32,
        "context_size": 2,
    },
    "optim": {"lr": 5.0e-3, "scheduler": "constant", "warmup_steps": 5, "clip_grad_norm": 5.0},
    "data": {"max_duration": 2.5, "num_buckets": 2, "min_cut_duration": 0.0, "spec_augment": {"enabled": False}},
    "loss": {"warm_steps": 20, "prune_range": 4},
    "num_epochs": 2,
    "save_every_n_steps": 0,
    "log_every_n_steps": 5,
    "tensorboard": False,
}


def _sentences(count: int, rng: random.Random) -> List[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(count)]


def _features(token_ids: List[int], rng: np.random.Generator) -> np.ndarray:
    silence = np.random.default_rng(10_000).normal(size=FEATURE_DIM).astype(np.float32)
    frames = [np.repeat(silence[None], GAP_FRAMES, 0)]
    for token in token_ids:
        template = np.random.default_rng(token).normal(size=FEATURE_DIM).astype(np.float32) * 2.0
        frames.append(np.repeat(template[None], FRAMES_PER_TOKEN, 0))
        frames.append(np.repeat(silence[None], GAP_FRAMES, 0))
    feats = np.concatenate(frames, 0)
    return feats + rng.normal(scale=0.1, size=feats.shape).astype(np.float32)


def _cut(cut_id: str, text: str, speaker: str, feats: np.ndarray, writer) -> MonoCut:
    duration = round(feats.shape[0] * 0.01, 2)
    key = writer.write(cut_id, feats)
    features = Features(type="fbank", num_frames=feats.shape[0], num_features=FEATURE_DIM, frame_shift=0.01,
                        sampling_rate=16000, start=0.0, duration=duration, storage_type=writer.name,
                        storage_path=str(writer.storage_path), storage_key=key)
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=duration, text=text,
                             speaker=speaker, gender="f" if speaker.endswith(("0", "2")) else "m",
                             custom={"region": "north" if speaker < "spk2" else "south", "zip": "12345"})
    return MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, features=features, supervisions=[sup])


def make_corpus(root: Path, num_train: int = 12, num_dev: int = 4, seed: int = 0,
                nan_cuts: int = 0, sentences: Optional[List[str]] = None, copies: int = 1,
                dev_is_train: bool = False) -> Dict[str, Path]:
    """Write bpe.model, cuts_train.jsonl.gz and cuts_dev.jsonl.gz under `root`.

    Args:
      root: output directory.
      num_train / num_dev: number of cuts.
      seed: text and noise seed.
      nan_cuts: the first `nan_cuts` training cuts get NaN features (stored losslessly).
      sentences: use these training texts instead of random ones.
      copies: each training text appears this many times (with different noise).
      dev_is_train: the dev cuts hold the (first copy of the) training texts.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    unique_texts = sentences or _sentences(num_train, rng)
    train_texts = unique_texts * copies
    dev_texts = list(unique_texts) if dev_is_train else _sentences(num_dev, rng)
    bpe = root / "bpe.model"
    train_bpe(WORDS * 3 + unique_texts, bpe, vocab_size=35)
    tokenizer = Tokenizer(bpe)
    noise = np.random.default_rng(seed)
    paths = {"bpe_model": bpe}
    with LilcomChunkyWriter(root / "feats.lca") as writer, NumpyFilesWriter(root / "nan_feats") as nan_writer:
        for split, texts in (("train", train_texts), ("dev", dev_texts)):
            cuts = []
            for i, (text, ids) in enumerate(zip(texts, tokenizer.encode(texts))):
                feats = _features(ids, noise)
                use_nan = split == "train" and i < nan_cuts
                if use_nan:
                    feats[:] = np.nan
                cuts.append(_cut(f"{split}-{i:03d}", text, f"spk{i % 4}", feats, nan_writer if use_nan else writer))
            paths[f"cuts_{split}"] = root / f"cuts_{split}.jsonl.gz"
            CutSet.from_cuts(cuts).to_file(paths[f"cuts_{split}"])
    return paths


def write_config(path: Path, overrides: Optional[dict] = None) -> Path:
    """Write TINY_CONFIG (deep-merged with `overrides`) as YAML to `path`."""
    from asrtools.config import merge

    path.write_text(yaml.safe_dump(merge(TINY_CONFIG, overrides or {})))
    return path


OVERFIT_TEXTS = ["SE BA MU TA", "MU TA NE LO", "MU KI", "DO SE", "LO", "NE KI BA"]


@functools.lru_cache(maxsize=1)
def overfit_run() -> Dict[str, object]:
    """Train (once per test session) a tiny model on 6 utterances until it memorises them.

    One batch holds all six cuts, so an epoch is one step. The dev cuts hold the same texts
    with different noise, so a low dev loss means the acoustic templates were learnt.

    Returns:
      {"corpus": paths, "exp_dir": Path, "initial_pruned": float, "final_pruned": float}.
    """
    from asrtools.training.config import load_train_config
    from asrtools.training.distributed import setup_distributed
    from asrtools.training.trainer import Trainer, TrainPaths

    root = Path(tempfile.mkdtemp(prefix="asrtools-overfit-"))
    corpus = make_corpus(root / "data", sentences=OVERFIT_TEXTS, dev_is_train=True)
    config = load_train_config(write_config(root / "overfit.yaml", {
        "num_epochs": 150, "optim": {"lr": 0.01},
        "data": {"max_duration": 3.0}, "average_last_n": 1, "keep_last_k": 1}))
    paths = TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], root / "exp")
    (root / "exp").mkdir()
    trainer = Trainer(config, paths, setup_distributed("cpu"))
    initial = trainer.validate()["pruned"]
    trainer.run()
    return {"corpus": corpus, "exp_dir": root / "exp", "initial_pruned": initial,
            "final_pruned": trainer.valid["pruned"]}
