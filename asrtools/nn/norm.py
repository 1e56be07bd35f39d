"""Normalisation of padded (B, T, C) sequences: batch norm over the valid frames only, and
`SequenceNorm`, a layer-or-batch norm chosen by name in an encoder config.

`torch.nn.BatchNorm1d` would count padding frames in its batch statistics, so a batch's
normalisation (and the running statistics used at inference) would depend on how much
padding the sampler produced. `MaskedBatchNorm` uses only the frames marked valid; at
inference it is a fixed per-channel affine map of each frame, so chunk-by-chunk streaming
gives exactly the whole-sequence output.

Why batch rather than layer normalisation: layer norm works per frame, so a component that
is the same in every frame of every utterance (large for raw log-mel input) passes through
untouched and dominates the frames at initialisation; batch norm removes each channel's
mean over the data.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from asrtools.errors import ConfigError

#: The normalisations `SequenceNorm` offers.
NORMS = ("layer", "batch")


class MaskedBatchNorm(nn.Module):
    """Per-channel batch normalisation of (B, T, C) sequences using their valid frames.

    Training: each channel is normalised with the mean and (biased) variance over the valid
    frames of the batch, and the running statistics move towards them by `momentum`
    (unbiased variance, as `torch.nn.BatchNorm1d`). Evaluation: the running statistics.

    Args:
      num_channels: C.
      momentum: running-statistics update factor.
      eps: added to the variance.
    """

    def __init__(self, num_channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalise `x`.

        Args:
          x: (B, T, C) frames.
          valid: (B, T) bool, True at frames that count for the batch statistics; None = all.
            Ignored in evaluation mode.

        Returns:
          (B, T, C); padding frames are transformed too (with the valid frames' statistics).
        """
        if self.training:
            mean, var = self._batch_statistics(x, valid)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def _batch_statistics(self, x: torch.Tensor, valid: Optional[torch.Tensor]):
        """Mean and biased variance (C,) over the valid frames; updates the running statistics."""
        frames = x.reshape(-1, x.size(-1)) if valid is None else x[valid]
        count = frames.size(0)
        if count == 0:
            return self.running_mean, self.running_var
        mean = frames.mean(dim=0)
        var = (frames - mean).pow(2).mean(dim=0)
        with torch.no_grad():
            unbiased = var * count / max(count - 1, 1)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        return mean, var


class SequenceNorm(nn.Module):
    """Layer norm (per frame) or `MaskedBatchNorm` of (B, T, C) frames, chosen by name.

    Args:
      num_channels: C.
      kind: "layer" or "batch".
    """

    def __init__(self, num_channels: int, kind: str) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ConfigError(f"norm {kind!r} is not one of {', '.join(NORMS)}")
        self.norm = nn.LayerNorm(num_channels) if kind == "layer" else MaskedBatchNorm(num_channels)
        self._register_load_state_dict_pre_hook(_nest_plain_norm_keys)

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C); `valid` (B, T) bool marks the frames batch norm counts."""
        if isinstance(self.norm, MaskedBatchNorm):
            return self.norm(x, valid)
        return self.norm(x)


def _nest_plain_norm_keys(state_dict, prefix, *args) -> None:
    """Load weights saved when this norm was a plain module (`<prefix>weight` rather than
    `<prefix>norm.weight`), e.g. the LSTM encoders' checkpoints from before `norm:` existed."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        if prefix + name in state_dict and prefix + "norm." + name not in state_dict:
            state_dict[prefix + "norm." + name] = state_dict.pop(prefix + name)
