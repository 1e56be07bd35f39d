"""Unidirectional LSTM encoder: the LSTM RNN-T baseline of ConvRNN-T.

Causal conv2d subsampling (factor 4 by default) followed by a stack of unidirectional LSTM
layers, optionally with LSTM output projections (LSTMP, `proj_dim`). Every part is causal,
so `streaming_forward` over consecutive chunks gives the whole-utterance output.

Streaming state layout: the subsampling caches (one per conv layer), then the LSTM
`h` (L, B, H_out) and `c` (L, B, H).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrtools.errors import ConfigError
from asrtools.models.encoder import Encoder, State, register_encoder
from asrtools.nn.subsampling import CausalConv2dSubsampling


@register_encoder("lstm")
class LstmEncoder(Encoder):
    """Causal subsampling + LayerNorm + unidirectional LSTM stack + LayerNorm.

    Args:
      input_dim: F, input feature size.
      hidden_dim: H, LSTM cell size.
      num_layers: L, LSTM layers.
      proj_dim: LSTM output projection size (0 = none); when set, the output is proj_dim.
      subsampling_dim: output size of the subsampling front end (LSTM input size).
      subsampling_channels: conv channels of the subsampling front end.
      subsampling_factor: frame-rate reduction (power of two).
      dropout: dropout between LSTM layers and on the subsampling/encoder outputs.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 512,
        num_layers: int = 4,
        proj_dim: int = 0,
        subsampling_dim: int = 256,
        subsampling_channels: int = 64,
        subsampling_factor: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_layers < 1 or hidden_dim < 1 or proj_dim < 0:
            raise ConfigError(f"encoder lstm: need num_layers >= 1, hidden_dim >= 1, proj_dim >= 0 "
                              f"(got {num_layers}, {hidden_dim}, {proj_dim})")
        if proj_dim >= hidden_dim:
            raise ConfigError(f"encoder lstm: proj_dim {proj_dim} must be smaller than hidden_dim {hidden_dim}")
        self.subsampling = CausalConv2dSubsampling(
            input_dim, subsampling_dim, channels=subsampling_channels, factor=subsampling_factor, dropout=dropout
        )
        # Per-frame normalisation of the front end's output: raw log-mel features are far
        # from zero-mean/unit-scale, which saturates LSTM gates and stalls early training.
        self.norm = nn.LayerNorm(subsampling_dim)
        self.lstm = nn.LSTM(
            input_size=subsampling_dim,
            hidden_size=hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            proj_size=proj_dim,
        )
        # LSTM outputs are tanh-bounded and small at initialisation; normalising them gives
        # the joiner and the simple projection unit-scale inputs, which speeds up training
        # several-fold (the logits otherwise need hundreds of steps to grow).
        self.output_norm = nn.LayerNorm(proj_dim or hidden_dim)
        self.output_dropout = nn.Dropout(dropout)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.output_dim = proj_dim or hidden_dim
        self.subsampling_factor = subsampling_factor

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """(B,) int64 encoder output frames for (B,) int64 input frames."""
        return self.subsampling.output_lengths(x_lens)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode whole utterances.

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.

        Returns:
          out: (B, T', C) with T' = T // subsampling_factor; out_lens: (B,) int64.
        """
        hidden, out_lens = self.subsampling(x, x_lens)
        hidden = self.norm(hidden)
        # Unidirectional: padding after a sequence's end cannot reach its valid frames.
        out, _ = self.lstm(hidden)
        return self.output_dropout(self.output_norm(out)), out_lens

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """Subsampling caches + zero LSTM h (L, B, C) and c (L, B, H)."""
        h = torch.zeros(self.num_layers, batch_size, self.output_dim, device=device)
        c = torch.zeros(self.num_layers, batch_size, self.hidden_dim, device=device)
        return self.subsampling.init_states(batch_size, device) + [h, c]

    def streaming_forward(
        self, chunk: torch.Tensor, chunk_lens: torch.Tensor, states: State
    ) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """Encode the next chunk of each stream (see `Encoder.streaming_forward`).

        Args:
          chunk: (B, Tc, F) next input frames.
          chunk_lens: (B,) int64 valid frames of the chunk.
          states: from `init_states` or the previous call.

        Returns:
          out: (B, Tc', C); out_lens: (B,) int64; the new states. A stream whose chunk
          gives no valid output frame keeps its LSTM state unchanged.
        """
        sub_states, (h, c) = states[:-2], states[-2:]
        hidden, out_lens, sub_states = self.subsampling.streaming_forward(chunk, chunk_lens, sub_states)
        hidden = self.norm(hidden)
        out_lens = out_lens.clamp(max=hidden.size(1))
        if hidden.size(1) == 0:
            empty = hidden.new_zeros(hidden.size(0), 0, self.output_dim)
            return empty, out_lens, sub_states + [h, c]
        # Packing stops each stream's recurrence at its last valid frame, so its state is
        # the one to continue from; streams with no valid frame keep their old state.
        packed = pack_padded_sequence(hidden, out_lens.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, (new_h, new_c) = self.lstm(packed, (h, c))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=hidden.size(1))
        active = (out_lens > 0).view(1, -1, 1)
        new_h = torch.where(active, new_h, h)
        new_c = torch.where(active, new_c, c)
        return self.output_dropout(self.output_norm(out)), out_lens, sub_states + [new_h, new_c]
