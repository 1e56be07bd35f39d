"""Normalisation of padded (B, T, C) sequences: batch norm over the valid frames only,
`SequenceNorm`, a layer-or-batch norm chosen by name in an encoder config, `OnlineCmn`,
causal per-utterance mean normalisation of the input features, and `build_feature_norm`,
the front ends' optional feature normalisation chosen by name (`feature_norm: online_cmn`).

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

from typing import List, Optional, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError

#: The normalisations `SequenceNorm` offers.
NORMS = ("layer", "batch")
#: The feature normalisations `build_feature_norm` offers.
FEATURE_NORMS = ("none", "online_cmn")


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
        x = x.float()  # statistics in float32 also under mixed precision (autocast)
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


class OnlineCmn(nn.Module):
    """Online (causal) cepstral mean normalisation of (B, T, F) features.

    Frame `t` of each utterance minus the mean of its frames `0..t`, with `prior_frames`
    frames of the global mean counted in, as Kaldi's online CMVN does with its global
    statistics: `y_t = x_t - (P * g + sum_{s <= t} x_s) / (P + t + 1)`. It removes the
    utterance's gain and channel (a constant offset of log-mel features), which batch
    normalisation, one affine map for all utterances, cannot. Causal, so streaming with
    `init_state` / `streaming_forward` gives exactly the whole-utterance output.

    The global mean `g` is estimated during training like batch norm's running mean (over
    valid frames; the first training batch sets it, then `momentum`), and is fixed in
    evaluation. Not torchaudio's `SlidingWindowCmn`: that looks ahead at an utterance's
    start (it is not causal) and loops over frames in Python.

    Args:
      num_features: F.
      prior_frames: P, how many frames the global mean weighs (> 0).
      momentum: update factor of the global mean.
    """

    num_states = 2

    def __init__(self, num_features: int, prior_frames: float = 20.0, momentum: float = 0.01) -> None:
        super().__init__()
        if prior_frames <= 0:
            raise ConfigError(f"online CMN prior_frames must be > 0, got {prior_frames}")
        self.prior_frames = float(prior_frames)
        self.momentum = momentum
        self.register_buffer("global_mean", torch.zeros(num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """Normalise whole utterances.

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames (only they update the global mean in training).

        Returns:
          (B, T, F); a valid frame's output depends on no later frame.
        """
        if self.training:
            self._track_global_mean(x, x_lens)
        out, _ = self.streaming_forward(x, x_lens, self.init_state(x.size(0), x.device, x.dtype))
        return out

    def init_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """[sum (B, F), count (B, 1)]: the prior's `P * g` and `P` frames."""
        total = (self.prior_frames * self.global_mean).expand(batch_size, -1).to(device=device, dtype=dtype)
        count = torch.full((batch_size, 1), self.prior_frames, device=total.device, dtype=dtype)
        return [total.clone(), count]

    def streaming_forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Normalise the next chunk.

        Args:
          x: (B, Tc, F) next frames.
          x_lens: (B,) int64 valid frames of the chunk (only they enter the state).
          state: from `init_state` or the previous call.

        Returns:
          y: (B, Tc, F); the new state.
        """
        total, count = state
        frames = torch.arange(1, x.size(1) + 1, device=x.device, dtype=x.dtype)
        running_sum = total[:, None, :] + torch.cumsum(x, dim=1)
        running_count = count[:, :, None] + frames[None, :, None]
        out = x - running_sum / running_count
        valid = (frames[None, :] <= x_lens[:, None].to(x.dtype)).to(x.dtype)
        new_total = total + (x * valid[:, :, None]).sum(dim=1)
        return out, [new_total, count + valid.sum(dim=1, keepdim=True)]

    @torch.no_grad()
    def _track_global_mean(self, x: torch.Tensor, x_lens: torch.Tensor) -> None:
        valid = torch.arange(x.size(1), device=x.device)[None, :] < x_lens[:, None]
        frames = x[valid]
        if frames.size(0) == 0:
            return
        mean = frames.mean(dim=0)
        if int(self.num_batches_tracked) == 0:
            self.global_mean.copy_(mean)
        else:
            self.global_mean.lerp_(mean, self.momentum)
        self.num_batches_tracked += 1


class NoFeatureNorm(nn.Module):
    """`feature_norm: none`: the identity, with `OnlineCmn`'s interface and no state."""

    num_states = 0

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        return x

    def init_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        return []

    def streaming_forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return x, state


def build_feature_norm(num_features: int, kind: str = "none") -> nn.Module:
    """The input-feature normalisation of an encoder front end, by name: "none"
    (`NoFeatureNorm`) or "online_cmn" (`OnlineCmn`). Both have `forward(x, x_lens)`,
    `init_state(batch_size, device, dtype)`, `streaming_forward(x, x_lens, state)` and
    `num_states`, the length of the state list a front end puts first in its own."""
    if kind not in FEATURE_NORMS:
        raise ConfigError(f"feature_norm {kind!r} is not one of {', '.join(FEATURE_NORMS)}")
    return OnlineCmn(num_features) if kind == "online_cmn" else NoFeatureNorm()
