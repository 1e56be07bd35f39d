"""Training batches: trainability filtering, lhotse samplers (optionally over an oversampled
cut set), loaders and sampler resume state.

The cut manifests themselves (reading, transcripts, the batch dataset) live in
`asrtools.data.cuts`, shared with decoding.
"""
from __future__ import annotations

import math
import random
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List, Tuple

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler

from asrtools.data.cuts import cut_text
from asrtools.errors import ConfigError, DataError


def filter_trainable(
    cuts: CutSet,
    encode: Callable[[List[str]], List[List[int]]],
    output_lengths: Callable[[torch.Tensor], torch.Tensor],
    min_duration: float,
    max_duration: float,
) -> Tuple[CutSet, Dict[str, int]]:
    """Drop cuts a transducer cannot (or should not) be trained on.

    Args:
      cuts: training cuts with features.
      encode: texts -> token ids (`Tokenizer.encode`).
      output_lengths: (N,) int64 input frames -> (N,) int64 encoder frames.
      min_duration: shorter cuts are dropped (seconds).
      max_duration: longer cuts are dropped (seconds).

    Returns:
      The kept cuts and counts of dropped cuts by reason ("too_short", "too_long",
      "more_tokens_than_frames", "no_tokens").
    """
    cut_list = list(cuts)
    tokens = encode([cut_text(c) for c in cut_list])
    frames = output_lengths(torch.tensor([c.num_frames for c in cut_list], dtype=torch.int64)).tolist()
    dropped: Counter = Counter()
    kept = []
    for cut, ids, num_frames in zip(cut_list, tokens, frames):
        if cut.duration < min_duration:
            dropped["too_short"] += 1
        elif cut.duration > max_duration:
            dropped["too_long"] += 1
        elif len(ids) == 0:
            dropped["no_tokens"] += 1
        elif len(ids) > num_frames:
            dropped["more_tokens_than_frames"] += 1
        else:
            kept.append(cut)
    if not kept:
        raise DataError(f"no trainable cuts left after filtering ({dict(dropped)})")
    return CutSet.from_cuts(kept), dict(dropped)


def make_sampler(
    cuts: CutSet,
    max_duration: float,
    num_buckets: int,
    shuffle: bool,
    seed: int,
    world_size: int = 1,
    rank: int = 0,
) -> DynamicBucketingSampler:
    """lhotse's DynamicBucketingSampler over `cuts` for one DDP rank."""
    with warnings.catch_warnings():
        # Our manifests are small enough to hold eagerly; lhotse warns about that.
        warnings.simplefilter("ignore", UserWarning)
        return DynamicBucketingSampler(
            cuts,
            max_duration=max_duration,
            num_buckets=num_buckets,
            shuffle=shuffle,
            seed=seed,
            world_size=world_size,
            rank=rank,
            drop_last=False,
        )


def oversampled_cuts(cuts: CutSet, weight_of: Callable[[Cut], float], seed: int) -> CutSet:
    """`cuts` with each cut repeated to an expected `weight_of(cut)` copies per epoch.

    A cut of weight w >= 1 appears floor(w) times plus once more with probability
    w - floor(w) (drawn once from `seed`, so the set is the same every epoch and on every
    DDP rank); copies get the ids `<id>_os<k>` (k >= 1). A sampler over the result (lhotse's
    bucketing, shuffling, rank splitting and resume state) then sees cut c's cohort with
    frequency proportional to weight x count.

    Raises:
      ConfigError: a weight below 1 (down-weighting would drop data; not supported).
    """
    rng = random.Random(seed)
    out = []
    for cut in sorted(cuts, key=lambda c: c.id):
        weight = float(weight_of(cut))
        if not weight >= 1.0:
            raise ConfigError(f"cut {cut.id}: oversampling weight {weight} must be >= 1")
        whole = int(math.floor(weight))
        copies = whole + (1 if rng.random() < weight - whole else 0)
        out.append(cut)
        out.extend(cut.with_id(f"{cut.id}_os{k}") for k in range(1, copies))
    return CutSet.from_cuts(out)


def make_loader(dataset: torch.utils.data.Dataset, sampler: Any, num_workers: int,
                seed: int) -> torch.utils.data.DataLoader:
    """A DataLoader over `dataset`'s batches of the `CutSet`s that `sampler` yields.

    It gets its own generator so creating an iterator never draws from (and so never
    shifts) torch's global RNG, which exact resume restores from checkpoints.
    """
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )


def sampler_state_for_resume(sampler: DynamicBucketingSampler, consumed_batches: int) -> Dict[str, Any]:
    """The sampler's state as if exactly `consumed_batches` batches of this epoch were used.

    lhotse restores a sampler by re-drawing (metadata only) as many batches as its
    diagnostics counted. DataLoader workers prefetch, so the count can run ahead of what
    training consumed; setting it to the consumed count makes resume exact with workers too.
    """
    state = sampler.state_dict()
    stats = state["diagnostics"]["stats_per_epoch"][state["diagnostics"]["current_epoch"]]
    stats["kept_batches"] = consumed_batches
    stats["discarded_batches"] = 0
    return state


def encoder_output_lengths(encoder: torch.nn.Module, feature_dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function (N,) int64 input frames -> (N,) int64 encoder output frames.

    Uses the encoder's `output_lengths` when it has one; otherwise measures each distinct
    length once with a forward pass on zeros (slower, but exact for any encoder).

    Args:
      encoder: the encoder.
      feature_dim: F, its input feature size (for probing).
    """
    if hasattr(encoder, "output_lengths"):
        return encoder.output_lengths

    cache: Dict[int, int] = {}

    @torch.no_grad()
    def probe(lengths: torch.Tensor) -> torch.Tensor:
        was_training = encoder.training
        encoder.eval()
        for length in set(lengths.tolist()) - set(cache):
            device = next(encoder.parameters()).device
            x = torch.zeros(1, length, feature_dim, device=device)
            _, out_lens = encoder(x, torch.tensor([length], device=device))
            cache[length] = int(out_lens[0])
        encoder.train(was_training)
        return torch.tensor([cache[n] for n in lengths.tolist()], dtype=torch.int64)

    return probe
