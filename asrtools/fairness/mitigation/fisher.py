"""The diagonal empirical Fisher of a baseline transducer: EWC's parameter importances.

`F_i = (1/N) sum_u (d l_u / d theta_i)^2` over N general training utterances u, each loss
`l_u` computed alone (no padding, model in eval mode, so no dropout) and normalised like the
training loss: the post-warm-up mix `simple_loss_scale * simple + pruned` per encoder
frame. With that normalisation `(lambda / 2) sum_i F_i (theta_i - theta*_i)^2` at lambda = 1
is the quadratic estimate of how much the per-frame general-data loss rises (the empirical
Fisher standing in for its Hessian), so lambda reads as the weight of forgetting against
the cohort data's loss.

Artifacts of the `asrtools mitigate fisher` stage:
  fisher.pt    {parameter name: F (float32, the parameter's shape)}; `torch.load(weights_only=True)`
  fisher.json  baseline (path, sha256), num_utterances, seed, loss settings, summary
               statistics, provenance
A fine-tuning run refuses a Fisher estimated on another baseline (`check_fisher_baseline`).
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from torch import nn

from asrtools.config import to_dict
from asrtools.data.cuts import AsrDataset, check_features, load_cuts
from asrtools.errors import ConfigError, DataError
from asrtools.models.checkpoint import load_checkpoint, save_checkpoint
from asrtools.models.transducer import Transducer
from asrtools.pipeline import atomic_write_json, hash_file
from asrtools.text.tokenizer import Tokenizer
from asrtools.training.config import LossConfig
from asrtools.training.data import encoder_output_lengths, filter_trainable
from asrtools.training.tasks.transducer import transducer_losses
from asrtools.utils.provenance import provenance

FISHER_NAME = "fisher.pt"
INFO_NAME = "fisher.json"


def diagonal_fisher(model: nn.Module, utterance_losses: Iterable[torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], int, int]:
    """Mean squared gradient of each trainable parameter over per-utterance losses.

    Args:
      model: the model the losses are computed with (its gradients are overwritten).
      utterance_losses: scalar losses, one per utterance, each a function of `model`'s
        parameters; a non-finite one is skipped.

    Returns:
      ({name: F (float32, the parameter's shape)}, utterances used, utterances skipped).

    Raises:
      DataError: no finite loss at all.
    """
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    sums = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params}
    used = skipped = 0
    for loss in utterance_losses:
        if not bool(torch.isfinite(loss)):
            skipped += 1
            continue
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in params:
            if p.grad is not None:
                sums[name] += p.grad.detach().to(torch.float64) ** 2
        used += 1
    model.zero_grad(set_to_none=True)
    if used == 0:
        raise DataError(f"no utterance gave a finite loss ({skipped} skipped): the Fisher is undefined")
    return {name: (s / used).to(torch.float32) for name, s in sums.items()}, used, skipped


def transducer_utterance_losses(model: Transducer, cuts: Iterable[Cut], tokenizer: Tokenizer, loss: LossConfig,
                                device: torch.device) -> Iterator[torch.Tensor]:
    """Per-frame post-warm-up training loss of each cut alone (see the module docstring)."""
    dataset = AsrDataset()
    for cut in cuts:
        losses = transducer_losses(model, dataset[CutSet.from_cuts([cut])], tokenizer, loss, device)
        yield (loss.simple_loss_scale * losses.simple + losses.pruned) / max(losses.num_frames, 1)


def choose_cuts(cuts: CutSet, count: int, seed: int) -> List[Cut]:
    """`count` cuts (all if fewer) drawn without replacement with `seed`, in id order."""
    ordered = sorted(cuts, key=lambda c: c.id)
    chosen = random.Random(seed).sample(ordered, min(count, len(ordered)))
    return sorted(chosen, key=lambda c: c.id)


def fisher_params(num_utterances: int, seed: int, loss: LossConfig, min_duration: float,
                  max_duration: float) -> Dict[str, Any]:
    """What the Fisher depends on besides its input files (the stage's fingerprinted parameters)."""
    return {"num_utterances": num_utterances, "seed": seed, "loss": to_dict(loss),
            "min_cut_duration": min_duration, "max_cut_duration": max_duration}


def estimate_fisher(model: Transducer, cuts_path: Path, tokenizer: Tokenizer, params: Dict[str, Any],
                    feature_dim: int, device: torch.device) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The Fisher of `model` on `params["num_utterances"]` trainable cuts of `cuts_path`, and its summary."""
    loss = LossConfig(**params["loss"])
    cuts = load_cuts(cuts_path, "cuts")
    check_features(cuts, feature_dim, "cuts")
    lengths = encoder_output_lengths(model.encoder, feature_dim)
    kept, _ = filter_trainable(cuts, tokenizer.encode, lengths, params["min_cut_duration"], params["max_cut_duration"])
    chosen = choose_cuts(kept, params["num_utterances"], params["seed"])
    model.eval()
    fisher, used, skipped = diagonal_fisher(model, transducer_utterance_losses(model, chosen, tokenizer, loss, device))
    flat = torch.cat([f.flatten() for f in fisher.values()])
    summary = {"num_utterances": used, "skipped_non_finite": skipped, "available_cuts": len(kept),
               "parameters": int(flat.numel()), "mean": float(flat.mean()), "max": float(flat.max()),
               "median": float(flat.median())}
    return fisher, summary


def write_fisher(out_dir: Path, fisher: Dict[str, torch.Tensor], baseline: Path, params: Dict[str, Any],
                 summary: Dict[str, Any]) -> None:
    """Write fisher.pt and fisher.json (with the baseline's sha256) atomically."""
    save_checkpoint(Path(out_dir) / FISHER_NAME, {k: v.cpu() for k, v in fisher.items()})
    atomic_write_json(Path(out_dir) / INFO_NAME, {
        "baseline": str(baseline), "baseline_sha256": hash_file(baseline), **params, **summary,
        "provenance": provenance()})


def load_fisher(fisher_dir: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """fisher.pt and fisher.json of a `mitigate fisher` stage directory.

    Raises:
      DataError: either file missing or unreadable, or a non-tensor / negative / non-finite entry.
    """
    fisher_dir = Path(fisher_dir)
    try:
        info = json.loads((fisher_dir / INFO_NAME).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{fisher_dir / INFO_NAME}: not readable ({err}); run `asrtools mitigate fisher`") from None
    fisher = load_checkpoint(fisher_dir / FISHER_NAME)
    for name, value in fisher.items():
        if not isinstance(value, torch.Tensor) or not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise DataError(f"{fisher_dir / FISHER_NAME}: entry {name} is not a finite non-negative tensor")
    return fisher, info


def check_fisher_baseline(info: Dict[str, Any], fisher_dir: Path, baseline: Path) -> None:
    """`ConfigError` unless the Fisher was estimated on exactly the checkpoint `baseline`."""
    digest = hash_file(baseline)
    if info.get("baseline_sha256") != digest:
        raise ConfigError(f"{fisher_dir}: the Fisher was estimated on {info.get('baseline')} "
                          f"(sha256 {str(info.get('baseline_sha256'))[:12]}), not on the baseline {baseline} "
                          f"(sha256 {digest[:12]}); rerun `asrtools mitigate fisher` with --baseline {baseline}")

