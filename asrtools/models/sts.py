"""The separator-transducer-segmenter (STS) model: a two-channel streaming transducer.

METHODS.md §3 (Sklyar et al.): a separator - shared causal encoder layers (any registered
`Encoder`) followed by one causal branch per output channel - feeds ONE prediction network
and ONE joiner, shared by the channels; each channel has its own transducer lattice. The
channels are stacked into the batch dimension (channel-major: row `k * B + b` is channel k
of conversation b), so the pruned RNN-T loss runs once over all channels.

A `ChannelBranch` is residual, `x + proj(LSTM(LayerNorm(x)))`, with `proj` initialised to
zero: a fresh branch passes the shared encoder output through unchanged, so a model whose
encoder, decoder and joiner are initialised from a single-talker transducer (`init_from`;
the parameter names are the same as `asrtools.models.transducer.Transducer`'s) starts as
that transducer on every channel, and the branches learn to separate.

A shared linear `activity_head` reads every channel's frames and predicts whether that
channel's talker is speaking (the speech-activity auxiliary task). The loss terms that
need the targets (turn tokens, `<eot>` deadlines, activity) are combined by the `sts`
training task (asrtools.training.tasks.sts); `losses` here computes the per-channel simple
and pruned RNN-T losses with the optional `<eot>` latency penalty and FastEmit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from asrtools.config import from_dict, to_dict
from asrtools.losses.turn_penalties import eot_latency_penalty, fast_emit
from asrtools.models.build import ModelConfig
from asrtools.models.encoder import Encoder, build_encoder
from asrtools.models.transducer import Joiner, StatelessDecoder, _length_mask

BranchState = Tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class StsModelConfig(ModelConfig):
    """The transducer's architecture plus the separator's channel branches.

    Attributes:
      num_channels: output channels (2: at most two simultaneous talkers).
      branch_layers: LSTM layers per channel branch.
      branch_hidden: their cells.
      branch_dropout: dropout inside a branch (training only).
    """

    num_channels: int = 2
    branch_layers: int = 1
    branch_hidden: int = 256
    branch_dropout: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.num_channels < 1 or self.branch_layers < 1 or self.branch_hidden < 1:
            raise ValueError("num_channels, branch_layers and branch_hidden must be >= 1")
        if not 0.0 <= self.branch_dropout < 1.0:
            raise ValueError("branch_dropout must lie in [0, 1)")


class ChannelBranch(nn.Module):
    """One output channel of the separator: `x + proj(LSTM(LayerNorm(x)))`, causal.

    Args:
      dim: C, encoder output size (in and out).
      hidden: LSTM cells.
      num_layers: LSTM layers.
      dropout: dropout on the LSTM output (and between its layers).
    """

    def __init__(self, dim: int, hidden: int, num_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.num_layers = num_layers
        self.hidden = hidden

    def forward(self, x: torch.Tensor, state: Optional[BranchState] = None) -> Tuple[torch.Tensor, BranchState]:
        """Run over `x` (B, T, C) from `state` (None: zeros); return (B, T, C) and the new state.

        Padded frames after a sequence's end are processed too but cannot change its
        valid frames (the LSTM is causal).
        """
        hidden, state = self.lstm(self.norm(x), state)
        return x + self.proj(self.dropout(hidden)), state

    def init_state(self, batch_size: int, device: torch.device) -> BranchState:
        """Zero (h, c), each (num_layers, B, hidden)."""
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden, device=device)
        return zeros, zeros.clone()


@dataclasses.dataclass
class ChannelLosses:
    """Summed losses over all channels of a batch.

    Attributes:
      simple: smoothed trivial-joiner loss (scalar, summed over the K*B lattices).
      pruned: pruned full-joiner loss (scalar).
      encoder_out_lens: (B,) int64 encoder frames per conversation.
      activity_logits: (K, B, T') speech-activity logits of each channel.
    """

    simple: torch.Tensor
    pruned: torch.Tensor
    encoder_out_lens: torch.Tensor
    activity_logits: torch.Tensor


class SeparatorTransducer(nn.Module):
    """Shared encoder -> K channel branches -> shared decoder + joiner (see the module doc).

    Args:
      encoder: the shared causal encoder.
      branches: K `ChannelBranch`es.
      decoder: the prediction network.
      joiner: the joint network.
      vocab_size: V.
    """

    def __init__(self, encoder: Encoder, branches: List[ChannelBranch], decoder: StatelessDecoder, joiner: Joiner,
                 vocab_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.branches = nn.ModuleList(branches)
        self.decoder = decoder
        self.joiner = joiner
        self.vocab_size = vocab_size
        self.blank_id = decoder.blank_id
        self.num_channels = len(branches)
        self.simple_am_proj = nn.Linear(encoder.output_dim, vocab_size)
        self.simple_lm_proj = nn.Linear(decoder.decoder_dim, vocab_size)
        self.activity_head = nn.Linear(encoder.output_dim, 1)

    def separate(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Channel outputs of whole conversations.

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.

        Returns:
          (K*B, T', C) channel-major channel outputs, and (B,) int64 valid encoder frames.
        """
        shared, lens = self.encoder(x, x_lens)
        outs = [branch(shared)[0] for branch in self.branches]
        return torch.cat(outs, dim=0), lens

    def init_states(self, batch_size: int, device: torch.device) -> List[Any]:
        """Streaming state before the first chunk: the encoder's, then each branch's."""
        return [self.encoder.init_states(batch_size, device)] + [b.init_state(batch_size, device) for b in self.branches]

    def streaming_separate(self, chunk: torch.Tensor, chunk_lens: torch.Tensor,
                           states: List[Any]) -> Tuple[torch.Tensor, torch.Tensor, List[Any]]:
        """`separate` for the next chunk of each stream, carrying `states` (see `init_states`).

        Returns:
          (K*B, Tc', C) channel outputs, (B,) int64 valid frames, the new states.
        """
        shared, lens, encoder_state = self.encoder.streaming_forward(chunk, chunk_lens, states[0])
        if shared.size(1) == 0:  # a stream-final chunk shorter than one output frame
            return shared.repeat(self.num_channels, 1, 1), lens, [encoder_state] + list(states[1:])
        outs, new_states = [], [encoder_state]
        for branch, state in zip(self.branches, states[1:]):
            out, state = branch(shared, state)
            outs.append(out)
            new_states.append(state)
        return torch.cat(outs, dim=0), lens, new_states

    def activity_logits(self, channels: torch.Tensor) -> torch.Tensor:
        """(K*B, T', C) channel outputs -> (K, B, T') speech-activity logits."""
        logits = self.activity_head(channels).squeeze(-1)
        return logits.view(self.num_channels, -1, logits.size(-1))

    def forward(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: torch.Tensor,
        y_lens: torch.Tensor,
        deadlines: torch.Tensor,
        frame_seconds: float,
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.25,
        rnnt_type: str = "regular",
        eot_latency_weight: float = 0.0,
        fastemit_lambda: float = 0.0,
        backend: str = "auto",
    ) -> ChannelLosses:
        """Per-channel simple and pruned RNN-T losses (summed over all K*B lattices).

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.
          y: (K*B, S) int64 channel-major targets (turn tokens included), padded.
          y_lens: (K*B,) int64 target lengths (0 for a silent channel).
          deadlines: (K*B, S) float end time (s) of the turn each `<eot>` closes, +inf
            elsewhere (`asrtools.losses.turn_penalties.eot_deadlines`).
          frame_seconds: duration of one encoder frame.
          prune_range, am_scale, lm_scale, rnnt_type, backend: as `Transducer.forward`.
          eot_latency_weight: nats per second of late `<eot>` emission (0 = off).
          fastemit_lambda: FastEmit's lambda (0 = off).

        Returns:
          The losses and the activity logits.
        """
        from asrtools.losses import rnnt

        channels, lens = self.separate(x, x_lens)
        K = self.num_channels
        channel_lens = lens.repeat(K)
        y = y.to(torch.int64)
        y_lens = y_lens.to(torch.int64)
        max_len = int(y_lens.max()) if y.numel() else 0
        symbols = y[:, :max_len].masked_fill(_length_mask(y_lens, max_len), self.blank_id)
        deadlines = deadlines[:, :max_len]
        decoder_out = self.decoder(F.pad(symbols, (1, 0), value=self.blank_id))
        boundary = torch.zeros((symbols.size(0), 4), dtype=torch.int64, device=x.device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = channel_lens

        px, py = rnnt.get_rnnt_logprobs_smoothed(
            lm=self.simple_lm_proj(decoder_out).float(), am=self.simple_am_proj(channels).float(), symbols=symbols,
            termination_symbol=self.blank_id, lm_only_scale=lm_scale, am_only_scale=am_scale, boundary=boundary,
            rnnt_type=rnnt_type, backend=backend)
        px = eot_latency_penalty(px, deadlines, frame_seconds, eot_latency_weight)
        totals, (px_grad, py_grad) = rnnt.mutual_information_recursion(px, py, boundary, return_grad=True,
                                                                       backend=backend)
        simple = -totals.sum() + fast_emit(px, px_grad, fastemit_lambda)
        activity = self.activity_logits(channels)
        if not bool(torch.isfinite(simple)):
            return ChannelLosses(simple, torch.full_like(simple, float("nan")), lens, activity)

        ranges = rnnt.get_rnnt_prune_ranges(px_grad=px_grad, py_grad=py_grad, boundary=boundary,
                                            s_range=prune_range, backend=backend)
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am=self.joiner.encoder_proj(channels),
                                                    lm=self.joiner.decoder_proj(decoder_out), ranges=ranges,
                                                    backend=backend)
        logits = self.joiner(am_pruned, lm_pruned, project_input=False)
        px, py = rnnt.get_rnnt_logprobs_pruned(logits=logits.float(), symbols=symbols, ranges=ranges,
                                               termination_symbol=self.blank_id, boundary=boundary,
                                               rnnt_type=rnnt_type, backend=backend)
        px = eot_latency_penalty(px, deadlines, frame_seconds, eot_latency_weight)
        if fastemit_lambda > 0.0:
            totals, (px_grad, _) = rnnt.mutual_information_recursion(px, py, boundary, return_grad=True,
                                                                     backend=backend)
            pruned = -totals.sum() + fast_emit(px, px_grad, fastemit_lambda)
        else:
            pruned = -rnnt.mutual_information_recursion(px, py, boundary, backend=backend).sum()
        return ChannelLosses(simple, pruned, lens, activity)


def build_sts_model(config: StsModelConfig, vocab_size: int) -> SeparatorTransducer:
    """A freshly initialised `SeparatorTransducer` described by `config` for `vocab_size` ids."""
    encoder = build_encoder(config.encoder, input_dim=config.feature_dim, **config.encoder_params)
    branches = [ChannelBranch(encoder.output_dim, config.branch_hidden, config.branch_layers, config.branch_dropout)
                for _ in range(config.num_channels)]
    decoder = StatelessDecoder(vocab_size, config.decoder_dim, config.blank_id, config.context_size)
    joiner = Joiner(encoder.output_dim, config.decoder_dim, config.joiner_dim, vocab_size)
    return SeparatorTransducer(encoder, branches, decoder, joiner, vocab_size)


def sts_config_to_dict(config: StsModelConfig) -> Dict[str, Any]:
    """Plain-dict form stored in checkpoints."""
    return to_dict(config)


def sts_config_from_dict(data: Dict[str, Any], source: str = "checkpoint") -> StsModelConfig:
    """Inverse of `sts_config_to_dict`, with the strict config checks."""
    return from_dict(StsModelConfig, dict(data), source)
