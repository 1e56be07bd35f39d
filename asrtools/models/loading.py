"""The one entry point from a checkpoint file to a ready model: `load_model`.

Every user of a trained model (decoding, multi-talker decoding, speaker embedding
extraction, mitigation fine-tuning, ONNX export, model info, benchmarks) calls `load_model`,
which reads the file with `torch.load(weights_only=True)` (`asrtools.models.checkpoint`),
tells the model kind from the checkpoint's `task`, rebuilds the architecture from the
stored config, loads the weights and returns the model in eval mode:

  kind          task(s) in the checkpoint        model                          config
  transducer    transducer, mitigation, (none)   `Transducer`                   `ModelConfig`
  multitalker   sts                              `SeparatorTransducer`          `StsModelConfig`
  speaker       speaker                          `EcapaTdnn` (the embedder)     `SpeakerModelConfig`
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from asrtools.errors import DataError
from asrtools.models.checkpoint import load_checkpoint

TRANSDUCER = "transducer"
MULTITALKER = "multitalker"
SPEAKER = "speaker"
KINDS = (TRANSDUCER, MULTITALKER, SPEAKER)

_KIND_OF_TASK = {"transducer": TRANSDUCER, "mitigation": TRANSDUCER, "sts": MULTITALKER, "speaker": SPEAKER}
# Checkpoint entries that are neither weights nor architecture (kept in `LoadedModel.meta`).
_META_KEYS = ("task", "vocab_size", "turn_scheme", "frame_seconds", "cmn", "num_speakers", "epoch", "step",
              "averaged_from")


@dataclasses.dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint.

    Attributes:
      model: the network in eval mode, on the requested device.
      config: its architecture config dataclass (see the module docstring).
      kind: "transducer", "multitalker" or "speaker".
      path: the checkpoint file.
      meta: the checkpoint's other entries (task, vocab_size, turn_scheme, frame_seconds,
        cmn, epoch, step, ...; those present).
    """

    model: nn.Module
    config: Any
    kind: str
    path: Path
    meta: Dict[str, Any]

    @property
    def vocab_size(self) -> Optional[int]:
        """V of a transducer or multi-talker model; None for a speaker model."""
        value = self.meta.get("vocab_size")
        return int(value) if value is not None else None


def checkpoint_kind(ckpt: Dict[str, Any], path: Path) -> str:
    """The model kind of a loaded checkpoint dict; `DataError` naming the file if unknown."""
    task = ckpt.get("task", "transducer")
    if task not in _KIND_OF_TASK:
        raise DataError(f"checkpoint {path}: model task {task!r} is unknown "
                        f"(known: {', '.join(sorted(_KIND_OF_TASK))})")
    return _KIND_OF_TASK[task]


def load_model(checkpoint: Path, device: Any = "cpu", expect: Optional[Sequence[str]] = None) -> LoadedModel:
    """Rebuild the model stored in `checkpoint` and load its weights.

    Args:
      checkpoint: any model-bearing checkpoint (`averaged.pt`, `final.pt`, `epoch-<n>.pt`, ...).
      device: where to put the model.
      expect: the kinds the caller can use (None: any); another kind is a `DataError`.

    Returns:
      The `LoadedModel` (model in eval mode).

    Raises:
      DataError: unreadable file, no model in it, unknown or unexpected kind, weights that do
        not fit the stored config (all naming the file).
    """
    path = Path(checkpoint)
    device = torch.device(device)
    ckpt = load_checkpoint(path, map_location=device)
    kind = checkpoint_kind(ckpt, path)
    if expect is not None and kind not in expect:
        raise DataError(f"checkpoint {path} holds a {kind} model (task {ckpt.get('task', 'transducer')!r}); "
                        f"this needs a {' or '.join(expect)} model")
    model, config = _BUILDERS[kind](ckpt, path)
    weights = ckpt["model"]
    if kind == SPEAKER:  # the embedder's weights, without the training loss head's
        weights = {k[len("embedder."):]: v for k, v in weights.items() if k.startswith("embedder.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise DataError(f"checkpoint {path}: weights do not fit the stored config ({str(err).splitlines()[0]})") from None
    meta = {key: ckpt[key] for key in _META_KEYS if key in ckpt}
    return LoadedModel(model.to(device).eval(), config, kind, path, meta)


def _require(ckpt: Dict[str, Any], path: Path, keys: Sequence[str], what: str) -> None:
    missing = [key for key in keys if key not in ckpt]
    if missing:
        raise DataError(f"checkpoint {path} holds no model (a {what} needs the keys {', '.join(missing)})")


def _build_transducer(ckpt: Dict[str, Any], path: Path):
    from asrtools.models.build import build_model, model_config_from_dict

    _require(ckpt, path, ("model", "model_config", "vocab_size"), "transducer model")
    config = model_config_from_dict(ckpt["model_config"], source=str(path))
    return build_model(config, int(ckpt["vocab_size"])), config


def _build_multitalker(ckpt: Dict[str, Any], path: Path):
    from asrtools.models.sts import build_sts_model, sts_config_from_dict

    _require(ckpt, path, ("model", "model_config", "vocab_size"), "multi-talker model")
    config = sts_config_from_dict(ckpt["model_config"], source=str(path))
    return build_sts_model(config, int(ckpt["vocab_size"])), config


def _build_speaker(ckpt: Dict[str, Any], path: Path):
    from asrtools.models.speaker import build_speaker_model, speaker_config_from_dict

    _require(ckpt, path, ("model", "speaker_model_config"), "speaker-embedding model")
    config = speaker_config_from_dict(ckpt["speaker_model_config"], str(path))
    return build_speaker_model(config), config


_BUILDERS = {TRANSDUCER: _build_transducer, MULTITALKER: _build_multitalker, SPEAKER: _build_speaker}
