"""A tiny synthetic speaker corpus for the speaker-verification tests.

Every speaker has a fixed random "voice": a spectral offset (removed by mean normalisation) and
a per-band spread of the frame noise (which is not); each utterance draws its frames from it,
with a random length. A tiny ECAPA-TDNN
separates such speakers within a few dozen steps.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml
from lhotse import CutSet, Features, LilcomChunkyWriter, MonoCut, SupervisionSegment, SupervisionSet

REPO = Path(__file__).resolve().parents[1]
ASRTOOLS = str(Path(sys.executable).parent / "asrtools")
FEATURE_DIM = 80

TINY_SV_CONFIG = {
    "task": "speaker",
    "model": {"channels": 16, "num_blocks": 2, "res2_scale": 4, "se_channels": 8, "attention_channels": 8,
              "embed_dim": 16},
    "loss": {"type": "ap", "ap_form": "pairs"},
    "crop": {"frames": 24, "batch_size": 8, "valid_batch_size": 16},
    "optim": {"lr": 5.0e-3, "scheduler": "constant", "warmup_steps": 2},
    "data": {"min_cut_duration": 0.0, "spec_augment": {"enabled": False}},
    "num_epochs": 2,
    "save_every_n_steps": 2,
    "keep_last_k": 20,
    "log_every_n_steps": 2,
    "tensorboard": False,
    "num_threads": 1,
}


def make_sv_corpus(root: Path, speakers: Dict[str, int], utts: int = 6, seed: int = 0) -> Dict[str, Path]:
    """Write cuts_<split>.jsonl.gz and supervisions_<split>.jsonl.gz under `root`.

    Args:
      speakers: split -> number of speakers.
      utts: utterances per speaker.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: Dict[str, Path] = {}
    with LilcomChunkyWriter(root / "feats.lca") as writer:
        for split, count in speakers.items():
            cuts = []
            for s in range(count):
                spk = f"{split}{s:02d}"
                gender = "female" if s % 2 == 0 else "male"
                region = ["north", "south", "east"][s % 3]
                voice = rng.normal(size=FEATURE_DIM) * 1.5 + (1.0 if gender == "female" else -1.0)
                spread = np.exp(0.7 * rng.normal(size=FEATURE_DIM))  # survives mean normalisation
                for u in range(utts):
                    frames = int(rng.integers(30, 60))
                    feats = (voice[None] + rng.normal(size=(frames, FEATURE_DIM)) * spread).astype(np.float32)
                    cut_id = f"{spk}-{u:02d}"
                    key = writer.write(cut_id, feats)
                    duration = round(frames * 0.01, 2)
                    features = Features(type="fbank", num_frames=frames, num_features=FEATURE_DIM, frame_shift=0.01,
                                        sampling_rate=16000, start=0.0, duration=duration,
                                        storage_type=writer.name, storage_path=str(writer.storage_path),
                                        storage_key=key)
                    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=duration,
                                             text="A", speaker=spk, gender=gender,
                                             custom={"region": region, "engine": "espeak-ng" if s % 4 else "flite"})
                    cuts.append(MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, features=features,
                                        supervisions=[sup]))
            cutset = CutSet.from_cuts(cuts)
            paths[f"cuts_{split}"] = root / f"cuts_{split}.jsonl.gz"
            cutset.to_file(paths[f"cuts_{split}"])
            paths[f"supervisions_{split}"] = root / f"supervisions_{split}.jsonl.gz"
            SupervisionSet.from_segments(s for c in cuts for s in c.supervisions).to_file(paths[f"supervisions_{split}"])
    return paths


def write_sv_config(path: Path, overrides: Optional[dict] = None) -> Path:
    from asrtools.config import merge

    path.write_text(yaml.safe_dump(merge(TINY_SV_CONFIG, overrides or {})))
    return path


def sv_train_cmd(config: Path, corpus: Dict[str, Path], exp_dir: Path) -> List[str]:
    return [ASRTOOLS, "train", "--config", str(config), "--cuts-train", str(corpus["cuts_train"]),
            "--cuts-dev", str(corpus["cuts_dev"]), "--exp-dir", str(exp_dir)]


def sv_env() -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
