"""Causal frame-rate reduction for streaming encoders.

- `CausalConv2dStack`: a stack of `CausalConv2d` + ReLU layers over (time x frequency) with
  per-layer channels, kernels and strides; (B, T, F) -> (B, T // prod(time strides), C*F').
  Used as the ConvRNN-T local CNN and inside the subsampling front end.
- `CausalConv2dSubsampling`: the usual "Conv2d subsampling" (factor 4 by default: 10 ms ->
  40 ms) as `log2(factor)` stride-2 layers of a `CausalConv2dStack` + a linear projection,
  optionally after online mean normalisation of its input (`feature_norm`).
- `FrameStacker`: concatenates `factor` consecutive frames (B, T, C) -> (B, T // factor,
  factor*C), streamable.

Output length is exactly `T' = T // factor` everywhere: output frame `i` depends only on
input frames `<= factor * i + factor - 1`, so the trailing `T % factor` frames are dropped,
padding never reaches a valid output, and chunked streaming equals offline processing.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.nn.causal import CausalConv2d
from asrtools.nn.norm import build_feature_norm


class CausalConv2dStack(nn.Module):
    """Stack of causal 2-D convolutions, each followed by ReLU.

    Args:
      input_dim: F, input frequency bins.
      channels: output channels of each layer (its length is the number of layers).
      kernel_sizes: (time = frequency) kernel of each layer.
      time_strides: time stride of each layer (<= its kernel).
      freq_strides: frequency stride of each layer.
    """

    def __init__(
        self,
        input_dim: int,
        channels: Sequence[int],
        kernel_sizes: Sequence[int],
        time_strides: Sequence[int],
        freq_strides: Sequence[int],
    ) -> None:
        super().__init__()
        num_layers = len(channels)
        if num_layers == 0 or not (
            len(kernel_sizes) == len(time_strides) == len(freq_strides) == num_layers
        ):
            raise ConfigError(
                f"conv stack: channels, kernel_sizes, time_strides and freq_strides need one "
                f"entry per layer (got {len(channels)}, {len(kernel_sizes)}, "
                f"{len(time_strides)}, {len(freq_strides)})"
            )
        self.convs = nn.ModuleList()
        self.input_freqs: List[int] = []
        num_freqs, in_channels = input_dim, 1
        for out_channels, kernel, s_t, s_f in zip(channels, kernel_sizes, time_strides, freq_strides):
            conv = CausalConv2d(in_channels, out_channels, kernel, stride=(s_t, s_f))
            self.convs.append(conv)
            self.input_freqs.append(num_freqs)
            num_freqs, in_channels = conv.output_freqs(num_freqs), out_channels
        if num_freqs < 1:
            raise ConfigError(f"conv stack: input_dim {input_dim} is too small for its frequency strides")
        self.factor = math.prod(time_strides)
        self.output_freqs = num_freqs
        self.output_dim = in_channels * num_freqs

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) int64 output frames for (B,) input frames: `lengths // factor`."""
        return torch.div(lengths, self.factor, rounding_mode="floor")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences.

        Args:
          x: (B, T, F) input features.

        Returns:
          (B, T // factor, C*F') output, channels-major flattening of (C, F').
        """
        hidden = x.unsqueeze(1)
        for conv in self.convs:
            hidden = torch.relu(conv(hidden))
        return self._flatten(hidden)

    def init_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """One zero cache (B, C_in, Tk, F_in) per layer."""
        return [
            conv.init_cache(batch_size, num_freqs, device, dtype)
            for conv, num_freqs in zip(self.convs, self.input_freqs)
        ]

    def streaming_forward(
        self, x: torch.Tensor, states: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The next chunk (any length; incomplete stride groups wait in the caches).

        Args:
          x: (B, Tc, F) next input frames.
          states: from `init_states` or the previous call.

        Returns:
          y: (B, Tc', C*F') output frames completed by this chunk; states: new caches.
        """
        hidden = x.unsqueeze(1)
        new_states = []
        for conv, cache in zip(self.convs, states):
            hidden, cache = conv.streaming_forward(hidden, cache)
            hidden = torch.relu(hidden)
            new_states.append(cache)
        return self._flatten(hidden), new_states

    def pending_frames(self, states: List[torch.Tensor]) -> int:
        """Input frames received but not yet covered by an output frame (< factor)."""
        pending, scale = 0, 1
        for conv, cache in zip(self.convs, states):
            pending += (cache.size(2) - conv.left_context) * scale
            scale *= conv.stride[0]
        return pending

    @staticmethod
    def _flatten(hidden: torch.Tensor) -> torch.Tensor:
        """(B, C, T', F') -> (B, T', C*F')."""
        batch, channels, frames, freqs = hidden.shape
        return hidden.permute(0, 2, 1, 3).reshape(batch, frames, channels * freqs)


class CausalConv2dSubsampling(nn.Module):
    """Causal Conv2d subsampling: (B, T, F) -> (B, T // factor, output_dim).

    Args:
      input_dim: F, input feature size (e.g. 80 mel bins).
      output_dim: C, output feature size.
      channels: convolution channels of every layer.
      factor: time (and frequency) reduction, a power of two >= 2.
      kernel_size: convolution kernel in time and frequency (>= 2).
      dropout: dropout after the linear projection.
      feature_norm: "none", or "online_cmn" to subtract each utterance's running mean from
        its features first (`asrtools.nn.norm.build_feature_norm`; its state leads the streaming state).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        channels: int = 64,
        factor: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.0,
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        if factor < 2 or factor & (factor - 1):
            raise ConfigError(f"subsampling factor {factor} must be a power of two >= 2")
        if kernel_size < 2:
            raise ConfigError(f"subsampling kernel_size {kernel_size} must be >= 2")
        self.feature_norm = build_feature_norm(input_dim, feature_norm)
        num_layers = factor.bit_length() - 1
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.factor = factor
        self.convs = CausalConv2dStack(
            input_dim, [channels] * num_layers, [kernel_size] * num_layers, [2] * num_layers, [2] * num_layers
        )
        self.out = nn.Linear(self.convs.output_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) int64 output frames for (B,) input frames: `lengths // factor`."""
        return self.convs.output_lengths(lengths)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Subsample whole utterances.

        Args:
          x: (B, T, F) input features.
          x_lens: (B,) int64 valid frames.

        Returns:
          y: (B, T // factor, C) output; y_lens: (B,) int64 `x_lens // factor`.
        """
        x = self.feature_norm(x, x_lens)
        return self.dropout(self.out(self.convs(x))), self.output_lengths(x_lens)

    def init_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """The feature norm's state (if any), then one zero (B, C_in, Tk, F_in) cache per
        convolution layer."""
        return self.feature_norm.init_state(batch_size, device, dtype) + self.convs.init_states(
            batch_size, device, dtype
        )

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
        num_norm = self.feature_norm.num_states
        x, norm_state = self.feature_norm.streaming_forward(x, x_lens, states[:num_norm])
        conv_states = states[num_norm:]
        y_lens = self.output_lengths(x_lens + self.convs.pending_frames(conv_states))
        hidden, conv_states = self.convs.streaming_forward(x, conv_states)
        return self.dropout(self.out(hidden)), y_lens, norm_state + conv_states


class FrameStacker(nn.Module):
    """Concatenate `factor` consecutive frames: (B, T, C) -> (B, T // factor, factor*C).

    Output frame `i` is `[x_{f*i}, ..., x_{f*i+f-1}]`; the trailing `T % factor` frames
    are dropped offline and wait in the cache when streaming.

    Args:
      factor: frames per output frame.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"frame stacking factor {factor} must be >= 1")
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stack whole sequences: (B, T, C) -> (B, T // factor, factor*C)."""
        batch, frames, dim = x.shape
        used = frames - frames % self.factor
        return x[:, :used].reshape(batch, used // self.factor, self.factor * dim)

    def init_cache(
        self,
        batch_size: int,
        dim: int,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The empty cache (B, 0, C)."""
        return torch.zeros(batch_size, 0, dim, device=device, dtype=dtype)

    def streaming_forward(
        self, x: torch.Tensor, cache: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stack the next chunk.

        Args:
          x: (B, Tc, C) next frames.
          cache: (B, Tp, C) frames not yet stacked (Tp < factor).

        Returns:
          y: (B, (Tp + Tc) // factor, factor*C); cache: (B, (Tp + Tc) % factor, C).
        """
        buffer = torch.cat([cache, x], dim=1)
        used = buffer.size(1) - buffer.size(1) % self.factor
        return self.forward(buffer), buffer[:, used:]
