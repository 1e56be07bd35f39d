"""Executed-compute accounting of encoders that skip work per frame (e.g. arbitrated sub-blocks).

Such an encoder counts, per stream, the valid output frames and how many of them each
skippable sub-block executed (`ComputeMeter`, reset with `Encoder.reset_compute`), and
turns the counts into a per-stream record (`Encoder.compute_counts`):

    {"frames": n,                                  valid output frames
     "executed_frames": {"0.attention": a, ...},   frames each sub-block ran on
     "flops": {"front_end": ...,                   FLOPs (2 x multiply-adds) actually run
               "layers": ...,                      by the skippable stack, arbitrators included
               "layers_kv_skipped": ...,           the same if a skipped attention query's
                                                   keys/values were not computed either
               "dense_layers": ...}}               the stack with every sub-block run, no arbitrators

Decoding stores each record with its utterance and `summarize_compute` adds them up for
summary.json: the executed fraction of the encoder (front end included) and of the
skippable stack, under both accountings of a skipped attention query, and per sub-block.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch

from asrtools.utils.encoder_compute import fraction

#: summary.json key of the aggregated record.
SUMMARY_KEY = "encoder_compute"

ACCOUNTING = (
    "FLOPs = 2 x multiply-adds per valid output frame, arbitrators included; 'kv_all': a skipped "
    "attention query still pays its frame's key/value projections (what the implementation runs); "
    "'kv_skipped': it would not (keys/values only for executed frames)"
)


class ComputeMeter:
    """Per-stream counts of executed frames of named sub-blocks.

    Args:
      names: the sub-blocks, in counting order (e.g. "0.attention", "0.ffn", ...).
      batch_size: B, streams counted.
      device: where the counters live.
    """

    def __init__(self, names: Sequence[str], batch_size: int, device: torch.device) -> None:
        self.names = list(names)
        self.batch_size = batch_size
        self.frames = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.executed = torch.zeros(batch_size, len(self.names), dtype=torch.int64, device=device)

    def add_frames(self, valid: torch.Tensor) -> None:
        """Count valid frames: (B, T) bool."""
        self.frames += valid.sum(dim=1)

    def add_executed(self, index: int, active: torch.Tensor) -> None:
        """Count frames sub-block `index` ran on: (B, T) bool (valid frames only)."""
        self.executed[:, index] += active.sum(dim=1)

    def stream_counts(self) -> List[Dict[str, Any]]:
        """[{"frames": n, "executed_frames": {name: count}}] per stream."""
        frames, executed = self.frames.tolist(), self.executed.tolist()
        return [{"frames": f, "executed_frames": dict(zip(self.names, row))} for f, row in zip(frames, executed)]


def summarize_compute(records: Iterable[Optional[Mapping[str, Any]]]) -> Optional[Dict[str, Any]]:
    """Add up per-stream compute records (see the module docstring) into fractions.

    Args:
      records: per utterance its record, or None (not counted).

    Returns:
      None when no record was given; else {"streams", "frames", "encoder_fraction",
      "encoder_fraction_kv_skipped", "layers_fraction", "layers_fraction_kv_skipped",
      "executed_fraction": {sub-block: fraction of valid frames}, "flops": summed FLOPs,
      "accounting": how FLOPs were counted}.
    """
    streams, frames = 0, 0
    flops: Dict[str, float] = {}
    executed: Dict[str, int] = {}
    for record in records:
        if record is None:
            continue
        streams += 1
        frames += int(record["frames"])
        for key, value in record["flops"].items():
            flops[key] = flops.get(key, 0.0) + float(value)
        for key, value in record["executed_frames"].items():
            executed[key] = executed.get(key, 0) + int(value)
    if streams == 0:
        return None

    front, dense = flops.get("front_end", 0.0), flops.get("dense_layers", 0.0)
    return {
        "streams": streams,
        "frames": frames,
        "encoder_fraction": fraction(front + flops.get("layers", 0.0), front + dense),
        "encoder_fraction_kv_skipped": fraction(front + flops.get("layers_kv_skipped", 0.0), front + dense),
        "layers_fraction": fraction(flops.get("layers", 0.0), dense),
        "layers_fraction_kv_skipped": fraction(flops.get("layers_kv_skipped", 0.0), dense),
        "executed_fraction": {name: fraction(count, frames) for name, count in executed.items()},
        "flops": flops,
        "accounting": ACCOUNTING,
    }
