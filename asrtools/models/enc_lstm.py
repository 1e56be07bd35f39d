"""Unidirectional LSTM encoder: the LSTM RNN-T baseline of ConvRNN-T.

Causal conv2d subsampling (factor 4 by default) followed by a stack of unidirectional LSTM
layers, optionally with LSTM output projections (LSTMP, `proj_dim`). Every part is causal,
so `streaming_forward` over consecutive chunks gives the whole-utterance output.

Streaming state layout: the subsampling caches (one per conv layer), then the LSTM
`h` (L, B, H_out) and `c` (L, B, H).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from torch import nn

from asrtools.models.encoder import Encoder, State, register_encoder
from asrtools.nn.causal import CausalLstm
from asrtools.nn.norm import SequenceNorm
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
      norm: normalisation of the front end's output, "layer" (per frame) or "batch"
        (`MaskedBatchNorm`: removes each channel's mean over the data; see asrtools.nn.norm).
      feature_norm: normalisation of the input features, "none" or "online_cmn" (each
        utterance's causal running mean subtracted; see `asrtools.nn.norm.build_feature_norm`).
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
        norm: str = "layer",
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        self.subsampling = CausalConv2dSubsampling(
            input_dim, subsampling_dim, channels=subsampling_channels, factor=subsampling_factor,
            dropout=dropout, feature_norm=feature_norm,
        )
        # Per-frame normalisation of the front end's output: raw log-mel features are far
        # from zero-mean/unit-scale, which saturates LSTM gates and stalls early training.
        self.norm = SequenceNorm(subsampling_dim, norm)
        self.lstm = CausalLstm(subsampling_dim, hidden_dim, num_layers, proj_dim, dropout)
        self._register_load_state_dict_pre_hook(_rename_pre_causal_lstm_keys)
        # LSTM outputs are tanh-bounded and small at initialisation; normalising them gives
        # the joiner and the simple projection unit-scale inputs, which speeds up training
        # several-fold (the logits otherwise need hundreds of steps to grow).
        self.output_norm = nn.LayerNorm(proj_dim or hidden_dim)
        self.output_dropout = nn.Dropout(dropout)
        self.output_dim = self.lstm.output_dim
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
        valid = torch.arange(hidden.size(1), device=hidden.device)[None, :] < out_lens[:, None]
        hidden = self.norm(hidden, valid)
        out = self.lstm(hidden)
        return self.output_dropout(self.output_norm(out)), out_lens

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """Subsampling caches + zero LSTM h (L, B, C) and c (L, B, H)."""
        return self.subsampling.init_states(batch_size, device) + self.lstm.init_state(batch_size, device)

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
        sub_states, lstm_state = states[:-2], states[-2:]
        hidden, out_lens, sub_states = self.subsampling.streaming_forward(chunk, chunk_lens, sub_states)
        out_lens = out_lens.clamp(max=hidden.size(1))
        out, lstm_state = self.lstm.streaming_forward(self.norm(hidden), out_lens, lstm_state)
        return self.output_dropout(self.output_norm(out)), out_lens, sub_states + lstm_state


def _rename_pre_causal_lstm_keys(state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
    """Load checkpoints written before the LSTM stack became `CausalLstm`.

    Their keys were `<prefix>lstm.weight_ih_l0` etc.; they are now `<prefix>lstm.lstm.*`.
    """
    old = prefix + "lstm."
    for key in [k for k in state_dict if k.startswith(old) and not k.startswith(old + "lstm.")]:
        state_dict[old + "lstm." + key[len(old):]] = state_dict.pop(key)
