"""Embedding extractors for `asrtools sv embed`: a trained asrtools checkpoint or Resemblyzer.

- `checkpoint_embedder`: the ECAPA-TDNN of a `task: speaker` checkpoint on whole-utterance
  Fbank features (mean-normalised if it was trained so). Utterances are batched only with
  utterances of the same number of frames, so no padding enters any embedding and the
  result does not depend on the batching.
- `resemblyzer_embedder`: the external reference, Resemblyzer's pretrained GE2E encoder
  (LSTM, 256-dim; its weights ship inside the `resemblyzer` wheel: nothing is downloaded),
  on the cuts' 16 kHz audio with Resemblyzer's own preprocessing (volume normalisation,
  webrtcvad silence trimming, 40-band mel) and `embed_utterance`. Installed by
  scripts/setup_sv_ref_env.sh.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from asrtools.errors import DataError, ToolError
from asrtools.models.loading import SPEAKER, load_model
from asrtools.models.speaker import EcapaTdnn, embed_batch
from asrtools.sv.embeddings import EmbedFn

RESEMBLYZER = "resemblyzer"


def load_speaker_checkpoint(path: Path, device: str = "cpu") -> Tuple[EcapaTdnn, bool, Dict[str, Any]]:
    """The embedding network of a speaker-task checkpoint: (model in eval mode, cmn, info)."""
    loaded = load_model(path, device, expect=(SPEAKER,))
    model = loaded.model
    params = sum(p.numel() for p in model.parameters())
    return model, bool(loaded.meta.get("cmn", True)), {"model": "checkpoint", "checkpoint": str(path),
                                                       "params": params, "embed_dim": loaded.config.embed_dim}


def checkpoint_embedder(path: Path, device: str = "cpu", max_batch: int = 64) -> Tuple[EmbedFn, Dict[str, Any]]:
    """An `EmbedFn` running the checkpoint's ECAPA-TDNN on Fbank cuts (see the module docstring)."""
    model, cmn, info = load_speaker_checkpoint(path, device)

    @torch.no_grad()
    def embed(cuts: List[Any]) -> np.ndarray:
        by_length: Dict[int, List[int]] = defaultdict(list)
        for i, cut in enumerate(cuts):
            by_length[cut.num_frames].append(i)
        out = np.zeros((len(cuts), model.embed_dim), dtype=np.float32)
        for frames, members in sorted(by_length.items()):
            for start in range(0, len(members), max_batch):
                chunk = members[start:start + max_batch]
                try:
                    feats = np.stack([cuts[i].load_features() for i in chunk])
                except Exception as err:
                    raise DataError(f"cannot load features of cut {cuts[chunk[0]].id}: {err}") from None
                x = torch.from_numpy(feats).float()
                lengths = torch.full((len(chunk),), x.shape[1], dtype=torch.int64)
                out[chunk] = embed_batch(model, x, lengths, cmn, torch.device(device)).cpu().numpy()
        return out

    return embed, info


def resemblyzer_embedder() -> Tuple[EmbedFn, Dict[str, Any]]:
    """An `EmbedFn` running Resemblyzer's pretrained encoder on the cuts' audio (CPU)."""
    try:
        import resemblyzer
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as err:
        raise ToolError(f"the Resemblyzer reference needs the optional package resemblyzer "
                        f"(scripts/setup_sv_ref_env.sh): {err}") from None
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    if not weights.is_file():
        raise ToolError(f"Resemblyzer's bundled weights {weights} are missing; reinstall it "
                        f"(scripts/setup_sv_ref_env.sh)")
    encoder = VoiceEncoder(device="cpu", verbose=False, weights_fpath=weights)

    def embed(cuts: List[Any]) -> np.ndarray:
        out = []
        for cut in cuts:
            try:
                audio = cut.load_audio()[0]
            except Exception as err:
                raise DataError(f"cannot load audio of cut {cut.id}: {err}") from None
            wav = preprocess_wav(audio.astype(np.float32), source_sr=cut.sampling_rate)
            if len(wav) == 0:
                raise DataError(f"cut {cut.id}: Resemblyzer's voice activity detection kept no audio")
            out.append(encoder.embed_utterance(wav))
        return np.stack(out)

    from importlib.metadata import version

    return embed, {"model": RESEMBLYZER, "resemblyzer": version("resemblyzer"), "weights": str(weights),
                   "params": sum(p.numel() for p in encoder.parameters()), "embed_dim": 256}
