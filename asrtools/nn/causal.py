"""Causal convolutional building blocks with streaming caches.

Every layer here is causal in time: an output frame depends only on input frames at or
before it (up to the end of its stride group), so padding at the end of an utterance never
reaches a valid output, and feeding the input chunk by chunk through `streaming_forward`
with the returned cache gives exactly the whole-sequence `forward` output.

- `CausalConv2d`: 2-D convolution over (time x frequency), left padding in time only,
  "same" padding in frequency, optional strides; output length `T // stride_t`.
- `CausalDepthwiseConv1d`: dilated depthwise 1-D convolution, cache of
  `(kernel_size - 1) * dilation` frames.
- `CausalSqueezeExcitation`: squeeze-and-excitation whose squeeze is the running mean from
  the first frame to the current one (or, for comparison, the whole-utterance mean).
- `GlobalConvBlock`: the ConvRNN-T global-CNN residual block built from the two above.
- `CausalLstm`: a unidirectional LSTM stack whose streaming state is (h, c).

Layouts follow `torch.nn.Conv*`: (B, C, T, F) for 2-D and (B, C, T) for 1-D layers.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrtools.errors import ConfigError

IntPair = Union[int, Tuple[int, int]]

SE_MODES = ("causal_cummean", "utterance_mean")


def _pair(value: IntPair) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Valid-frame mask.

    Args:
      lengths: (B,) int64 number of valid frames.
      max_len: T, the padded length.

    Returns:
      (B, T) bool, True at valid frames.
    """
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class CausalConv2d(nn.Module):
    """2-D convolution over (time x frequency), causal in time.

    Output frame `i` sees input frames `[i*s - (k - s), i*s + s - 1]` (k, s: time kernel and
    stride), i.e. the left padding is `k - s` frames, so a sequence of T frames gives exactly
    `T // s` output frames and the last input frame an output depends on is the last frame
    of its stride group. Frequency uses symmetric ("same") padding `(k_f - 1) // 2`.

    Args:
      in_channels: input channels.
      out_channels: output channels.
      kernel_size: (k_t, k_f) or one int for both; requires k_t >= s_t.
      stride: (s_t, s_f) or one int for both.
      bias: whether the convolution has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        k_t, k_f = self.kernel_size
        s_t, _ = self.stride
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ConfigError(f"CausalConv2d: kernel {kernel_size} and stride {stride} must be >= 1")
        if k_t < s_t:
            raise ConfigError(f"CausalConv2d: time kernel {k_t} is smaller than time stride {s_t}")
        self.left_context = k_t - s_t
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=(0, (k_f - 1) // 2),
            bias=bias,
        )

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def output_freqs(self, num_freqs: int) -> int:
        """F' for an input with `num_freqs` frequency bins."""
        k_f = self.kernel_size[1]
        return (num_freqs + 2 * ((k_f - 1) // 2) - k_f) // self.stride[1] + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-sequence convolution.

        Args:
          x: (B, C, T, F) input.

        Returns:
          (B, C', T // s_t, F') output.
        """
        padded = nn.functional.pad(x, (0, 0, self.left_context, 0))
        return self._conv_frames(padded)

    def init_cache(
        self,
        batch_size: int,
        num_freqs: int,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The cache before the first chunk: (B, C, left_context, F) zeros."""
        return torch.zeros(
            batch_size, self.in_channels, self.left_context, num_freqs, device=device, dtype=dtype
        )

    def streaming_forward(
        self, x: torch.Tensor, cache: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Convolve the next chunk.

        Chunks may have any length: input frames that do not yet complete a stride group
        stay in the cache until the next chunk.

        Args:
          x: (B, C, Tc, F) next input frames.
          cache: (B, C, Tk, F) from `init_cache` or the previous call
            (Tk >= left_context).

        Returns:
          y: (B, C', Tc', F') output frames completed by this chunk.
          cache: the new cache.
        """
        buffer = torch.cat([cache, x], dim=2)
        num_out = (buffer.size(2) - self.left_context) // self.stride[0]
        used = num_out * self.stride[0]
        y = self._conv_frames(buffer[:, :, : self.left_context + used])
        return y, buffer[:, :, used:]

    def _conv_frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Convolve left-padded frames; fewer frames than the kernel give zero frames."""
        if padded.size(2) < self.kernel_size[0]:
            num_freqs = self.output_freqs(padded.size(3))
            return padded.new_zeros(padded.size(0), self.out_channels, 0, num_freqs)
        return self.conv(padded)


class CausalDepthwiseConv1d(nn.Module):
    """Dilated depthwise 1-D convolution, causal in time (left padding only).

    Args:
      channels: C, input and output channels (one filter per channel).
      kernel_size: k.
      dilation: d; the cache holds `(k - 1) * d` frames.
      bias: whether the convolution has a bias.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        if kernel_size < 1 or dilation < 1:
            raise ConfigError(
                f"CausalDepthwiseConv1d: kernel {kernel_size} and dilation {dilation} must be >= 1"
            )
        self.cache_size = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, dilation=dilation, groups=channels, bias=bias
        )

    @property
    def channels(self) -> int:
        return self.conv.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-sequence convolution.

        Args:
          x: (B, C, T) input.

        Returns:
          (B, C, T) output.
        """
        return self.conv(nn.functional.pad(x, (self.cache_size, 0)))

    def init_cache(
        self,
        batch_size: int,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The cache before the first chunk: (B, C, (k - 1) * d) zeros."""
        return torch.zeros(batch_size, self.channels, self.cache_size, device=device, dtype=dtype)

    def streaming_forward(
        self, x: torch.Tensor, cache: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Convolve the next chunk.

        Args:
          x: (B, C, Tc) next input frames (any Tc >= 0).
          cache: (B, C, (k - 1) * d) the previous input frames.

        Returns:
          y: (B, C, Tc) output.
          cache: (B, C, (k - 1) * d) the new cache.
        """
        if x.size(2) == 0:
            return x, cache
        buffer = torch.cat([cache, x], dim=2)
        y = self.conv(buffer)
        return y, buffer[:, :, buffer.size(2) - self.cache_size :]


class CausalSqueezeExcitation(nn.Module):
    """Squeeze-and-excitation over channels with a causal squeeze.

    `y_t = x_t * sigmoid(W2 relu(W1 m_t))` where `m_t` is

    - `causal_cummean`: the mean of valid frames `x_1..x_t` (streamable; the state is the
      running sum and count of valid frames);
    - `utterance_mean`: the mean of all valid frames of the utterance (not causal; for
      comparison only, `streaming_forward` refuses it).

    Args:
      channels: C.
      bottleneck: hidden size of the excitation MLP.
      mode: `causal_cummean` or `utterance_mean`.
    """

    def __init__(self, channels: int, bottleneck: int, mode: str = "causal_cummean") -> None:
        super().__init__()
        if mode not in SE_MODES:
            raise ConfigError(f"se mode {mode!r} is unknown (known: {', '.join(SE_MODES)})")
        self.mode = mode
        self.channels = channels
        self.excite = nn.Sequential(
            nn.Conv1d(channels, bottleneck, 1), nn.ReLU(), nn.Conv1d(bottleneck, channels, 1)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Whole-sequence squeeze-and-excitation.

        Args:
          x: (B, C, T) input.
          lengths: (B,) int64 valid frames; padding never enters a mean.

        Returns:
          (B, C, T) output.
        """
        if self.mode == "utterance_mean":
            valid = lengths_to_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)
            total = (x * valid).sum(dim=2, keepdim=True)
            mean = total / valid.sum(dim=2, keepdim=True).clamp(min=1.0)
            return x * torch.sigmoid(self.excite(mean))
        y, _ = self.streaming_forward(x, lengths, self.init_state(x.size(0), x.device, x.dtype))
        return y

    def init_state(
        self,
        batch_size: int,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> List[torch.Tensor]:
        """[running sum (B, C), valid-frame count (B, 1)], both zero."""
        return [
            torch.zeros(batch_size, self.channels, device=device, dtype=dtype),
            torch.zeros(batch_size, 1, device=device, dtype=dtype),
        ]

    def streaming_forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Squeeze-and-excitation of the next chunk with the running mean.

        Args:
          x: (B, C, Tc) next input frames.
          lengths: (B,) int64 valid frames of this chunk.
          state: [running sum (B, C), count (B, 1)] from `init_state` or the previous call.

        Returns:
          y: (B, C, Tc) output.
          state: the updated [sum, count].
        """
        if self.mode != "causal_cummean":
            raise ConfigError(f"se mode {self.mode!r} is not streamable (use causal_cummean)")
        if x.size(2) == 0:
            return x, state
        total, count = state
        valid = lengths_to_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        running_total = total.unsqueeze(2) + torch.cumsum(x * valid, dim=2)
        running_count = count.unsqueeze(2) + torch.cumsum(valid, dim=2)
        mean = running_total / running_count.clamp(min=1.0)
        y = x * torch.sigmoid(self.excite(mean))
        return y, [running_total[:, :, -1], running_count[:, :, -1]]


class GlobalConvBlock(nn.Module):
    """ConvRNN-T global-CNN residual block.

    `y = x + SE(pw2(act(dwconv(act(pw1(LN(x)))))))`: layer norm over channels, pointwise
    conv, dilated causal depthwise conv, pointwise conv, causal squeeze-and-excitation,
    residual. Every part is causal, so it streams exactly (in `causal_cummean` mode).

    Args:
      channels: C, input/output channels.
      hidden_channels: channels between the two pointwise convolutions.
      kernel_size: depthwise kernel (3 in ConvRNN-T).
      dilation: depthwise dilation.
      se_bottleneck: hidden size of the SE excitation MLP.
      se_mode: `causal_cummean` or `utterance_mean`.
      dropout: dropout on the residual branch.
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        se_bottleneck: int = 32,
        se_mode: str = "causal_cummean",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.pointwise_in = nn.Conv1d(channels, hidden_channels, 1)
        self.depthwise = CausalDepthwiseConv1d(hidden_channels, kernel_size, dilation)
        self.pointwise_out = nn.Conv1d(hidden_channels, channels, 1)
        self.activation = nn.SiLU()
        self.se = CausalSqueezeExcitation(channels, se_bottleneck, se_mode)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Whole sequence.

        Args:
          x: (B, C, T) input.
          lengths: (B,) int64 valid frames.

        Returns:
          (B, C, T) output.
        """
        hidden = self.activation(self.depthwise(self._pointwise_in(x)))
        branch = self.se(self.pointwise_out(hidden), lengths)
        return x + self.dropout(branch)

    def init_state(
        self,
        batch_size: int,
        device: Optional[torch.device] = None,
        dtype: torch.dtype = torch.float32,
    ) -> List[torch.Tensor]:
        """[depthwise cache (B, H, (k-1)*d), SE sum (B, C), SE count (B, 1)]."""
        return [self.depthwise.init_cache(batch_size, device, dtype)] + self.se.init_state(
            batch_size, device, dtype
        )

    def streaming_forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The next chunk.

        Args:
          x: (B, C, Tc) next input frames.
          lengths: (B,) int64 valid frames of this chunk.
          state: from `init_state` or the previous call.

        Returns:
          y: (B, C, Tc) output; state: the new state.
        """
        if x.size(2) == 0:
            return x, state
        conv_cache, *se_state = state
        hidden, conv_cache = self.depthwise.streaming_forward(self._pointwise_in(x), conv_cache)
        branch, se_state = self.se.streaming_forward(
            self.pointwise_out(self.activation(hidden)), lengths, se_state
        )
        return x + self.dropout(branch), [conv_cache] + se_state

    def _pointwise_in(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.activation(self.pointwise_in(normed))


class CausalLstm(nn.Module):
    """Unidirectional LSTM stack (batch first) with explicit streaming state.

    Args:
      input_dim: input size.
      hidden_dim: H, cell size.
      num_layers: L.
      proj_dim: LSTM output projection (LSTMP) size, 0 for none; output size is
        `proj_dim or hidden_dim`.
      dropout: dropout between layers.
    """

    def __init__(
        self, input_dim: int, hidden_dim: int, num_layers: int, proj_dim: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_layers < 1 or hidden_dim < 1 or proj_dim < 0 or proj_dim >= hidden_dim:
            raise ConfigError(
                f"lstm: need num_layers >= 1, hidden_dim >= 1, 0 <= proj_dim < hidden_dim "
                f"(got {num_layers}, {hidden_dim}, {proj_dim})"
            )
        self.lstm = nn.LSTM(
            input_size=input_dim,
            hidden_size=hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            proj_size=proj_dim,
        )
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.output_dim = proj_dim or hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences (padding after a sequence's end cannot reach its valid frames).

        Args:
          x: (B, T, D) input.

        Returns:
          (B, T, C) output.
        """
        return self.lstm(x)[0]

    def init_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """[h (L, B, C), c (L, B, H)], zero."""
        return [
            torch.zeros(self.num_layers, batch_size, self.output_dim, device=device, dtype=dtype),
            torch.zeros(self.num_layers, batch_size, self.hidden_dim, device=device, dtype=dtype),
        ]

    def streaming_forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The next chunk.

        Args:
          x: (B, Tc, D) next input frames.
          lengths: (B,) int64 valid frames of this chunk.
          state: [h, c] from `init_state` or the previous call.

        Returns:
          y: (B, Tc, C) output; state: the new [h, c]. Each stream's state is taken at its
          last valid frame; a stream with no valid frame keeps its old state.
        """
        h, c = state
        if x.size(1) == 0:
            return x.new_zeros(x.size(0), 0, self.output_dim), [h, c]
        lengths = lengths.clamp(min=0, max=x.size(1))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, (new_h, new_c) = self.lstm(packed, (h, c))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        active = (lengths > 0).view(1, -1, 1)
        return out, [torch.where(active, new_h, h), torch.where(active, new_c, c)]
