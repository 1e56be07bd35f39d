"""Training checkpoints: discovery (with fallback past unreadable files), pruning, RNG state.

Files in the experiment directory:
  checkpoint-<step>.pt   every `save_every_n_steps` steps (the last `keep_last_k` kept)
  epoch-<n>.pt           at the end of epoch n (the last max(keep_last_k, average_last_n) kept)
  final.pt               model weights at the end of training
  averaged.pt            average of the last `average_last_n` epoch checkpoints' weights

Saving, loading and averaging are `asrtools.models.checkpoint`'s (durable atomic writes,
`torch.load(weights_only=True)`); this module adds what only training needs.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from asrtools.errors import DataError
from asrtools.models.checkpoint import load_checkpoint

logger = logging.getLogger("asrtools")

STEP_PATTERN = re.compile(r"^checkpoint-(\d+)\.pt$")
EPOCH_PATTERN = re.compile(r"^epoch-(\d+)\.pt$")
AVERAGED_NAME = "averaged.pt"
FINAL_NAME = "final.pt"


def epoch_checkpoints(exp_dir: Path) -> List[Tuple[int, Path]]:
    """`(epoch, path)` of every `epoch-<n>.pt`, oldest first."""
    return _numbered(exp_dir, EPOCH_PATTERN)


def step_checkpoints(exp_dir: Path) -> List[Tuple[int, Path]]:
    """`(step, path)` of every `checkpoint-<step>.pt`, oldest first."""
    return _numbered(exp_dir, STEP_PATTERN)


def _numbered(exp_dir: Path, pattern: "re.Pattern[str]") -> List[Tuple[int, Path]]:
    found = []
    for path in Path(exp_dir).glob("*.pt"):
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(exp_dir: Path, log: logging.Logger = logger) -> Optional[Path]:
    """The checkpoint to resume from: the most training steps (an epoch end wins a tie).

    A checkpoint that cannot be read (truncated by a crash, corrupted on disk) is reported
    and skipped, so training resumes from the newest readable one.
    """
    best: Optional[Tuple[int, int, Path]] = None
    for _, path in step_checkpoints(exp_dir) + epoch_checkpoints(exp_dir):
        try:
            meta = load_checkpoint(path, mmap=True)
            key = (int(meta["step"]), int(bool(meta["epoch_finished"])), path)
        except (DataError, KeyError, TypeError, ValueError, RuntimeError) as err:
            log.warning("checkpoint %s is unreadable, resuming from an older one (%s)", path.name,
                        " ".join(str(err).split())[:200])
            continue
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def prune_checkpoints(exp_dir: Path, keep_steps: int, keep_epochs: int, protect_epochs: Iterable[int] = ()) -> None:
    """Delete all but the newest `keep_steps` step and `keep_epochs` epoch checkpoints.

    Epoch checkpoints in `protect_epochs` (e.g. the best ones by dev WER, to be averaged)
    are kept too.
    """
    protected = set(protect_epochs)
    for _, path in step_checkpoints(exp_dir)[: max(0, len(step_checkpoints(exp_dir)) - keep_steps)]:
        path.unlink()
    epochs = epoch_checkpoints(exp_dir)
    for epoch, path in epochs[: max(0, len(epochs) - keep_epochs)]:
        if epoch not in protected:
            path.unlink()


def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain values."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
