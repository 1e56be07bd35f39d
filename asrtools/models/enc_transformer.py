"""Streaming Transformer encoder with per-frame compute arbitration (`encoder: transformer`).

    x (B, T, F) -> causal Conv2d subsampling (T // 4) -> norm -> N x layer -> LN -> (B, T // 4, D)

Layer (pre-norm), two residual sub-blocks, each guarded per frame by a gate g in {0, 1}:

    x = x + g_att(t) * MHSA(LN(x))     chunk attention: a frame sees its chunk of `chunk_size`
                                       frames and `left_context` frames before it (learned
                                       relative-position bias; asrtools.nn.attention)
    x = x + g_ffn(t) * FFN(x)          LN -> Linear -> SiLU -> Linear (the Conformer's FeedForward)

The gates decide from the sub-block's normalised input (LN(x), which the sub-block computes
anyway, for every frame).

`gating` picks the gates (asrtools.nn.arbitrator.FrameGate): `none` (a dense Transformer),
`arbitrator` (a tiny learned network per layer and sub-block reading the sub-block's
normalised input, and with `arbitrator_input: block+acoustic` also the front-end output: the compute-cost
amortized Transformer of Xie et al., METHODS.md §2) or `random` (input-independent skipping at
`keep_rate_attention` / `keep_rate_ffn`, the random-skipping baseline). A skipped sub-block is
the identity through its residual.

Training (gates relaxed, every frame computed): the arbitrators' Gumbel-sigmoid temperature
follows `temperature_start -> temperature_end` (geometric, over `temperature_steps` steps,
via `set_training_progress`), and `auxiliary_losses()` returns the compute penalty
`compute_weight * max(0, C - compute_target)` (`compute_target: 0` gives `lambda * C`), where
C is the executed fraction of the layer stack's FLOPs over the batch's valid frames,
arbitrators included, under `compute_accounting` (below). `training_statistics()` gives C,
the executed fraction of attention and FFN frames and C per layer, for the logs.

Inference (hard gates) skips for real: the valid frames whose gate is on are gathered, the
sub-block runs on them only and its output is added back at their rows (nothing runs for a
sub-block whose gate is off in every frame of a call; without gates, padding frames are
skipped the same way, so dense and gated models follow one rule). Attention *(choice, METHODS.md)*: the
keys and values of every frame are computed (a later frame may attend to a skipped one);
the query and output projections run on the active frames only; the chunk-window scores and
contexts are one batched product per chunk for every frame (zero queries where skipped:
gathering a key window per query is far slower on CPU, for 4 D W of a query's 8 D^2 + 4 D W
FLOPs; `RelPositionSelfAttention.chunk_attention`). FLOPs are therefore counted in two ways
(asrtools.models.compute): `kv_all` (what runs: a skipped query still pays its frame's
key/value projections and window) and `kv_skipped` (a skipped query pays nothing). Per frame
and layer (2 x multiply-adds, D = dim, F = ffn_dim, W = left_context + chunk_size):
key/value projections 4 D^2, window scores + context 4 D W, query + output projections
4 D^2, FFN 4 D F, arbitrator 2 (C_in H + H) (H = arbitrator_dim, C_in = D or 2 D; 2 C_in
without a hidden layer); the front end is measured with torch's FLOP counter.

Streaming: `streaming_forward` takes chunks of a multiple of `chunk_size * 4` input frames
(`chunk_frames_multiple`; only a stream's last chunk may be shorter). State: subsampling
caches, the number of subsampled frames seen per stream (B,) int64, then per layer the keys
and values of the last `left_context` frames (B, L, D). The whole-utterance `forward` runs the
same computation as one call from the empty state, so streaming output equals it, with
gates too (the random gates hash absolute frame positions).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.models.compute import ComputeMeter
from asrtools.models.enc_conformer import FeedForward, chunked_front_end
from asrtools.models.encoder import Encoder, State, register_encoder
from asrtools.nn.arbitrator import FrameGate, hashed_uniform
from asrtools.nn.attention import RelPositionSelfAttention, chunk_window_blocked
from asrtools.nn.causal import lengths_to_mask
from asrtools.nn.norm import SequenceNorm
from asrtools.nn.subsampling import CausalConv2dSubsampling

GATINGS = ("none", "arbitrator", "random")
ARBITRATOR_INPUTS = ("block", "block+acoustic")
ACCOUNTINGS = ("kv_all", "kv_skipped")
SUB_BLOCKS = ("attention", "ffn")


@dataclasses.dataclass(frozen=True)
class SubBlockFlops:
    """FLOPs (2 x multiply-adds) per valid output frame of one layer's parts.

    Attributes:
      key_value: the key and value projections.
      window: attention scores and context over the chunk window.
      query: the query and output projections.
      ffn: the feed-forward sub-block.
      arbitrators: the layer's gate decisions (both sub-blocks; 0 without arbitrators).
    """

    key_value: float
    window: float
    query: float
    ffn: float
    arbitrators: float

    @property
    def dense(self) -> float:
        """One dense layer (no gates)."""
        return self.key_value + self.window + self.query + self.ffn

    def executed(self, frames, attention, ffn, accounting: str = "kv_all"):
        """Layer FLOPs for `frames` valid frames of which `attention` / `ffn` ran the sub-block
        (numbers or tensors; differentiable in the counts). `kv_all`: every frame pays the
        key/value projections and the window (what runs); `kv_skipped`: a skipped query pays nothing."""
        if accounting == "kv_all":
            always = self.key_value + self.window + self.arbitrators
            return always * frames + self.query * attention + self.ffn * ffn
        return self.arbitrators * frames + (self.key_value + self.window + self.query) * attention + self.ffn * ffn


@dataclasses.dataclass
class _CallContext:
    """What every layer needs for one call on (B, T) frames (T a multiple of chunk_size).

    Attributes:
      valid: (B, T) bool valid frames.
      key_valid: (B, L + T) bool keys that may be attended to (cache first).
      positions: (B, T) int64 absolute frame index in the stream.
      acoustic: (B, T, D) front-end output (arbitrator input), or None.
      uniform: (B, T, G) hashed uniforms of the G random gates (inference), or None.
      meter: the compute meter when counting, else None.
      blocked: (B, T // S, 1, 1, L + S) bool keys each chunk's window may not see.
      num_valid: number of valid frames (inference; 0 in training).
    """

    valid: torch.Tensor
    key_valid: torch.Tensor
    positions: torch.Tensor
    acoustic: Optional[torch.Tensor]
    uniform: Optional[torch.Tensor]
    meter: Optional[ComputeMeter]
    blocked: Optional[torch.Tensor] = None
    num_valid: int = 0


def _add_on_rows(x: torch.Tensor, active: torch.Tensor, num_valid: int, dense: Callable[[], torch.Tensor],
                 on_rows: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`x + f(x)` on the active frames only (real skipping).

    Args:
      x: (B, T, D) sub-block input.
      active: (B, T) bool frames to run (valid frames only).
      num_valid: valid frames of the call; when all of them are active, `dense` runs.
      dense: computes f on every frame, (B, T, D) (padding frames are computed and ignored).
      on_rows: (N,) int64 rows of the flattened (B * T) frames -> (N, D) f on those rows.
    """
    rows = active.reshape(-1).nonzero().squeeze(1)
    if rows.numel() == 0:
        return x
    if rows.numel() == num_valid:
        return x + dense()
    flat = x.reshape(-1, x.size(-1))
    return flat.index_add(0, rows, on_rows(rows)).view_as(x)


class TransformerLayer(nn.Module):
    """One pre-norm Transformer layer with optionally gated sub-blocks (module docstring).

    Args:
      dim: D.
      num_heads: attention heads.
      ffn_dim: feed-forward hidden size.
      chunk_size: attention chunk (frames).
      left_context: frames before a chunk its frames see.
      max_relative_distance: clipping of the relative position bias.
      dropout: dropout.
      attention_gate: the attention sub-block's gate, or None (always runs).
      ffn_gate: the feed-forward sub-block's gate, or None.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, chunk_size: int, left_context: int,
                 max_relative_distance: int, dropout: float, attention_gate: Optional[FrameGate] = None,
                 ffn_gate: Optional[FrameGate] = None) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.left_context = left_context
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = RelPositionSelfAttention(dim, num_heads, max_relative_distance, dropout)
        self.ffn = FeedForward(dim, ffn_dim, dropout)
        self.dropout = nn.Dropout(dropout)
        self.attention_gate = attention_gate
        self.ffn_gate = ffn_gate

    def forward(self, x: torch.Tensor, ctx: _CallContext, cache: List[torch.Tensor], index: int,
                ) -> Tuple[torch.Tensor, List[torch.Tensor], List[Optional[torch.Tensor]]]:
        """Run the layer on one call's frames.

        Args:
          x: (B, T, D) input, T a multiple of chunk_size.
          ctx: masks, positions, front-end output and meter of the call.
          cache: [keys (B, L, D), values (B, L, D)] of the L frames before the call.
          index: this layer's index (gates and meter entries 2 index and 2 index + 1).

        Returns:
          y: (B, T, D); [keys, values] (B, L + T, D) of cache + call frames; the gates
          [attention, ffn]: (B, T) float values in training, bool decisions at inference,
          None for an ungated sub-block.
        """
        frames, dim = x.size(1), x.size(2)
        normed = self.norm_attention(x)
        keys, values = self.attention.keys_values(normed)
        keys, values = torch.cat([cache[0], keys], dim=1), torch.cat([cache[1], values], dim=1)

        def attend(rows: Optional[torch.Tensor] = None) -> torch.Tensor:
            queries = normed if rows is None else normed.reshape(-1, dim)[rows]
            return self.dropout(self.attention.chunk_attention(
                queries, keys, values, None, self.chunk_size, self.left_context, rows, frames, ctx.blocked))

        attention_gate = self._gate(self.attention_gate, normed, ctx, 2 * index)
        x = self._residual(x, attention_gate, ctx, 2 * index, attend)
        normed = self.ffn.normalise(x)
        ffn_gate = self._gate(self.ffn_gate, normed, ctx, 2 * index + 1)
        x = self._residual(x, ffn_gate, ctx, 2 * index + 1,
                           lambda rows=None: self.ffn.transform(normed if rows is None else normed.reshape(-1, dim)[rows]))
        return x, [keys, values], [attention_gate, ffn_gate]

    def _gate(self, gate: Optional[FrameGate], normed: torch.Tensor, ctx: _CallContext,
              index: int) -> Optional[torch.Tensor]:
        """Gate values (training) or decisions (inference) of a sub-block whose normalised input is `normed`."""
        if gate is None:
            return None
        features = None
        if gate.kind == "arbitrator":
            features = normed if ctx.acoustic is None else torch.cat([normed, ctx.acoustic], dim=-1)
        uniform = ctx.valid if ctx.uniform is None else ctx.uniform[..., index]
        return gate(features, uniform) if self.training else gate.decide(features, uniform)

    def _residual(self, x: torch.Tensor, gate: Optional[torch.Tensor], ctx: _CallContext, meter_index: int,
                  block: Callable[..., torch.Tensor]) -> torch.Tensor:
        """`x + g * block(x)`: every frame in training, else the valid (and active) rows only."""
        if self.training:
            update = block()
            return x + (update if gate is None else gate.unsqueeze(-1) * update)
        active = ctx.valid if gate is None else gate & ctx.valid
        if ctx.meter is not None:
            ctx.meter.add_executed(meter_index, active)
        return _add_on_rows(x, active, ctx.num_valid, block, block)


@register_encoder("transformer")
class TransformerEncoder(Encoder):
    """Causal subsampling + chunked-attention Transformer layers with optional per-frame gates.

    Args:
      input_dim: F, input feature size.
      dim: D, model size (the output size).
      num_layers: Transformer layers.
      num_heads: attention heads (D divisible by it).
      ffn_dim: feed-forward hidden size.
      chunk_size: attention chunk in output (subsampled) frames (>= 1; 1 = strictly causal).
      left_context: output frames before a chunk that its frames may attend to (>= 0).
      max_relative_distance: clipping of the relative position bias (frames).
      subsampling_channels: conv channels of the subsampling front end.
      subsampling_factor: frame-rate reduction (power of two).
      dropout: dropout everywhere.
      norm: "layer" or "batch", the normalisation after the subsampling.
      feature_norm: normalisation of the input features, "none" or "online_cmn" (each
        utterance's causal running mean subtracted; see `asrtools.nn.norm.build_feature_norm`).
      gating: "none", "arbitrator" or "random" (module docstring).
      arbitrator_dim: arbitrator hidden units (0: one linear map).
      arbitrator_input: "block" (the sub-block's normalised input) or "block+acoustic" (and
        the front-end output).
      arbitrator_init_bias: initial arbitrator logit (3.0: ~95% of frames run at the start,
        e.g. when fine-tuning a dense model).
      keep_rate_attention: "random": probability that an attention sub-block runs.
      keep_rate_ffn: "random": probability that a feed-forward sub-block runs.
      random_seed: "random": seed of the inference-time decisions.
      compute_weight: lambda of the compute penalty (0: none).
      compute_target: c_target of `lambda * max(0, C - c_target)` (0: `lambda * C`).
      compute_accounting: "kv_all" or "kv_skipped", the C the penalty uses.
      temperature_start: Gumbel-sigmoid temperature at step 0.
      temperature_end: temperature from `temperature_steps` on.
      temperature_steps: length of the geometric annealing (0: always the end value).
    """

    def __init__(
        self,
        input_dim: int,
        dim: int = 144,
        num_layers: int = 6,
        num_heads: int = 4,
        ffn_dim: int = 576,
        chunk_size: int = 8,
        left_context: int = 32,
        max_relative_distance: int = 64,
        subsampling_channels: int = 32,
        subsampling_factor: int = 4,
        dropout: float = 0.1,
        norm: str = "batch",
        feature_norm: str = "none",
        gating: str = "none",
        arbitrator_dim: int = 16,
        arbitrator_input: str = "block",
        arbitrator_init_bias: float = 3.0,
        keep_rate_attention: float = 1.0,
        keep_rate_ffn: float = 1.0,
        random_seed: int = 0,
        compute_weight: float = 0.0,
        compute_target: float = 0.0,
        compute_accounting: str = "kv_all",
        temperature_start: float = 1.0,
        temperature_end: float = 0.5,
        temperature_steps: int = 1000,
    ) -> None:
        super().__init__()
        self._check(num_layers, dim, ffn_dim, chunk_size, left_context, gating, arbitrator_input,
                    compute_weight, compute_target, compute_accounting, temperature_start, temperature_end,
                    temperature_steps)
        self.subsampling = CausalConv2dSubsampling(
            input_dim, dim, channels=subsampling_channels, factor=subsampling_factor, dropout=dropout,
            feature_norm=feature_norm,
        )
        self.input_norm = SequenceNorm(dim, norm)
        gate_input = 2 * dim if arbitrator_input == "block+acoustic" else dim

        def make_gate(keep_rate: float) -> Optional[FrameGate]:
            if gating == "none":
                return None
            return FrameGate(gating, gate_input, arbitrator_dim, arbitrator_init_bias, keep_rate)

        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ffn_dim, chunk_size, left_context, max_relative_distance, dropout,
                             make_gate(keep_rate_attention), make_gate(keep_rate_ffn))
            for _ in range(num_layers)
        )
        self.random_seed = random_seed
        self.norm_out = nn.LayerNorm(dim)
        self.dim = dim
        self.chunk_size = chunk_size
        self.left_context = left_context
        self.gating = gating
        self.use_acoustic = gating == "arbitrator" and arbitrator_input == "block+acoustic"
        self.compute_weight = compute_weight
        self.compute_target = compute_target
        self.compute_accounting = compute_accounting
        self.temperature_schedule = (temperature_start, temperature_end, temperature_steps)
        self.output_dim = dim
        self.subsampling_factor = subsampling_factor
        self.chunk_frames_multiple = chunk_size * subsampling_factor
        self._num_subsampling_states = len(self.subsampling.init_states(1))
        window = left_context + chunk_size
        arbitrator = 0 if gating != "arbitrator" else 2 * self.layers[0].attention_gate.flops_per_frame()
        self.layer_flops = SubBlockFlops(4 * dim * dim, 4 * dim * window, 4 * dim * dim, 4 * dim * ffn_dim, arbitrator)
        self._front_end_flops: Optional[float] = None
        self._meter: Optional[ComputeMeter] = None
        self._train_gates: Optional[Tuple[List[List[Optional[torch.Tensor]]], torch.Tensor]] = None

    @staticmethod
    def _check(num_layers, dim, ffn_dim, chunk_size, left_context, gating, arbitrator_input, compute_weight,
               compute_target, compute_accounting, temperature_start, temperature_end, temperature_steps) -> None:
        name = "encoder transformer"
        if num_layers < 1 or dim < 1 or ffn_dim < 1:
            raise ConfigError(f"{name}: num_layers, dim and ffn_dim must be >= 1")
        if chunk_size < 1 or left_context < 0:
            raise ConfigError(f"{name}: chunk_size {chunk_size} must be >= 1 and left_context {left_context} >= 0")
        for value, known, what in ((gating, GATINGS, "gating"), (arbitrator_input, ARBITRATOR_INPUTS, "arbitrator_input"),
                                   (compute_accounting, ACCOUNTINGS, "compute_accounting")):
            if value not in known:
                raise ConfigError(f"{name}: {what} {value!r} is unknown (known: {', '.join(known)})")
        if compute_weight < 0 or not 0.0 <= compute_target < 1.0:
            raise ConfigError(f"{name}: compute_weight {compute_weight} must be >= 0 and compute_target "
                              f"{compute_target} in [0, 1)")
        if compute_weight > 0 and gating != "arbitrator":
            raise ConfigError(f"{name}: compute_weight > 0 needs gating: arbitrator (nothing else learns to skip)")
        if temperature_start <= 0 or temperature_end <= 0 or temperature_steps < 0:
            raise ConfigError(f"{name}: temperatures must be > 0 and temperature_steps >= 0")

    # ------------------------------------------------------------------ interface

    @property
    def is_causal(self) -> bool:
        """Chunked attention with bounded left context always streams exactly."""
        return True

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """(B,) int64 encoder output frames for (B,) int64 input frames."""
        return self.subsampling.output_lengths(x_lens)

    def gates(self) -> List[FrameGate]:
        """Every gate, layer by layer (attention, then feed-forward)."""
        return [g for layer in self.layers for g in (layer.attention_gate, layer.ffn_gate) if g is not None]

    def force_gates(self, value: Optional[bool]) -> None:
        """Every frame runs every sub-block (True), none does (False), or the gates decide (None)."""
        for gate in self.gates():
            gate.forced = value

    def set_training_progress(self, step: int, epoch: int) -> None:
        """Anneal the Gumbel-sigmoid temperature geometrically from start to end."""
        start, end, steps = self.temperature_schedule
        progress = 1.0 if steps == 0 else min(step / steps, 1.0)
        temperature = start * (end / start) ** progress
        for gate in self.gates():
            gate.temperature = temperature

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode whole utterances (one call from the empty streaming state).

        Args:
          x: (B, T, F) padded features.
          x_lens: (B,) int64 valid frames.

        Returns:
          out: (B, T // subsampling_factor, D); out_lens: (B,) int64.
        """
        hidden, out_lens = self.subsampling(x, x_lens)
        hidden = self.input_norm(hidden, lengths_to_mask(out_lens, hidden.size(1)))
        batch = x.size(0)
        seen = torch.zeros(batch, dtype=torch.int64, device=x.device)
        caches = [self._empty_cache(batch, x.device) for _ in self.layers]
        hidden, _ = self._encode(hidden, out_lens, seen, caches)
        return hidden, out_lens

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """Subsampling caches, frames seen (B,), then [keys, values] (B, L, D) per layer."""
        states = self.subsampling.init_states(batch_size, device)
        states.append(torch.zeros(batch_size, dtype=torch.int64, device=device))
        for _ in self.layers:
            states += self._empty_cache(batch_size, device)
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
        hidden, out_lens, sub_states, seen, layer_states = chunked_front_end(self, "transformer", chunk,
                                                                              chunk_lens, states)
        if hidden.size(1) == 0:
            return hidden, out_lens, sub_states + [seen] + layer_states
        caches = [layer_states[2 * i : 2 * i + 2] for i in range(len(self.layers))]
        hidden, caches = self._encode(hidden, out_lens, seen, caches)
        new_states = [t for cache in caches for t in cache]
        return hidden, out_lens, sub_states + [seen + hidden.size(1)] + new_states

    # ------------------------------------------------------------------ the layers

    def _empty_cache(self, batch_size: int, device: torch.device) -> List[torch.Tensor]:
        return [torch.zeros(batch_size, self.left_context, self.dim, device=device) for _ in range(2)]

    def _encode(self, hidden: torch.Tensor, out_lens: torch.Tensor, seen: torch.Tensor,
                caches: List[List[torch.Tensor]]) -> Tuple[torch.Tensor, List[List[torch.Tensor]]]:
        """Run the layers on one call's frames (padded to whole chunks) after `seen` frames.

        Args:
          hidden: (B, T, D) front-end output of the call.
          out_lens: (B,) int64 valid frames of the call.
          seen: (B,) int64 frames of each stream before the call.
          caches: per layer [keys, values] (B, L, D) of the frames before the call.

        Returns:
          (B, T, D) output and the per-layer caches for the next call.
        """
        batch, frames = hidden.size(0), hidden.size(1)
        hidden = nn.functional.pad(hidden, (0, 0, 0, (-frames) % self.chunk_size))
        padded = hidden.size(1)
        steps = torch.arange(padded, device=hidden.device)
        key_pos = torch.arange(-self.left_context, padded, device=hidden.device)
        valid = lengths_to_mask(out_lens, padded)
        ctx = _CallContext(
            valid=valid,
            key_valid=(key_pos[None, :] + seen[:, None] >= 0) & (key_pos[None, :] < out_lens[:, None]),
            positions=seen[:, None] + steps[None, :],
            acoustic=hidden if self.use_acoustic else None,
            uniform=None,
            meter=None if self.training else self._meter_for(batch, hidden.device),
        )
        if not self.training:
            ctx.num_valid = int(out_lens.clamp(max=padded).sum())
        if self.gating == "random" and not self.training:
            gate_ids = torch.arange(2 * len(self.layers), device=hidden.device)
            ctx.uniform = hashed_uniform(ctx.positions[..., None] * gate_ids.numel() + gate_ids, self.random_seed)
        ctx.blocked = chunk_window_blocked(ctx.key_valid, self.chunk_size, self.left_context)
        if ctx.meter is not None:
            ctx.meter.add_frames(valid)
        gates, new_caches = [], []
        for index, layer in enumerate(self.layers):
            hidden, keys_values, layer_gates = layer(hidden, ctx, caches[index], index)
            keep = keys_values[0].size(1) - self.left_context
            new_caches.append([keys_values[0][:, keep:], keys_values[1][:, keep:]])
            gates.append(layer_gates)
        self._train_gates = (gates, valid) if self.training and self.gating != "none" else None
        return self.norm_out(hidden[:, :frames]), new_caches

    # ------------------------------------------------------------------ compute

    def _meter_for(self, batch_size: int, device: torch.device) -> Optional[ComputeMeter]:
        if self._meter is not None and self._meter.batch_size != batch_size:
            raise ConfigError(f"encoder transformer: compute counting was reset for {self._meter.batch_size} "
                              f"streams but a call has {batch_size}")
        return self._meter

    def reset_compute(self, batch_size: int) -> None:
        """Count executed sub-blocks of `batch_size` new streams from now on (inference)."""
        device = self.norm_out.weight.device
        names = [f"{i}.{part}" for i in range(len(self.layers)) for part in SUB_BLOCKS]
        self._meter = ComputeMeter(names, batch_size, device)

    def stop_counting(self) -> None:
        """Stop counting (nothing is counted until the next `reset_compute`)."""
        self._meter = None

    def front_end_flops_per_frame(self) -> float:
        """FLOPs of the subsampling front end per output frame (torch's FLOP counter, measured once)."""
        if self._front_end_flops is None:
            from torch.utils.flop_counter import FlopCounterMode

            frames = 8
            x = torch.zeros(1, frames * self.subsampling_factor, self.subsampling.input_dim,
                            device=self.norm_out.weight.device)
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                self.subsampling(x, torch.tensor([x.size(1)], device=x.device))
            self._front_end_flops = counter.get_total_flops() / frames
        return self._front_end_flops

    def compute_counts(self) -> Optional[List[Dict[str, object]]]:
        """Per stream since `reset_compute`: frames, executed frames and FLOPs (asrtools.models.compute)."""
        if self._meter is None:
            return None
        records = self._meter.stream_counts()
        cost, front = self.layer_flops, self.front_end_flops_per_frame()
        for record in records:
            frames, executed = record["frames"], record["executed_frames"]
            layers = [(executed[f"{i}.attention"], executed[f"{i}.ffn"]) for i in range(len(self.layers))]
            record["flops"] = {
                "front_end": front * frames,
                "layers": sum(cost.executed(frames, a, f, "kv_all") for a, f in layers),
                "layers_kv_skipped": sum(cost.executed(frames, a, f, "kv_skipped") for a, f in layers),
                "dense_layers": cost.dense * frames * len(self.layers),
            }
        return records

    def _layer_fractions(self) -> Optional[Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """From the last training forward: per-layer executed FLOPs fraction (differentiable),
        the stack's C, and the executed fractions of attention and FFN frames."""
        if self._train_gates is None:
            return None
        gates, valid = self._train_gates
        weights = valid.to(gates[0][0].dtype if gates[0][0] is not None else torch.float32)
        frames = weights.sum().clamp(min=1.0)
        cost, per_layer, attention_sum, ffn_sum = self.layer_flops, [], 0.0, 0.0
        for attention_gate, ffn_gate in gates:
            attention = frames if attention_gate is None else (attention_gate * weights).sum()
            ffn = frames if ffn_gate is None else (ffn_gate * weights).sum()
            per_layer.append(cost.executed(frames, attention, ffn, self.compute_accounting) / (cost.dense * frames))
            attention_sum, ffn_sum = attention_sum + attention, ffn_sum + ffn
        total = torch.stack(per_layer).mean()
        layers = len(gates)
        return per_layer, total, attention_sum / (layers * frames), ffn_sum / (layers * frames)

    def auxiliary_losses(self) -> Dict[str, torch.Tensor]:
        """`compute_penalty` = lambda * max(0, C - c_target) of the last training forward."""
        fractions = self._layer_fractions()
        if fractions is None or self.compute_weight == 0:
            return {}
        total = fractions[1]
        return {"compute_penalty": self.compute_weight * torch.relu(total - self.compute_target)}

    def training_statistics(self) -> Dict[str, float]:
        """C (`compute`), executed attention / FFN frame fractions and C per layer."""
        fractions = self._layer_fractions()
        if fractions is None:
            return {}
        per_layer, total, attention, ffn = (_detached(f) for f in fractions)
        stats = {"compute": total, "compute_attention": attention, "compute_ffn": ffn}
        stats.update({f"compute_layer{i}": value for i, value in enumerate(per_layer)})
        return stats


def _detached(value):
    """A float, or a list of floats, from (lists of) tensors or numbers."""
    if isinstance(value, list):
        return [_detached(v) for v in value]
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
