"""Mitigation fine-tuning runs built from a baseline checkpoint (the `asrtools mitigate` stages).

Every run is an ordinary `train` stage (`asrtools.training.trainer.run_training`) of the
`mitigation` task (`asrtools.training.tasks.mitigation`): the model is the baseline's
architecture initialised from its weights (`init_from`), the schedule and budget come from
one shared YAML (`max_steps` is the budget, the same for every method), and what differs is
set here:

- `finetune`: training data `general` / `cohorts` / `pooled`, penalty `none` / `ewc` / `l2`
  (`QuadraticAnchor` anchored at the baseline; EWC needs a Fisher of that same baseline);
- `oversample`: general data with the worst cohorts' cuts repeated `factor` times;
- `cohort-input`: general data, the encoder wrapped by `cohort_input` (labels: the
  assignments' ranking).
The YAML must not hold a `model:` section (the model is the baseline's).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from asrtools.config import from_dict, merge, parse_overrides, read_yaml
from asrtools.data.assignments import Assignments, read_assignments
from asrtools.errors import ConfigError, DataError
from asrtools.fairness.mitigation.fisher import FISHER_NAME, check_fisher_baseline, load_fisher
from asrtools.models.loading import TRANSDUCER, load_model
from asrtools.training.regularizers import QuadraticAnchor
from asrtools.training.task import Regularizer, TrainPaths
from asrtools.training.tasks.mitigation import ASSIGNMENTS_INPUT, MitigationTrainConfig

FISHER_INPUT = "fisher"


@dataclasses.dataclass
class Baseline:
    """The checkpoint every mitigation starts from.

    Attributes:
      path: the checkpoint file.
      model_config: its architecture (`model_config_to_dict` form).
      weights: its state dict.
      vocab_size: V.
    """

    path: Path
    model_config: Dict[str, Any]
    weights: Dict[str, Any]
    vocab_size: int

    @classmethod
    def load(cls, path: Path) -> "Baseline":
        from asrtools.models.build import model_config_to_dict

        try:
            loaded = load_model(path, expect=(TRANSDUCER,))
        except DataError as err:
            raise ConfigError(f"--baseline: {err}") from None
        return cls(Path(path), model_config_to_dict(loaded.config), loaded.model.state_dict(), int(loaded.vocab_size))

    def parameter_names(self) -> List[str]:
        """Names of the baseline model's parameters (not buffers), as `named_parameters` gives them."""
        from asrtools.models.build import build_model, model_config_from_dict

        model = build_model(model_config_from_dict(self.model_config, str(self.path)), self.vocab_size)
        return [name for name, _ in model.named_parameters()]


def mitigation_config(config_path: Optional[Path], overrides: Iterable[str], model_config: Dict[str, Any],
                      settings: Dict[str, Any]) -> MitigationTrainConfig:
    """The run's config: the shared YAML + `--set` overrides + the method's `settings`, with the model given.

    Args:
      config_path: the shared mitigation YAML (None: defaults).
      overrides: `key.sub=value` strings.
      model_config: the architecture (the baseline's, possibly wrapped).
      settings: the method's choices as a nested mapping, e.g. `{"mitigation": {"data": "cohorts"}}`.
    """
    source = str(config_path) if config_path is not None else "config"
    data = read_yaml(Path(config_path)) if config_path is not None else {}
    data = merge(merge(data, parse_overrides(overrides)), settings)
    if "model" in data:
        raise ConfigError(f"{source}: the model comes from --baseline; remove the model section")
    if data.get("task", "mitigation") != "mitigation":
        raise ConfigError(f"{source}: task must be mitigation (or unset), got {data['task']!r}")
    return from_dict(MitigationTrainConfig, {**data, "task": "mitigation", "model": model_config}, source)


def penalty(kind: str, lam: float, baseline: Baseline, fisher_dir: Optional[Path]) -> List[Regularizer]:
    """The regularisers of `--penalty`: none, EWC (Fisher of `baseline` from `fisher_dir`) or L2.

    Raises:
      ConfigError: EWC without a Fisher, a Fisher of another baseline or model, lambda < 0.
    """
    if kind == "none":
        if fisher_dir is not None:
            raise ConfigError("--fisher is only used with --penalty ewc")
        return []
    names = baseline.parameter_names()
    anchor = {name: baseline.weights[name] for name in names}
    if kind == "l2":
        return [QuadraticAnchor(anchor, lam, None, "l2")]
    if kind != "ewc":
        raise ConfigError(f"--penalty {kind!r} is unknown (none, ewc, l2)")
    if fisher_dir is None:
        raise ConfigError("--penalty ewc needs --fisher (the `asrtools mitigate fisher` directory of this baseline)")
    fisher, info = load_fisher(fisher_dir)
    check_fisher_baseline(info, fisher_dir, baseline.path)
    return [QuadraticAnchor(anchor, lam, fisher, "ewc")]


def check_assignments(path: Optional[Path], config: MitigationTrainConfig, cohort_input: bool) -> Optional[Assignments]:
    """Read `--assignments` when the run needs it (and check worst_k against its ranking)."""
    needed = config.mitigation.needs_cohorts or cohort_input
    if path is None:
        if needed:
            raise ConfigError("this mitigation needs --assignments (the training speakers' cohorts)")
        return None
    assignments = read_assignments(path)
    if config.mitigation.needs_cohorts:
        assignments.worst(config.mitigation.worst_k)
    return assignments


def train_paths(cuts_train: Path, cuts_dev: Path, bpe_model: Path, exp_dir: Path, baseline: Path,
                assignments: Optional[Path], fisher_dir: Optional[Path]) -> TrainPaths:
    """The run's inputs (all fingerprinted): cuts, BPE, the baseline as `init_from`, cohorts, Fisher."""
    extra: Dict[str, Path] = {}
    if assignments is not None:
        extra[ASSIGNMENTS_INPUT] = Path(assignments)
    if fisher_dir is not None:
        extra[FISHER_INPUT] = Path(fisher_dir) / FISHER_NAME
    return TrainPaths(cuts_train, cuts_dev, bpe_model, exp_dir, init_from=baseline, extra_inputs=extra)

