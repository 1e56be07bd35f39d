"""Chunked streaming Conformer encoder (`encoder: conformer`).

    x (B, T, F) -> causal Conv2d subsampling (T // 4) -> LN -> N x conformer layer -> (B, T // 4, D)

Conformer layer (Gulati et al. 2020, macaron style, pre-norm):
    x = x + 1/2 FFN(x);  x = x + MHSA(LN(x));  x = x + Conv(x);  x = x + 1/2 FFN(x);  x = LN(x)
with
- MHSA over chunks: a frame sees its whole chunk of `chunk_size` frames (the look-ahead)
  and `left_context` frames before the chunk (`asrtools.nn.attention`); positions are a
  learned per-head relative-distance bias *(choice: streaming-friendly, no absolute index)*;
- the convolution module LN -> pointwise (2D) -> GLU -> causal depthwise conv
  (`asrtools.nn.causal.CausalDepthwiseConv1d`) -> norm -> SiLU -> pointwise.

`norm` picks the normalisation after the subsampling and inside the convolution modules
(`asrtools.nn.norm.SequenceNorm`): `layer` (per frame) or `batch` (`MaskedBatchNorm`:
statistics over the valid frames of the batch in training, fixed running statistics at
inference, so streaming stays exact). On the synthetic corpus `batch` trains faster: per-frame layer norm keeps the
component shared by all frames of the raw log-mel input, which dominates at initialisation.

Streaming: `streaming_forward` takes chunks of a multiple of `chunk_size * 4` input frames
(`chunk_frames_multiple`); only a stream's last chunk may be shorter. State: subsampling
caches, the number of subsampled frames seen per stream (B,) int64, then per layer the
keys and values of the last `left_context` frames (B, L, D) and the depthwise-conv cache
(B, D, k - 1). Streaming output equals `forward` (which applies the same chunk mask).
`chunk_size: 0` gives full-context attention (offline only).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.models.encoder import Encoder, State, register_encoder
from asrtools.nn.attention import RelPositionSelfAttention, chunk_attention_mask
from asrtools.nn.causal import CausalDepthwiseConv1d, lengths_to_mask
from asrtools.nn.norm import SequenceNorm
from asrtools.nn.subsampling import CausalConv2dSubsampling


def chunked_front_end(
    encoder: Encoder, name: str, chunk: torch.Tensor, chunk_lens: torch.Tensor, states: State
) -> Tuple[torch.Tensor, torch.Tensor, State, torch.Tensor, State]:
    """The first half of a chunked-attention encoder's `streaming_forward` (Conformer, Transformer).

    Splits `states` (subsampling caches, frames seen, per-layer caches), checks that every stream
    is at a chunk boundary, runs the streaming subsampling and the input norm.

    Args:
      encoder: has `subsampling`, `input_norm`, `chunk_size`, `chunk_frames_multiple` and
        `_num_subsampling_states`.
      name: the encoder's name, for the error message.
      chunk: (B, Tc, F) next input frames; chunk_lens: (B,) int64 valid frames.
      states: from `init_states` or the previous call.

    Returns:
      hidden (B, Tc', D) normalised; out_lens (B,) int64; the new subsampling states; seen (B,)
      int64 frames before this call; the per-layer states (unchanged).
    """
    num_sub = encoder._num_subsampling_states
    sub_states, seen, layer_states = states[:num_sub], states[num_sub], states[num_sub + 1 :]
    if bool((seen % encoder.chunk_size != 0).any()):
        raise ConfigError(
            f"encoder {name}: streaming chunks must be multiples of {encoder.chunk_frames_multiple} "
            "input frames (only the last chunk may be shorter)"
        )
    hidden, out_lens, sub_states = encoder.subsampling.streaming_forward(chunk, chunk_lens, sub_states)
    out_lens = out_lens.clamp(max=hidden.size(1))
    hidden = encoder.input_norm(hidden, lengths_to_mask(out_lens, hidden.size(1)))
    return hidden, out_lens, sub_states, seen, layer_states


class FeedForward(nn.Module):
    """Pre-norm feed-forward module: LN -> Linear(D, ffn) -> SiLU -> Linear(ffn, D).

    Args:
      dim: D.
      hidden_dim: ffn size.
      dropout: dropout after the activation and on the output.
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.net(x)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The module's input norm alone: (..., D) -> (..., D)."""
        return self.net[0](x)

    def transform(self, normed: torch.Tensor) -> torch.Tensor:
        """The module after its input norm: `forward(x) == transform(normalise(x))`, (..., D) -> (..., D)."""
        return self.net[1:](normed)


class ConformerConvModule(nn.Module):
    """LN -> pointwise -> GLU -> causal depthwise conv -> norm -> SiLU -> pointwise.

    Args:
      dim: D.
      kernel_size: depthwise kernel (cache of kernel_size - 1 frames).
      dropout: output dropout.
      norm: "layer" or "batch", the normalisation after the depthwise conv.
    """

    def __init__(self, dim: int, kernel_size: int, dropout: float, norm: str = "layer") -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = CausalDepthwiseConv1d(dim, kernel_size)
        self.norm_mid = SequenceNorm(dim, norm)
        self.pointwise_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, cache: Optional[torch.Tensor] = None, valid: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Whole sequences (cache None) or the next chunk.

        Args:
          x: (B, T, D) input.
          cache: (B, D, kernel_size - 1) depthwise cache, or None for whole sequences.
          valid: (B, T) bool valid frames (for batch-norm statistics in training), or None.

        Returns:
          y: (B, T, D); cache: the new cache (None when none was given).
        """
        gated = nn.functional.glu(self.pointwise_in(self.norm_in(x)), dim=-1).transpose(1, 2)
        if cache is None:
            conv = self.depthwise(gated)
        else:
            conv, cache = self.depthwise.streaming_forward(gated, cache)
        hidden = nn.functional.silu(self.norm_mid(conv.transpose(1, 2), valid))
        return self.dropout(self.pointwise_out(hidden)), cache


class ConformerLayer(nn.Module):
    """One macaron conformer layer with chunk-masked attention (see the module docstring).

    Args:
      dim: D.
      num_heads: attention heads.
      ffn_dim: feed-forward hidden size.
      conv_kernel_size: causal depthwise kernel.
      left_context: frames of keys/values kept in the streaming cache.
      max_relative_distance: clipping of the relative position bias.
      dropout: dropout.
      norm: "layer" or "batch", the convolution module's normalisation.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        conv_kernel_size: int,
        left_context: int,
        max_relative_distance: int,
        dropout: float,
        norm: str = "layer",
    ) -> None:
        super().__init__()
        self.left_context = left_context
        self.ffn_first = FeedForward(dim, ffn_dim, dropout)
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = RelPositionSelfAttention(dim, num_heads, max_relative_distance, dropout)
        self.conv = ConformerConvModule(dim, conv_kernel_size, dropout, norm)
        self.ffn_second = FeedForward(dim, ffn_dim, dropout)
        self.norm_out = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        state: Optional[List[torch.Tensor]] = None,
        valid: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
        """Whole sequences (state None) or the next chunk.

        Args:
          x: (B, T, D) input.
          mask: (B or 1, T, Tk) bool attention mask, Tk = cached frames + T.
          query_pos: (T,) int64 positions of the frames of `x`.
          key_pos: (Tk,) int64 positions of cached + current frames.
          state: [keys (B, L, D), values (B, L, D), conv cache (B, D, k-1)] or None.
          valid: (B, T) bool valid frames (batch-norm statistics in training), or None.

        Returns:
          y: (B, T, D); state: the new state (None when none was given).
        """
        x = x + 0.5 * self.ffn_first(x)
        kv_cache, conv_cache = (None, None) if state is None else (state[:2], state[2])
        attended, keys_values = self.attention(self.norm_attention(x), mask, query_pos, key_pos, kv_cache)
        x = x + self.dropout(attended)
        conv, conv_cache = self.conv(x, conv_cache, valid)
        x = x + conv
        x = self.norm_out(x + 0.5 * self.ffn_second(x))
        if state is None:
            return x, None
        keep = keys_values[0].size(1) - self.left_context
        return x, [keys_values[0][:, keep:], keys_values[1][:, keep:], conv_cache]


