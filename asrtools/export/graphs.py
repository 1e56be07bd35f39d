"""The three graphs a streaming transducer is exported as, with sherpa-onnx's `lstm` state layout.

sherpa-onnx's `lstm` model type (online-lstm-transducer-model.cc) runs an encoder with
inputs `x` (N, T, F), `h` (L, N, d_model), `c` (L, N, rnn_hidden_size) and outputs
`encoder_out` (N, T', J), `next_h`, `next_c` (same shapes as h and c); it creates h and c as
zeros for a new stream, stacks streams on axis 1, feeds T = `T` feature frames per call and
advances by `decode_chunk_len` frames. That is a general protocol for any encoder whose
streaming state has a fixed size: `StatePacker` lays every encoder's state out in it.

- An LSTM encoder's own h and c are the first L rows of h and c.
- Every other state tensor (subsampling conv caches, online-CMN sums, attention key/value
  caches, frame counters) is flattened per stream, stored as its difference from the
  encoder's initial state (so that sherpa-onnx's zeros are exactly `init_states`), and the
  concatenation fills extra rows of c (zero-padded to whole rows); h gets as many extra rows
  (unused, returned as zeros) because sherpa-onnx gives both the same row count.

Chunks carry no overlap (T = decode_chunk_len): the causal encoders keep their left context
in the state. As in icefall's export, `joiner.encoder_proj` is applied in the encoder graph
and `joiner.decoder_proj` in the decoder graph, so the joiner graph is
`output_linear(tanh(encoder_out + decoder_out))`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.models.enc_lstm import LstmEncoder
from asrtools.models.encoder import Encoder, State
from asrtools.models.transducer import Transducer


@dataclasses.dataclass(frozen=True)
class StateSlot:
    """Where one encoder state tensor lives in the packed vector of a stream.

    Attributes:
      shape: its shape without the batch axis.
      batch_axis: the batch axis in the encoder's layout.
      dtype: its dtype (integer states are stored as float and rounded back).
      offset: first element in the packed vector; size: number of elements.
    """

    shape: Tuple[int, ...]
    batch_axis: int
    dtype: torch.dtype
    offset: int
    size: int


class StatePacker(nn.Module):
    """Packs an encoder's state list into sherpa-onnx's (h, c) pair and back.

    Args:
      encoder: the streaming encoder (its `init_states` fixes the layout).
      row_width: width of a packed row when the encoder is not an LSTM (an LSTM uses its
        cell size, so its own c rows and the packed rows are one tensor).
    """

    def __init__(self, encoder: Encoder, row_width: int = 256) -> None:
        super().__init__()
        one = encoder.init_states(1, torch.device("cpu"))
        two = encoder.init_states(2, torch.device("cpu"))
        self.is_lstm = isinstance(encoder, LstmEncoder)
        if self.is_lstm:
            lstm = encoder.lstm
            self.num_lstm_layers, self.h_width, self.c_width = lstm.num_layers, lstm.output_dim, lstm.hidden_dim
            one, two = one[:-2], two[:-2]
        else:
            self.num_lstm_layers, self.h_width, self.c_width = 0, row_width, row_width
        slots, initial, offset = [], [], 0
        for index, (a, b) in enumerate(zip(one, two)):
            axes = [i for i in range(a.dim()) if a.size(i) != b.size(i)]
            if len(axes) != 1:
                raise ConfigError(f"{type(encoder).__name__}: streaming state {index} has no single batch axis "
                                  f"(shapes {tuple(a.shape)} and {tuple(b.shape)} for 1 and 2 streams)")
            axis = axes[0]
            per_stream = a.select(axis, 0)
            slots.append(StateSlot(tuple(per_stream.shape), axis, a.dtype, offset, per_stream.numel()))
            initial.append(per_stream.reshape(-1).float())
            offset += per_stream.numel()
        if offset == 0:
            raise ConfigError(f"{type(encoder).__name__}: no streaming state to carry")
        self.slots: List[StateSlot] = slots
        self.packed_size = offset
        self.extra_rows = math.ceil(offset / self.c_width)
        self.register_buffer("initial", torch.cat(initial) if initial else torch.zeros(0), persistent=False)

    @property
    def num_rows(self) -> int:
        """L of h and c: the LSTM's layers plus the packed rows."""
        return self.num_lstm_layers + self.extra_rows

    def zero_states(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """h (L, N, d_model) and c (L, N, rnn_hidden_size) of new streams (what sherpa-onnx makes)."""
        return (torch.zeros(self.num_rows, batch_size, self.h_width),
                torch.zeros(self.num_rows, batch_size, self.c_width))

    def unpack(self, h: torch.Tensor, c: torch.Tensor) -> State:
        """The encoder's state list from h (L, N, d_model) and c (L, N, rnn_hidden_size)."""
        batch = c.size(1)
        rows = c[self.num_lstm_layers:]  # (E, N, W)
        flat = rows.permute(1, 0, 2).reshape(batch, -1)[:, : self.packed_size] + self.initial  # (N, S)
        states = []
        for slot in self.slots:
            if slot.size == 0:  # an empty cache (e.g. no pending frames): nothing to carry
                states.append(c.new_zeros((batch,) + slot.shape).movedim(0, slot.batch_axis).to(slot.dtype))
                continue
            value = flat[:, slot.offset : slot.offset + slot.size].reshape((batch,) + slot.shape)
            value = value.movedim(0, slot.batch_axis)
            states.append(value.round().to(slot.dtype) if not slot.dtype.is_floating_point else value.to(slot.dtype))
        if self.is_lstm:
            states += [h[: self.num_lstm_layers], c[: self.num_lstm_layers]]
        return states

    def pack(self, states: State, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Inverse of `unpack`: (next_h, next_c) holding `states`; h's unused rows pass through."""
        if self.is_lstm:
            states, (lstm_h, lstm_c) = states[:-2], states[-2:]
        batch = h.size(1)
        parts = [s.movedim(slot.batch_axis, 0).float().reshape(batch, slot.size)
                 for s, slot in zip(states, self.slots) if slot.size > 0]
        flat = torch.cat(parts, dim=1) - self.initial  # (N, S)
        padding = self.extra_rows * self.c_width - self.packed_size
        flat = nn.functional.pad(flat, (0, padding))
        rows = flat.reshape(batch, self.extra_rows, self.c_width).permute(1, 0, 2)  # (E, N, W)
        if self.is_lstm:
            return torch.cat([lstm_h, h[self.num_lstm_layers:]], dim=0), torch.cat([lstm_c, rows], dim=0)
        return h, rows


def lstm_chunk_forward(encoder: LstmEncoder, x: torch.Tensor, states: State) -> Tuple[torch.Tensor, State]:
    """`LstmEncoder.streaming_forward` for full chunks, without packed sequences (exportable).

    Args:
      encoder: the LSTM encoder (eval mode).
      x: (N, T, F) a full chunk of every stream (T a multiple of the subsampling factor).
      states: the encoder's state list.

    Returns:
      (N, T', C) output and the new state list.
    """
    sub_states, (h, c) = states[:-2], states[-2:]
    lens = torch.full((x.size(0),), x.size(1), dtype=torch.int64)
    hidden, _, sub_states = encoder.subsampling.streaming_forward(x, lens, sub_states)
    out, (h, c) = encoder.lstm.lstm(encoder.norm(hidden), (h, c))
    return encoder.output_norm(out), list(sub_states) + [h, c]


class EncoderGraph(nn.Module):
    """(x (N, T, F), h, c) -> (encoder_out (N, T', J) projected for the joiner, next_h, next_c)."""

    def __init__(self, model: Transducer, packer: StatePacker) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.encoder_proj = model.joiner.encoder_proj
        self.packer = packer

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        states = self.packer.unpack(h, c)
        if isinstance(self.encoder, LstmEncoder):
            out, states = lstm_chunk_forward(self.encoder, x, states)
        else:
            lens = torch.full((x.size(0),), x.size(1), dtype=torch.int64)
            out, _, states = self.encoder.streaming_forward(x, lens, states)
        next_h, next_c = self.packer.pack(states, h)
        return self.encoder_proj(out), next_h, next_c


class DecoderGraph(nn.Module):
    """y (N, context_size) int64 (-1 = no token) -> decoder_out (N, J) projected for the joiner."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.decoder_proj = model.joiner.decoder_proj

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.decoder_proj(self.decoder(y, need_pad=False)).squeeze(1)


class JoinerGraph(nn.Module):
    """(encoder_out (N, J), decoder_out (N, J)) -> logit (N, V)."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.output_linear = model.joiner.output_linear

    def forward(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor) -> torch.Tensor:
        return self.output_linear(torch.tanh(encoder_out + decoder_out))
