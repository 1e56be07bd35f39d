"""Per-frame run/skip gates for residual sub-blocks (compute-cost amortisation, METHODS.md §2).

A `FrameGate` decides, for every frame, whether a residual sub-block `x + f(x)` runs (gate 1)
or is skipped (gate 0: the residual path carries `x` through and `f` costs nothing):

- `arbitrator`: a tiny learned network (Linear -> ReLU -> Linear -> logit, or one Linear
  without a hidden layer) on the frame's features (e.g. the sub-block's normalised input).
  Training uses Gumbel-sigmoid gates with straight-through hard decisions: the forward value
  is the hard decision `1[logit + logistic noise > 0]` (a Bernoulli sample with
  p = sigmoid(logit)), the gradient that of `sigmoid((logit + noise) / temperature)`.
  Inference uses the deterministic `logit > 0`.
- `random`: input-independent skipping at a fixed keep rate (the random-skipping baseline).
  Training draws from torch's global RNG (checkpointed by the trainer); inference compares a
  hash of the frame's absolute position in its stream (`hashed_uniform`, computed by the
  caller) with the keep rate, so the same frame gets the same decision offline and chunk by
  chunk in streaming.

`forced` (True / False) overrides either kind: every frame runs / none does.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from asrtools.errors import ConfigError

#: The kinds of gate.
GATE_KINDS = ("arbitrator", "random")

_HASH_MASK = (1 << 31) - 1


def hashed_uniform(positions: torch.Tensor, seed: int) -> torch.Tensor:
    """Deterministic pseudo-random numbers in [0, 1) from integer positions.

    A 31-bit integer mixing function (multiply / xor-shift rounds; all products stay below
    2^62, so int64 arithmetic never overflows).

    Args:
      positions: int64 tensor of any shape (e.g. (B, T) absolute frame indices).
      seed: distinguishes gates that see the same positions.

    Returns:
      float32 tensor of the same shape.
    """
    h = (positions.to(torch.int64) * 0x5BD1E995 + (seed * 0x27D4EB2F + 0x165667B1)) & _HASH_MASK
    for multiplier in (0x45D9F3B, 0x119DE1F3):
        h = h ^ (h >> 15)
        h = (h * multiplier) & _HASH_MASK
    h = h ^ (h >> 13)
    return h.to(torch.float32) / float(1 << 31)


class FrameGate(nn.Module):
    """Run/skip decision of one sub-block for every frame (see the module docstring).

    Args:
      kind: "arbitrator" or "random".
      input_dim: C, feature size the arbitrator reads (unused for "random").
      hidden_dim: arbitrator hidden units (0: a single linear map to the logit).
      init_bias: initial logit bias (positive: starts mostly open, e.g. from a dense model).
      keep_rate: "random": probability that a frame runs.

    Attributes:
      temperature: Gumbel-sigmoid temperature of the straight-through gradient (training).
      forced: None (decide), True (every frame runs) or False (every frame is skipped).
    """

    def __init__(
        self,
        kind: str,
        input_dim: int = 0,
        hidden_dim: int = 16,
        init_bias: float = 3.0,
        keep_rate: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in GATE_KINDS:
            raise ConfigError(f"gate kind {kind!r} is unknown (known: {', '.join(GATE_KINDS)})")
        if kind == "random" and not 0.0 <= keep_rate <= 1.0:
            raise ConfigError(f"gate keep_rate {keep_rate} must lie in [0, 1]")
        if kind == "arbitrator" and (input_dim < 1 or hidden_dim < 0):
            raise ConfigError(f"arbitrator input_dim {input_dim} must be >= 1 and hidden_dim {hidden_dim} >= 0")
        self.kind = kind
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.keep_rate = keep_rate
        self.temperature = 1.0
        self.forced: Optional[bool] = None
        self.net: Optional[nn.Sequential] = None
        if kind == "arbitrator":
            if hidden_dim > 0:
                layers = [nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1)]
            else:
                layers = [nn.Linear(input_dim, 1)]
            self.net = nn.Sequential(*layers)
            nn.init.constant_(layers[-1].bias, init_bias)

    def flops_per_frame(self) -> int:
        """FLOPs (2 x multiply-adds) of one decision; 0 for "random" (a hash, no products)."""
        if self.kind != "arbitrator":
            return 0
        if self.hidden_dim > 0:
            return 2 * (self.input_dim * self.hidden_dim + self.hidden_dim)
        return 2 * self.input_dim

    def forward(self, features: Optional[torch.Tensor], uniform: torch.Tensor) -> torch.Tensor:
        """Gate values of every frame (training: relaxed; evaluation: `decide`).

        Args:
          features: (B, T, C) what the arbitrator reads (None for "random").
          uniform: (B, T) the frames' `hashed_uniform` numbers ("random" at inference; only
            the shape and device are used otherwise).

        Returns:
          (B, T) float 0/1 decisions; in training an arbitrator's values carry the
          straight-through gradient of the relaxed gate.
        """
        if not self.training or self.forced is not None:
            return self.decide(features, uniform).float()
        if self.kind == "random":
            return (torch.rand(uniform.shape, device=uniform.device) < self.keep_rate).float()
        assert self.net is not None and features is not None
        logits = self.net(features).squeeze(-1)
        noise = torch.rand_like(logits).clamp(1e-6, 1.0 - 1e-6)
        noisy = logits + torch.log(noise) - torch.log1p(-noise)
        soft = torch.sigmoid(noisy / self.temperature)
        hard = (noisy > 0).to(soft.dtype)
        return hard + (soft - soft.detach())  # exactly 0/1, with the relaxed gate's gradient

    def decide(self, features: Optional[torch.Tensor], uniform: torch.Tensor) -> torch.Tensor:
        """Inference decisions: (B, T) bool, True where the sub-block runs (arguments as `forward`)."""
        if self.forced is not None:
            return torch.full(uniform.shape, self.forced, dtype=torch.bool, device=uniform.device)
        if self.kind == "random":
            return uniform < self.keep_rate
        assert self.net is not None and features is not None
        return self.net(features).squeeze(-1) > 0

    def extra_repr(self) -> str:
        if self.kind == "random":
            return f"random, keep_rate={self.keep_rate}"
        return f"arbitrator, input_dim={self.input_dim}, hidden_dim={self.hidden_dim}"