@register_encoder("conformer")
class ConformerEncoder(Encoder):
    """Causal subsampling + chunked-attention conformer layers.

    Args:
      input_dim: F, input feature size.
      dim: D, model size (the output size).
      num_layers: conformer layers.
      num_heads: attention heads (D divisible by it).
      ffn_dim: feed-forward hidden size.
      conv_kernel_size: causal depthwise kernel of the convolution modules.
      chunk_size: attention chunk in output (subsampled) frames; 0 = full context (offline).
      left_context: output frames before a chunk that its frames may attend to.
      max_relative_distance: clipping of the relative position bias (frames).
      subsampling_channels: conv channels of the subsampling front end.
      subsampling_factor: frame-rate reduction (power of two).
      dropout: dropout everywhere.
      norm: "layer" or "batch": the normalisation after the subsampling and inside the
        convolution modules (see the module docstring).
      feature_norm: normalisation of the input features, "none" or "online_cmn" (each
        utterance's causal running mean subtracted; see `asrtools.nn.norm.build_feature_norm`).
    """

    def __init__(
        self,
        input_dim: int,
        dim: int = 144,
        num_layers: int = 8,
        num_heads: int = 4,
        ffn_dim: int = 576,
        conv_kernel_size: int = 15,
        chunk_size: int = 8,
        left_context: int = 32,
        max_relative_distance: int = 64,
        subsampling_channels: int = 64,
        subsampling_factor: int = 4,
        dropout: float = 0.1,
        norm: str = "layer",
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        if num_layers < 1 or dim < 1 or ffn_dim < 1:
            raise ConfigError("encoder conformer: num_layers, dim and ffn_dim must be >= 1")
        if chunk_size < 0 or left_context < 0:
            raise ConfigError(
                f"encoder conformer: chunk_size {chunk_size} and left_context {left_context} must be >= 0"
            )
        self.subsampling = CausalConv2dSubsampling(
            input_dim, dim, channels=subsampling_channels, factor=subsampling_factor, dropout=dropout,
            feature_norm=feature_norm,
        )
        # Raw log-mel inputs are far from zero mean / unit scale.
        self.input_norm = SequenceNorm(dim, norm)
        self.layers = nn.ModuleList(
            ConformerLayer(
                dim, num_heads, ffn_dim, conv_kernel_size, left_context, max_relative_distance, dropout, norm
            )
            for _ in range(num_layers)
        )
        self.dim = dim
        self.chunk_size = chunk_size
        self.left_context = left_context
        self.output_dim = dim
        self.subsampling_factor = subsampling_factor
        self.chunk_frames_multiple = max(chunk_size, 1) * subsampling_factor
        self._num_subsampling_states = len(self.subsampling.init_states(1))

    @property
    def is_causal(self) -> bool:
        """Chunked attention streams exactly; full-context attention does not stream."""
        return self.chunk_size > 0

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """(B,) int64 encoder output frames for (B,) int64 input frames."""
        return self.subsampling.output_lengths(x_lens)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode whole utterances with the chunk attention mask.

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.

        Returns:
          out: (B, T // subsampling_factor, D); out_lens: (B,) int64.
        """
        hidden, out_lens = self.subsampling(x, x_lens)
        valid = lengths_to_mask(out_lens, hidden.size(1))
        hidden = self.input_norm(hidden, valid)
        pos = torch.arange(hidden.size(1), device=x.device)
        mask = chunk_attention_mask(pos, pos, self.chunk_size, self.left_context)[None] & valid[:, None, :]
        for layer in self.layers:
            hidden, _ = layer(hidden, mask, pos, pos, valid=valid)
        return hidden, out_lens

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """Subsampling caches, frames seen (B,), then [keys, values, conv cache] per layer."""
        states = self.subsampling.init_states(batch_size, device)
        states.append(torch.zeros(batch_size, dtype=torch.int64, device=device))
        for layer in self.layers:
            states += [
                torch.zeros(batch_size, self.left_context, self.dim, device=device),
                torch.zeros(batch_size, self.left_context, self.dim, device=device),
                layer.conv.depthwise.init_cache(batch_size, device),
            ]
        return states

    def streaming_forward(
        self, chunk: torch.Tensor, chunk_lens: torch.Tensor, states: State
    ) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """Encode the next chunk of each stream (see `Encoder.streaming_forward`).

        Args:
          chunk: (B, Tc, F) next input frames; Tc a multiple of `chunk_frames_multiple`
            except for the last chunk of the streams.
          chunk_lens: (B,) int64 valid frames of the chunk.
          states: from `init_states` or the previous call.

        Returns:
          out: (B, Tc', D); out_lens: (B,) int64; the new states.
        """
        if not self.is_causal:
            raise ConfigError("encoder conformer: chunk_size 0 (full context) cannot stream")
        hidden, out_lens, sub_states, seen, layer_states = chunked_front_end(self, "conformer", chunk, chunk_lens,
                                                                              states)
        num_frames = hidden.size(1)
        if num_frames == 0:
            return hidden, out_lens, sub_states + [seen] + layer_states
        # A short last chunk is padded to a whole chunk; the padding is masked as keys.
        hidden = nn.functional.pad(hidden, (0, 0, 0, (-num_frames) % self.chunk_size))
        query_pos = torch.arange(hidden.size(1), device=hidden.device)
        key_pos = torch.arange(-self.left_context, hidden.size(1), device=hidden.device)
        mask = chunk_attention_mask(query_pos, key_pos, self.chunk_size, self.left_context)[None]
        valid_keys = (key_pos[None, :] + seen[:, None] >= 0) & (key_pos[None, :] < out_lens[:, None])
        mask = mask & valid_keys[:, None, :]
        valid = lengths_to_mask(out_lens, hidden.size(1))
        new_layer_states: List[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            hidden, layer_state = layer(hidden, mask, query_pos, key_pos, layer_states[3 * i : 3 * i + 3], valid)
            new_layer_states += layer_state
        return hidden[:, :num_frames], out_lens, sub_states + [seen + num_frames] + new_layer_states
