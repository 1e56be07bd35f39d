"""Learning-rate schedules with a linear warm-up: Eden-like, Noam, constant.

- eden (icefall's Eden, for AdamW):
  `lr = peak * warmup(step) * ((step^2 + lr_steps^2) / lr_steps^2)^-0.25
                           * ((epoch^2 + lr_epochs^2) / lr_epochs^2)^-0.25`
- noam: `lr = peak * min((step + 1) / warmup_steps, sqrt(warmup_steps / (step + 1)))`
- constant: `lr = peak * warmup(step)`

with `warmup(step) = min(1, (step + 1) / warmup_steps)` and `epoch` counted from 0. The
state is two counters, saved in checkpoints as plain ints.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List

import torch

from asrtools.training.config import OptimConfig


class LrSchedule:
    """Sets the learning rate of every parameter group of `optimizer` from step and epoch.

    Args:
      optimizer: its groups' current `lr` is taken as the peak learning rate.
      config: schedule kind and lengths.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: OptimConfig) -> None:
        self.optimizer = optimizer
        self.config = config
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self.epoch = 0
        self._apply()

    def factor(self) -> float:
        """The multiplier of the peak learning rate at the current step and epoch."""
        cfg = self.config
        step = self.step_count
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
        if cfg.scheduler == "noam":
            if cfg.warmup_steps == 0:
                return 1.0 / math.sqrt(step + 1)
            return min(warm, math.sqrt(cfg.warmup_steps / (step + 1)))
        if cfg.scheduler == "eden":
            step_factor = ((step**2 + cfg.lr_steps**2) / cfg.lr_steps**2) ** -0.25
            epoch_factor = ((self.epoch**2 + cfg.lr_epochs**2) / cfg.lr_epochs**2) ** -0.25
            return warm * step_factor * epoch_factor
        return warm

    def step(self) -> None:
        """Call after each optimizer step."""
        self.step_count += 1
        self._apply()

    def set_epoch(self, epoch: int) -> None:
        """Call at the start of each epoch with the 0-based epoch index."""
        self.epoch = epoch
        self._apply()

    def get_last_lr(self) -> List[float]:
        """The learning rate of each parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"step_count": self.step_count, "epoch": self.epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.epoch = int(state["epoch"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()

    def _apply(self) -> None:
        factor = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
