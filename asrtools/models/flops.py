"""Parameter and compute accounting for transducer models (`asrtools model info`).

FLOPs are counted as 2 x multiply-adds with `torch.utils.flop_counter.FlopCounterMode`
(matrix products, convolutions, attention) while the encoder runs on a random input of a
given duration; `nn.LSTM` layers, which that counter does not see, are counted
analytically from forward hooks: per frame and layer `4 H (D_in + H_out)` multiply-adds
(+ `H P` for a projection). Element-wise operations (activations, norms, softmax) are
not counted, as is usual for this measure.

A causal encoder is measured the way it is deployed, through `streaming_forward` chunk by
chunk (for chunked attention this is the real cost: the whole-utterance `forward` computes
the full T x T score matrix and masks it); the whole-utterance cost is reported too.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from asrtools.models.encoder import Encoder

#: Streaming measurements use chunks of at least this many input frames (320 ms at 10 ms).
MIN_CHUNK_FRAMES = 32


@dataclasses.dataclass
class ModuleCost:
    """One row of the cost table.

    Attributes:
      name: module path in the model (`encoder.frontend.local`).
      depth: nesting depth of the path (0 = the whole model).
      params: number of parameters.
      flops_per_second: FLOPs per second of audio (None when not measured).
    """

    name: str
    depth: int
    params: int
    flops_per_second: Optional[float]


@dataclasses.dataclass
class EncoderFlops:
    """FLOPs of an encoder per second of audio.

    Attributes:
      per_module: module path relative to the encoder ("" = the encoder) -> FLOPs/s.
      mode: "streaming" or "offline" (how `per_module` was measured).
      chunk_frames: input frames per streaming chunk (0 for offline).
      offline_total: FLOPs/s of the whole-utterance `forward`.
      seconds: duration of the measured input.
    """

    per_module: Dict[str, float]
    mode: str
    chunk_frames: int
    offline_total: float
    seconds: float

    @property
    def total(self) -> float:
        return self.per_module.get("", 0.0)


def lstm_flops(lstm: nn.LSTM, num_frames: int) -> int:
    """2 x multiply-adds of `lstm` over `num_frames` time steps (summed over the batch).

    Args:
      lstm: a unidirectional or bidirectional `nn.LSTM`.
      num_frames: frames processed (batch x time, or a packed sequence's data length).
    """
    hidden, proj = lstm.hidden_size, lstm.proj_size
    out = proj or hidden
    directions = 2 if lstm.bidirectional else 1
    macs, input_size = 0, lstm.input_size
    for _ in range(lstm.num_layers):
        per_direction = 4 * hidden * (input_size + out) + hidden * proj
        macs += directions * per_direction
        input_size = directions * out
    return 2 * macs * num_frames


class _FlopsByModule:
    """Attribute FLOPs to module paths with forward hooks around a `FlopCounterMode` run.

    A module's own FLOPs are the growth of the running total between its forward pre- and
    post-hook minus its called submodules' growth; they are credited to its path and every
    ancestor path, so a container is charged for its descendants even when the encoder
    drives them through another method (`streaming_forward`). An `nn.LSTM` whose ops the
    counter did not see gets `lstm_flops` added to the running total.
    """

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.counter = FlopCounterMode(display=False)
        self.per_module: Dict[str, float] = defaultdict(float)
        self._analytic = 0.0
        self._stack: List[List[float]] = []  # [start total, start counter total, children]

    def total(self) -> float:
        return float(self.counter.get_total_flops()) + self._analytic

    def run(self, fn: Callable[[], object]) -> Dict[str, float]:
        """Call `fn` and return FLOPs by module path ("" = the root, everything counted)."""
        handles = []
        for path, module in self.root.named_modules():
            handles.append(module.register_forward_pre_hook(self._pre_hook))
            handles.append(module.register_forward_hook(self._post_hook(path)))
        try:
            with torch.no_grad(), self.counter:
                fn()
        finally:
            for handle in handles:
                handle.remove()
        self.per_module[""] = self.total()
        return dict(self.per_module)

    def _pre_hook(self, _module: nn.Module, _inputs) -> None:
        self._stack.append([self.total(), float(self.counter.get_total_flops()), 0.0])

    def _post_hook(self, path: str):
        def hook(module: nn.Module, inputs, _output) -> None:
            start, counted_start, children = self._stack.pop()
            if isinstance(module, nn.LSTM) and self.counter.get_total_flops() == counted_start:
                data = inputs[0]
                packed = isinstance(data, nn.utils.rnn.PackedSequence)
                frames = data.data.size(0) if packed else data.shape[0] * data.shape[1]
                self._analytic += lstm_flops(module, frames)
            inclusive = self.total() - start
            if self._stack:
                self._stack[-1][2] += inclusive
            parts = path.split(".") if path else []
            for i in range(len(parts) + 1):
                self.per_module[".".join(parts[:i])] += inclusive - children

        return hook


def streaming_chunk_frames(encoder: Encoder) -> int:
    """The smallest valid streaming chunk of at least `MIN_CHUNK_FRAMES` input frames."""
    multiple = encoder.chunk_frames_multiple
    return multiple * max(1, -(-MIN_CHUNK_FRAMES // multiple))


def measure_encoder_flops(
    encoder: Encoder,
    input_dim: int,
    seconds: float = 10.0,
    frame_shift: float = 0.01,
    chunk_frames: Optional[int] = None,
) -> EncoderFlops:
    """FLOPs per second of audio of `encoder` on one random utterance.

    Args:
      encoder: the encoder (put in eval mode here).
      input_dim: F, feature size.
      seconds: duration of the measured utterance.
      frame_shift: seconds per input frame.
      chunk_frames: streaming chunk in input frames (default `streaming_chunk_frames`).

    Returns:
      The per-module streaming FLOPs/s (offline for a non-causal encoder) and the
      whole-utterance total.
    """
    encoder.eval()
    num_frames = max(1, round(seconds / frame_shift))
    x = torch.randn(1, num_frames, input_dim, generator=torch.Generator().manual_seed(0))
    x_lens = torch.tensor([num_frames])
    offline = _FlopsByModule(encoder).run(lambda: encoder(x, x_lens))
    scale = 1.0 / (num_frames * frame_shift)
    if not encoder.is_causal:
        per_second = {k: v * scale for k, v in offline.items()}
        return EncoderFlops(per_second, "offline", 0, per_second.get("", 0.0), seconds)
    chunk = chunk_frames or streaming_chunk_frames(encoder)

    def run_streaming() -> None:
        states = encoder.init_states(1, x.device)
        for start in range(0, num_frames, chunk):
            piece = x[:, start : start + chunk]
            _, _, states = encoder.streaming_forward(piece, torch.tensor([piece.size(1)]), states)

    streaming = _FlopsByModule(encoder).run(run_streaming)
    return EncoderFlops(
        {k: v * scale for k, v in streaming.items()}, "streaming", chunk, offline.get("", 0.0) * scale, seconds
    )


def cost_table(model: nn.Module, encoder_flops: EncoderFlops, encoder_name: str = "encoder", depth: int = 2) -> List[ModuleCost]:
    """Rows for `model` and its submodules down to `depth`, FLOPs for the encoder's.

    Args:
      model: the whole model (e.g. a `Transducer`) holding the encoder as `encoder_name`.
      encoder_flops: from `measure_encoder_flops`.
      encoder_name: attribute path of the encoder in `model`.
      depth: deepest module path shown (1 = the model's direct children).

    Returns:
      Rows in module order, then the whole model (name "total"; its FLOPs are the
      encoder's, since decoder and joiner costs depend on the number of tokens).
    """
    rows = []
    for path, module in model.named_modules():
        level = 0 if path == "" else path.count(".") + 1
        params = sum(p.numel() for p in module.parameters())
        if level > depth or params == 0:
            continue
        flops = None
        if path == encoder_name or path.startswith(encoder_name + "."):
            relative = path[len(encoder_name) + 1 :]
            flops = encoder_flops.per_module.get(relative, 0.0)
        rows.append(ModuleCost(path or "total", level, params, flops))
    if rows and rows[0].name == "total":
        total = rows.pop(0)
        total.flops_per_second = encoder_flops.total
        rows.append(total)
    return rows


def format_table(rows: List[ModuleCost]) -> str:
    """The rows as an aligned text table (module, params, GFLOPs per second of audio)."""
    width = max(len("module"), *(2 * row.depth + len(row.name) for row in rows))
    lines = [f"{'module':<{width}}  {'params':>12}  {'GFLOPs/s':>9}"]
    for row in rows:
        name = "  " * max(row.depth - 1, 0) + row.name
        flops = "-" if row.flops_per_second is None else f"{row.flops_per_second / 1e9:.3f}"
        lines.append(f"{name:<{width}}  {row.params:>12,}  {flops:>9}")
    return "\n".join(lines)


#: The JSON document of `asrtools model info --out-dir` (info.json), read by `asrtools report`.
INFO_SCHEMA, INFO_SCHEMA_VERSION = "asrtools.model_info", 1


def model_info(
    model: nn.Module,
    feature_dim: int,
    encoder_type: str,
    seconds: float = 10.0,
    frame_shift: float = 0.01,
    chunk_frames: Optional[int] = None,
    depth: int = 2,
) -> Tuple[Dict[str, object], List[ModuleCost]]:
    """Size and compute of a transducer: the body of info.json and the cost table.

    Args:
      model: the transducer (its `encoder` is measured on a seeded random input).
      feature_dim: F, input feature size.
      encoder_type: the registered encoder name.
      seconds, frame_shift, chunk_frames: as `measure_encoder_flops`.
      depth: deepest module level of the table.

    Returns:
      `(document, rows)`: the document holds `encoder`, `feature_dim`, `vocab_size`,
      `params` (whole model), `encoder_params`, `gflops_per_second` (encoder, streaming for
      a causal encoder), `offline_gflops_per_second`, `flops` (how it was measured) and
      `modules` (the rows); callers add `schema`, `source` and `provenance`.
    """
    flops = measure_encoder_flops(model.encoder, feature_dim, seconds, frame_shift, chunk_frames)
    rows = cost_table(model, flops, depth=depth)
    document: Dict[str, object] = {
        "encoder": encoder_type,
        "feature_dim": feature_dim,
        "vocab_size": int(model.vocab_size),
        "params": rows[-1].params,
        "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
        "gflops_per_second": flops.total / 1e9,
        "offline_gflops_per_second": flops.offline_total / 1e9,
        "flops": {"mode": flops.mode, "chunk_frames": flops.chunk_frames, "seconds": seconds,
                  "frame_shift": frame_shift, "counted": "2 x multiply-adds of the encoder"},
        "modules": [dataclasses.asdict(row) for row in rows],
    }
    return document, rows


def format_info(document: Dict[str, object], rows: List[ModuleCost], source: str) -> str:
    """The text report of `asrtools model info` (header, cost table, whole-utterance cost)."""
    flops = document["flops"]
    how = (f"streaming_forward in {flops['chunk_frames']}-frame chunks" if flops["mode"] == "streaming"
           else "whole-utterance forward")
    return "\n".join([
        f"{source}: encoder {document['encoder']}, feature_dim {document['feature_dim']}, "
        f"vocab {document['vocab_size']}",
        f"GFLOPs/s: encoder FLOPs (2 x MACs) per second of audio, {how} on a {flops['seconds']:g} s input",
        format_table(rows),
        f"encoder whole-utterance forward: {document['offline_gflops_per_second']:.3f} GFLOPs/s",
    ])
