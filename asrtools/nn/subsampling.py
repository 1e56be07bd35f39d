"""Causal convolutional subsampling front end for streaming encoders.

`CausalConv2dSubsampling` reduces the frame rate by `factor` (a power of two, 4 by default:
10 ms fbank frames -> 40 ms) with `log2(factor)` `CausalConv2d` layers of stride 2 in time
and frequency, each followed by ReLU, and a linear projection of (channels x frequencies)
to the output size. Output length is exactly `T' = T // factor`: output frame `i` depends
only on input frames `<= factor * i + factor - 1`, so trailing `T % factor` frames are
dropped, padding never reaches a valid output, and chunked streaming equals offline.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.nn.causal import CausalConv2d


class CausalConv2dSubsampling(nn.Module):
    """Causal Conv2d subsampling: (B, T, F) -> (B, T // factor, output_dim).

    Args:
      input_dim: F, input feature size (e.g. 80 mel bins).
      output_dim: C, output feature size.
      channels: convolution channels of every layer.
      factor: time (and frequency) reduction, a power of two >= 2.
      kernel_size: convolution kernel in time and frequency (>= 2).
      dropout: dropout after the linear projection.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        channels: int = 64,
        factor: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if factor < 2 or factor & (factor - 1):
            raise ConfigError(f"subsampling factor {factor} must be a power of two >= 2")
        if kernel_size < 2:
            raise ConfigError(f"subsampling kernel_size {kernel_size} must be >= 2")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.factor = factor
        num_layers = factor.bit_length() - 1
        self.convs = nn.ModuleList()
        num_freqs, in_channels = input_dim, 1
        self._input_freqs: List[int] = []
        for _ in range(num_layers):
            conv = CausalConv2d(in_channels, channels, kernel_size, stride=2)
            self.convs.append(conv)
            self._input_freqs.append(num_freqs)
            num_freqs, in_channels = conv.output_freqs(num_freqs), channels
        if num_freqs < 1:
            raise ConfigError(f"subsampling: input_dim {input_dim} is too small for factor {factor}")
        self.out = nn.Linear(channels * num_freqs, output_dim)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) int64 output frames for (B,) input frames: `lengths // factor`."""
        return torch.div(lengths, self.factor, rounding_mode="floor")

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Subsample whole utterances.

        Args:
          x: (B, T, F) input features.
          x_lens: (B,) int64 valid frames.

        Returns:
          y: (B, T // factor, C) output; y_lens: (B,) int64 `x_lens // factor`.
        """
        hidden = x.unsqueeze(1)
        for conv in self.convs:
            hidden = torch.relu(conv(hidden))
        return self._project(hidden), self.output_lengths(x_lens)

    def init_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """One (B, C_in, Tk, F_in) cache per convolution layer, zero."""
        return [
            conv.init_cache(batch_size, num_freqs, device, dtype)
            for conv, num_freqs in zip(self.convs, self._input_freqs)
        ]

    def streaming_forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, states: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """Subsample the next chunk of each stream.

        Chunks of any length work (frames that do not complete an output frame wait in the
        caches); with chunk lengths that are multiples of `factor` every chunk gives exactly
        `Tc // factor` frames.

        Args:
          x: (B, Tc, F) next input frames.
          x_lens: (B,) int64 valid frames of this chunk (< Tc only at a stream's end).
          states: from `init_states` or the previous call.

        Returns:
          y: (B, Tc', C) output frames; y_lens: (B,) int64 valid output frames;
          states: the new caches.
        """
        pending = self._pending_frames(states)
        hidden = x.unsqueeze(1)
        new_states = []
        for conv, cache in zip(self.convs, states):
            hidden, cache = conv.streaming_forward(hidden, cache)
            hidden = torch.relu(hidden)
            new_states.append(cache)
        y_lens = self.output_lengths(x_lens + pending)
        return self._project(hidden), y_lens, new_states

    def _pending_frames(self, states: List[torch.Tensor]) -> int:
        """Input frames received but not yet covered by an output frame."""
        pending, scale = 0, 1
        for conv, cache in zip(self.convs, states):
            pending += (cache.size(2) - conv.left_context) * scale
            scale *= conv.stride[0]
        return pending

    def _project(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C, T', F') -> (B, T', output_dim)."""
        batch, channels, frames, freqs = hidden.shape
        flat = hidden.permute(0, 2, 1, 3).reshape(batch, frames, channels * freqs)
        return self.dropout(self.out(flat))
