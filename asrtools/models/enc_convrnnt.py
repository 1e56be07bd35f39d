"""ConvRNN-T encoder (Radfar et al., Interspeech 2022): an LSTM transducer encoder whose
input is enriched by a causal local CNN and a causal global CNN.

    x (B, T, F) --+--> local CNN: CausalConv2d stack over (time x freq)  --> (B, T/4, C_l*F_l)
                  |    (time strides 2, 2 = the subsampling to 40 ms)
                  +--> global CNN: pointwise F -> C_g, residual blocks    --> (B, T, C_g)
                       [pw conv -> dilated causal dw conv -> pw conv ->        | stack 4 frames
                        causal SE], at 10 ms                                   v (B, T/4, 4*C_g)
                  concat --> linear --> layer norm --> LSTM stack --> layer norm --> (B, T/4, C)

Frame-rate choice *(ours; the paper's exact arrangement is not available)*: the local CNN's
first two layers stride 2 in time (and frequency), which is the usual conv subsampling and
makes the paper's 100-channel local CNN affordable; the global CNN runs at the input rate
(10 ms, so dilations 1..32 with kernel 3 span 1.27 s) and its output is frame-stacked by the
same factor. Both branches give exactly `T // 4` frames, so the LSTM runs at 40 ms and
streaming is exact. Squeeze-and-excitation uses the causal running mean (`se_mode:
causal_cummean`, streamable) or, for comparison only, the utterance mean (`utterance_mean`,
not streamable).

Sizes: the constructor defaults are the CPU `default` (about the parameter count of a
4 x 384 LSTM encoder); `LARGE_PARAMS` is the paper-size configuration (local CNN
1->100->100->64->64 of 5x5 kernels, wide global CNN, 5 x 1024 LSTM).

Streaming state layout: local CNN caches (one per conv layer), global CNN states (three
per block: depthwise cache, SE running sum, SE count), the frame-stacker cache, LSTM h, c.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.models.encoder import Encoder, State, register_encoder
from asrtools.nn.causal import CausalLstm, GlobalConvBlock
from asrtools.nn.norm import SequenceNorm, build_feature_norm
from asrtools.nn.subsampling import CausalConv2dStack, FrameStacker

#: Paper-size ConvRNN-T (`encoder_params` for `encoder: convrnnt`).
LARGE_PARAMS: Dict[str, Any] = {
    "local_channels": [100, 100, 64, 64],
    "global_channels": 256,
    "global_hidden_channels": 512,
    "se_bottleneck": 64,
    "frontend_dim": 512,
    "hidden_dim": 1024,
    "num_layers": 5,
}


class GlobalConvNet(nn.Module):
    """The global CNN: pointwise input projection and `GlobalConvBlock`s of growing dilation.

    Args:
      input_dim: F, input feature size.
      channels: C_g, residual channels.
      hidden_channels: channels inside each block.
      dilations: one block per dilation.
      kernel_size: depthwise kernel of every block.
      se_bottleneck: SE hidden size.
      se_mode: `causal_cummean` or `utterance_mean`.
      dropout: dropout on each block's residual branch.
    """

    def __init__(
        self,
        input_dim: int,
        channels: int,
        hidden_channels: int,
        dilations: Sequence[int],
        kernel_size: int,
        se_bottleneck: int,
        se_mode: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.input_proj = nn.Conv1d(input_dim, channels, 1)
        self.blocks = nn.ModuleList(
            GlobalConvBlock(channels, hidden_channels, kernel_size, dilation, se_bottleneck, se_mode, dropout)
            for dilation in dilations
        )

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features, (B,) lengths -> (B, T, C_g)."""
        hidden = self.input_proj(x.transpose(1, 2))
        for block in self.blocks:
            hidden = block(hidden, x_lens)
        return hidden.transpose(1, 2)

    def init_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """Three tensors per block (see `GlobalConvBlock.init_state`)."""
        return [t for block in self.blocks for t in block.init_state(batch_size, device, dtype)]

    def streaming_forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, states: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(B, Tc, F) chunk, (B,) valid frames, states -> (B, Tc, C_g), new states."""
        hidden = self.input_proj(x.transpose(1, 2)) if x.size(1) > 0 else x.new_zeros(x.size(0), self.channels, 0)
        new_states: List[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            hidden, block_state = block.streaming_forward(hidden, x_lens, states[3 * i : 3 * i + 3])
            new_states += block_state
        return hidden.transpose(1, 2), new_states


class ConvRnntFrontEnd(nn.Module):
    """Local CNN + global CNN, concatenated and projected: (B, T, F) -> (B, T // s, D).

    Same interface as `CausalConv2dSubsampling` (forward / init_states /
    streaming_forward / output_lengths); see the module docstring for the layout.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        local_channels: Sequence[int],
        local_kernel_sizes: Sequence[int],
        local_time_strides: Sequence[int],
        local_freq_strides: Sequence[int],
        global_net: GlobalConvNet,
        dropout: float,
        norm: str = "layer",
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        self.feature_norm = build_feature_norm(input_dim, feature_norm)
        self.local = CausalConv2dStack(
            input_dim, local_channels, local_kernel_sizes, local_time_strides, local_freq_strides
        )
        self.global_net = global_net
        self.stacker = FrameStacker(self.local.factor)
        self.factor = self.local.factor
        self.out = nn.Linear(self.local.output_dim + self.factor * global_net.channels, output_dim)
        # Raw log-mel inputs are far from zero mean / unit scale; normalising keeps the LSTM
        # gates out of saturation early in training (batch norm also removes the component
        # shared by all frames, see asrtools.nn.norm).
        self.norm = SequenceNorm(output_dim, norm)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = output_dim
        self._num_local_states = len(self.local.convs)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) int64 output frames: `lengths // factor`."""
        return self.local.output_lengths(lengths)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F), (B,) -> (B, T // factor, D), (B,) int64."""
        x = self.feature_norm(x, x_lens)
        local = self.local(x)
        stacked = self.stacker(self.global_net(x, x_lens))
        out_lens = self.output_lengths(x_lens)
        valid = torch.arange(local.size(1), device=x.device)[None, :] < out_lens[:, None]
        return self._combine(local, stacked, valid), out_lens

    def init_states(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> List[torch.Tensor]:
        """Feature norm state, local caches, global states, stacker cache."""
        return (
            self.feature_norm.init_state(batch_size, device, dtype)
            + self.local.init_states(batch_size, device, dtype)
            + self.global_net.init_states(batch_size, device, dtype)
            + [self.stacker.init_cache(batch_size, self.global_net.channels, device, dtype)]
        )

    def streaming_forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, states: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """(B, Tc, F) chunk (any length), (B,) valid frames, states -> output, lengths, states."""
        num_norm = self.feature_norm.num_states
        x, norm_state = self.feature_norm.streaming_forward(x, x_lens, states[:num_norm])
        local_states = states[num_norm : num_norm + self._num_local_states]
        global_states, stack_cache = states[num_norm + self._num_local_states : -1], states[-1]
        y_lens = self.output_lengths(x_lens + stack_cache.size(1))
        local, local_states = self.local.streaming_forward(x, local_states)
        global_out, global_states = self.global_net.streaming_forward(x, x_lens, global_states)
        stacked, stack_cache = self.stacker.streaming_forward(global_out, stack_cache)
        return self._combine(local, stacked), y_lens, norm_state + local_states + global_states + [stack_cache]

    def _combine(self, local: torch.Tensor, stacked: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.dropout(self.norm(self.out(torch.cat([local, stacked], dim=2)), valid))


@register_encoder("convrnnt")
class ConvRnntEncoder(Encoder):
    """ConvRNN-T encoder: local + global causal CNN front end, then an LSTM stack.

    Args:
      input_dim: F, input feature size.
      local_channels: output channels of each local CNN layer.
      local_kernel_sizes: kernel (time = frequency) of each local layer.
      local_time_strides: time stride of each local layer; their product is the
        subsampling factor (the global branch is frame-stacked by the same factor).
      local_freq_strides: frequency stride of each local layer.
      global_channels: C_g, residual channels of the global CNN.
      global_hidden_channels: channels inside each global block.
      global_dilations: one global block per dilation.
      global_kernel_size: depthwise kernel of the global blocks (3 in the paper).
      se_mode: `causal_cummean` (streamable) or `utterance_mean` (offline comparison).
      se_bottleneck: SE hidden size.
      frontend_dim: size of the linear layer after the concatenation (LSTM input).
      hidden_dim: H, LSTM cell size.
      num_layers: LSTM layers.
      proj_dim: LSTM output projection (0 = none); the output size is `proj_dim or hidden_dim`.
      dropout: dropout in the global blocks, after the front end, between LSTM layers
        and on the output.
      norm: normalisation of the front end's output, "layer" or "batch" (as `LstmEncoder`).
      feature_norm: normalisation of the input features, "none" or "online_cmn" (each
        utterance's causal running mean subtracted; see `asrtools.nn.norm.build_feature_norm`).
    """

    def __init__(
        self,
        input_dim: int,
        local_channels: Sequence[int] = (32, 32, 32, 32),
        local_kernel_sizes: Sequence[int] = (5, 5, 5, 5),
        local_time_strides: Sequence[int] = (2, 2, 1, 1),
        local_freq_strides: Sequence[int] = (2, 2, 1, 1),
        global_channels: int = 128,
        global_hidden_channels: int = 256,
        global_dilations: Sequence[int] = (1, 2, 4, 8, 16, 32),
        global_kernel_size: int = 3,
        se_mode: str = "causal_cummean",
        se_bottleneck: int = 32,
        frontend_dim: int = 256,
        hidden_dim: int = 384,
        num_layers: int = 3,
        proj_dim: int = 0,
        dropout: float = 0.1,
        norm: str = "layer",
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        if min(global_channels, global_hidden_channels, se_bottleneck, frontend_dim) < 1:
            raise ConfigError("encoder convrnnt: channel and layer sizes must be >= 1")
        global_net = GlobalConvNet(
            input_dim,
            global_channels,
            global_hidden_channels,
            global_dilations,
            global_kernel_size,
            se_bottleneck,
            se_mode,
            dropout,
        )
        self.frontend = ConvRnntFrontEnd(
            input_dim,
            frontend_dim,
            local_channels,
            local_kernel_sizes,
            local_time_strides,
            local_freq_strides,
            global_net,
            dropout,
            norm,
            feature_norm,
        )
        self.lstm = CausalLstm(frontend_dim, hidden_dim, num_layers, proj_dim, dropout)
        # As in LstmEncoder: normalise the tanh-bounded LSTM output for the joiner. Without
        # it conf/train_convrnnt.yaml stalled at dev loss ~1.41 from epoch 5 on the default
        # corpus; with it the dev loss follows the LSTM encoder's (0.478 after 12 epochs).
        self.output_norm = nn.LayerNorm(self.lstm.output_dim)
        self.output_dropout = nn.Dropout(dropout)
        self.se_mode = se_mode
        self.output_dim = self.lstm.output_dim
        self.subsampling_factor = self.frontend.factor
        self.chunk_frames_multiple = self.frontend.factor

    @property
    def is_causal(self) -> bool:
        """Only the running-mean SE streams; the utterance mean looks ahead."""
        return self.se_mode == "causal_cummean"

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """(B,) int64 encoder output frames for (B,) int64 input frames."""
        return self.frontend.output_lengths(x_lens)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode whole utterances.

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.

        Returns:
          out: (B, T // subsampling_factor, C); out_lens: (B,) int64.
        """
        hidden, out_lens = self.frontend(x, x_lens)
        return self.output_dropout(self.output_norm(self.lstm(hidden))), out_lens

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """Front-end caches + LSTM [h, c] (see the module docstring for the layout)."""
        return self.frontend.init_states(batch_size, device) + self.lstm.init_state(batch_size, device)

    def streaming_forward(
        self, chunk: torch.Tensor, chunk_lens: torch.Tensor, states: State
    ) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """Encode the next chunk of each stream (see `Encoder.streaming_forward`).

        Args:
          chunk: (B, Tc, F) next input frames (any Tc; multiples of the subsampling factor
            give exactly Tc // factor output frames).
          chunk_lens: (B,) int64 valid frames of the chunk.
          states: from `init_states` or the previous call.

        Returns:
          out: (B, Tc', C); out_lens: (B,) int64; the new states.
        """
        frontend_states, lstm_state = states[:-2], states[-2:]
        hidden, out_lens, frontend_states = self.frontend.streaming_forward(chunk, chunk_lens, frontend_states)
        out_lens = out_lens.clamp(max=hidden.size(1))
        out, lstm_state = self.lstm.streaming_forward(hidden, out_lens, lstm_state)
        return self.output_dropout(self.output_norm(out)), out_lens, frontend_states + lstm_state
