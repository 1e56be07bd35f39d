"""Tiny models and audio for the export / transcribe tests.

The models have seeded random weights (no training: the tests compare runtimes on the same
weights, so what matters is that decisions are many and not near ties) with the blank
logit lowered so that they emit a token on many frames. The audio is synthetic: chirps and
noise bursts made with numpy.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Dict

import numpy as np
import soundfile as sf
import torch

from asrtools.models.build import ModelConfig, build_model, model_config_to_dict
from asrtools.models.checkpoint import save_checkpoint
from asrtools.text.tokenizer import Tokenizer, train_bpe

WORDS = ["BA", "DO", "KI", "LO", "MU", "NE", "SE", "TA"]
TINY_ENCODERS = {
    "lstm": {"hidden_dim": 48, "num_layers": 2, "subsampling_dim": 32, "subsampling_channels": 8,
             "dropout": 0.0, "norm": "batch", "feature_norm": "online_cmn"},
    "convrnnt": {"local_channels": [4, 4, 3, 3], "global_channels": 8, "global_hidden_channels": 12,
                 "global_dilations": [1, 2, 4, 8], "se_bottleneck": 4, "frontend_dim": 16, "hidden_dim": 20,
                 "num_layers": 2, "dropout": 0.0},
    "convrnnt_offline": {"local_channels": [4, 4, 3, 3], "global_channels": 8, "global_hidden_channels": 12,
                         "global_dilations": [1, 2], "se_bottleneck": 4, "frontend_dim": 16, "hidden_dim": 20,
                         "num_layers": 1, "dropout": 0.0, "se_mode": "utterance_mean"},
    "conformer": {"dim": 16, "num_layers": 2, "num_heads": 2, "ffn_dim": 24, "conv_kernel_size": 5, "chunk_size": 3,
                  "left_context": 4, "max_relative_distance": 6, "subsampling_channels": 4, "dropout": 0.0},
    "transformer": {"dim": 16, "num_layers": 2, "num_heads": 2, "ffn_dim": 24, "chunk_size": 3, "left_context": 4,
                    "max_relative_distance": 6, "subsampling_channels": 4, "norm": "layer", "dropout": 0.0},
}


def tiny_checkpoint(path: Path, bpe_model: Path, encoder: str = "lstm", seed: int = 0,
                    blank_shift: float = 2.0) -> Path:
    """Save a random tiny transducer checkpoint (task transducer) for the vocabulary of `bpe_model`."""
    vocab = Tokenizer(bpe_model).vocab_size
    config = ModelConfig(encoder=encoder.split("_")[0], encoder_params=TINY_ENCODERS[encoder], decoder_dim=24,
                         joiner_dim=32)
    torch.manual_seed(seed)
    model = build_model(config, vocab).eval()
    with torch.no_grad():
        model.joiner.output_linear.bias[0] -= blank_shift
        # sherpa-onnx treats <unk> as blank; a trained model rarely emits it, a random one would.
        model.joiner.output_linear.bias[Tokenizer(bpe_model).unk_id] -= 30.0
        for name, buf in model.named_buffers():  # plausible log-mel statistics for batch norm / CMN
            if name.endswith("global_mean"):
                buf.fill_(-8.0)
    save_checkpoint(path, {"task": "transducer", "model": model.state_dict(),
                           "model_config": model_config_to_dict(config), "vocab_size": vocab})
    return path


def synthetic_audio(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Mono float32 chirps with noise bursts in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freq = 200 + 1800 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
    signal = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    bursts = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.6) * rng.normal(scale=0.1, size=t.size)
    return (signal + bursts).astype(np.float32)


@functools.lru_cache(maxsize=1)
def tiny_setup() -> Dict[str, Path]:
    """A BPE model, a tiny LSTM checkpoint and three 16 kHz WAV files (made once per session)."""
    root = Path(tempfile.mkdtemp(prefix="asrtools-export-"))
    bpe = root / "bpe.model"
    train_bpe(WORDS * 3 + ["BA DO KI", "LO MU NE", "SE TA"], bpe, vocab_size=35)
    paths = {"root": root, "bpe_model": bpe, "checkpoint": tiny_checkpoint(root / "tiny.pt", bpe)}
    for i, seconds in enumerate((1.3, 2.07, 3.0)):
        wav = root / f"utt{i}.wav"
        sf.write(wav, synthetic_audio(seconds, seed=i), 16000, subtype="FLOAT")
        paths[f"wav{i}"] = wav
    return paths


def tiny_cuts(root: Path, wavs) -> Path:
    """cuts_test.jsonl.gz: one cut per WAV, with a transcript, speaker and lhotse Fbank features."""
    from lhotse import CutSet, LilcomChunkyWriter, Recording, SupervisionSegment

    from asrtools.data.feature_config import FeatureConfig

    cuts = []
    for i, wav in enumerate(wavs):
        recording = Recording.from_file(wav, recording_id=f"utt{i}")
        cut = recording.to_cut()
        cut.supervisions = [SupervisionSegment(id=f"utt{i}", recording_id=f"utt{i}", start=0.0,
                                               duration=recording.duration, text=" ".join(WORDS[i:i + 3]),
                                               speaker=f"spk{i}")]
        cuts.append(cut)
    cutset = CutSet.from_cuts(cuts).compute_and_store_features(FeatureConfig().extractor(), root / "feats",
                                                               storage_type=LilcomChunkyWriter)
    path = root / "cuts_test.jsonl.gz"
    cutset.to_file(path)
    return path
