"""Model files: durable atomic save, safe load, and weight averaging.

Every checkpoint is a dict of tensors and plain containers (ints, floats, strings, lists,
dicts), written through `asrtools.pipeline.atomic_path` with the file and its directory
fsynced (a crash right after the save still finds it on disk), and read with
`torch.load(weights_only=True)`. Model-bearing files hold "model" (a state dict) and what
is needed to rebuild the model ("model_config", "vocab_size", ...), so any of them can be
used on its own. Training-only parts (discovery, pruning, RNG state) are in
`asrtools.training.checkpoints`.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Dict, Sequence

import torch

from asrtools.errors import DataError, describe
from asrtools.pipeline import atomic_path


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Write `state` to `path` atomically and durably (file and directory fsynced).

    Identical states give identical bytes: given a path, torch.save names the zip archive
    inside the file after it (here the temporary `.tmp-<pid>-...` name, different in every
    run); given an open file, it uses the fixed name `archive`.
    """
    with atomic_path(path, durable=True) as tmp:
        with open(tmp, "wb") as stream:
            torch.save(state, stream)


def load_checkpoint(path: Path, map_location: Any = "cpu", mmap: bool = False) -> Dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; `DataError` naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its directory is at the end
        raise DataError(f"checkpoint {path} is not a PyTorch checkpoint file (truncated, or another format)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:
        raise DataError(f"checkpoint {path} cannot be loaded ({describe(err)})") from None
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path} is not an asrtools checkpoint (holds a {type(state).__name__})")
    return state


def average_state_dicts(state_dicts: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (in float64); other tensors from the last.

    Args:
      state_dicts: model state dicts with identical keys and shapes.
    """
    if not state_dicts:
        raise ValueError("nothing to average")
    averaged = {}
    for key, last in state_dicts[-1].items():
        if last.is_floating_point():
            total = sum(sd[key].to(torch.float64) for sd in state_dicts)
            averaged[key] = (total / len(state_dicts)).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged
