"""Parameter regularisers the trainer adds to any task's loss (`asrtools.training.task.Regularizer`).

`QuadraticAnchor` is elastic weight consolidation (Kirkpatrick et al. 2017) and its plain
variant: `(lam / 2) * sum_i F_i (theta_i - theta*_i)^2` over the anchored parameters, with
`F` a diagonal Fisher (EWC) or 1 everywhere (L2 to the anchor). Parameters without an anchor
(e.g. a new cohort embedding) are free.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError
from asrtools.training.task import Regularizer

PENALTIES = ("none", "ewc", "l2")


class QuadraticAnchor(Regularizer):
    """`(lam / 2) * sum_i F_i (theta_i - theta*_i)^2` (EWC; `fisher=None` gives L2 to the anchor).

    Args:
      anchor: parameter name -> theta* (the base model's values), as in `model.named_parameters()`.
      lam: lambda, the penalty's weight (>= 0).
      fisher: parameter name -> F (same shapes as `anchor`, >= 0); None means F = 1.
      name: how the term is logged and fingerprinted ("ewc", "l2").
    """

    def __init__(self, anchor: Mapping[str, torch.Tensor], lam: float,
                 fisher: Optional[Mapping[str, torch.Tensor]] = None, name: str = "ewc") -> None:
        if lam < 0:
            raise ConfigError(f"{name}: lambda must be >= 0, got {lam}")
        self.name = name
        self.lam = float(lam)
        self.anchor = {k: v.detach().to(torch.float32) for k, v in anchor.items()}
        if fisher is not None:
            check_same_shapes(self.anchor, fisher, "the Fisher")
        self.fisher = None if fisher is None else {k: fisher[k].detach().to(torch.float32) for k in self.anchor}
        self._cache: Optional[List[Tuple[nn.Parameter, torch.Tensor, Optional[torch.Tensor]]]] = None

    def params(self) -> Dict[str, Any]:
        return {"kind": self.name, "lambda": self.lam, "fisher": self.fisher is not None}

    def _terms(self, model: nn.Module) -> List[Tuple[nn.Parameter, torch.Tensor, Optional[torch.Tensor]]]:
        """(parameter, theta*, F or None) per anchored parameter, moved to the parameter's device once."""
        if self._cache is None:
            params = dict(model.named_parameters())
            missing = sorted(set(self.anchor) - set(params))
            if missing:
                raise ConfigError(f"{self.name}: the model has no parameter {missing[0]} of the anchor")
            check_same_shapes(self.anchor, {k: params[k] for k in self.anchor}, "the model")
            self._cache = [(params[k], self.anchor[k].to(params[k].device),
                            None if self.fisher is None else self.fisher[k].to(params[k].device))
                           for k in sorted(self.anchor)]
        return self._cache

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = None
        for param, star, weight in self._terms(model):
            diff = (param - star) ** 2
            term = (diff if weight is None else weight * diff).sum()
            total = term if total is None else total + term
        if total is None:
            raise ConfigError(f"{self.name}: no parameter is anchored")
        return 0.5 * self.lam * total


def check_same_shapes(reference: Mapping[str, torch.Tensor], other: Mapping[str, Any], what: str) -> None:
    """`ConfigError` naming the first parameter whose shape in `other` differs from `reference`."""
    for key, value in reference.items():
        if key not in other:
            raise ConfigError(f"{what} has no parameter {key}")
        if tuple(other[key].shape) != tuple(value.shape):
            raise ConfigError(f"{what}: parameter {key} has shape {tuple(other[key].shape)}, "
                              f"expected {tuple(value.shape)}")
