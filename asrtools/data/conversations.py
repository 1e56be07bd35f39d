"""Conversation simulation for multi-talker ASR (`asrtools data mix`).

Each conversation is a lhotse `MixedCut` of several single-speaker utterances (the turns)
of 2-4 speakers of one split, placed so that the conversation reaches a chosen overlap
ratio (LibriCSS's definition: overlapped speech / total speech, `asrtools.data.turns.
overlap_ratio`) with pauses between turns that do not overlap:

- speakers of train, dev and test are never mixed: a conversation only uses utterances of
  its own split, each utterance at most once;
- consecutive turns have different speakers, every chosen speaker talks at least once;
- the target overlap `O = r / (1 + r) * sum(turn durations)` is spread over the turn
  changes; an overlap never exceeds either turn (minus `overlap_margin`) and a turn never
  starts before the turn two back has ended, so at most two people talk at once (the
  channel assignment of `asrtools.data.turns` is checked on every conversation);
- the realised overlap ratio is recorded beside the target (a short turn can cap it).

Features: the mixed audio is featurised once, here (`MixedCut.compute_and_store_features`
with `mix_eagerly`), into lilcom shards, rather than mixed on the fly by lhotse at every
batch: training reads one feature matrix per conversation instead of reading and mixing
2-6 source matrices, which is the cheaper choice on CPU when every conversation is seen
for several epochs, and the mix is the exact waveform sum rather than lhotse's
approximate mixing of log-mel energies.

Outputs (stage directory): `cuts_<split>.jsonl.gz` (one MonoCut per conversation, one
supervision per turn with its speaker, text and source metadata), `feats/<split>/*.lca`,
`conversations_<split>.jsonl` (the plan: speakers, source utterances, offsets, target and
realised overlap ratio), `stats.json`. Planning depends only on the config and the source
cuts; features are computed per shard and resume like `asrtools data features`.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lhotse import CutSet, load_manifest
from lhotse.cut import MixedCut, MixTrack
from lhotse.utils import fastcopy

from asrtools.data.cuts import load_cuts
from asrtools.data.feature_config import FeatureConfig
from asrtools.data.io import save_manifest
from asrtools.data.turns import Turn, assign_channels, overlap_ratio
from asrtools.errors import DataError
from asrtools.pipeline.atomic import atomic_write_json, atomic_write_text

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class MixConfig:
    """How conversations are simulated (every value is fingerprinted by the stage).

    Attributes:
      seed: the planning seed (with the split name).
      conversations: conversations per split; 0 = as many as the split's utterances allow;
        a split not listed is not simulated.
      min_speakers, max_speakers: speakers per conversation (drawn uniformly).
      min_turns, max_turns: turns per conversation (at least the number of speakers).
      overlap_ratios: target overlap ratios, given to conversations in turn (conversation i
        gets `overlap_ratios[i % len]`), so every split is balanced over them.
      pause_range: [min, max] silence (s) between turns that do not overlap.
      lead_range: [min, max] silence (s) before the first and after the last turn.
      overlap_margin: an overlap leaves at least this much (s) of each turn un-overlapped.
      shard_size: conversations per feature shard (the unit of resume).
      features: the Fbank options (same as `asrtools data features`).
    """

    seed: int = 0
    conversations: Dict[str, int] = dataclasses.field(
        default_factory=lambda: {"train": 0, "dev": 100, "test": 250})
    min_speakers: int = 2
    max_speakers: int = 4
    min_turns: int = 3
    max_turns: int = 6
    overlap_ratios: List[float] = dataclasses.field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4])
    pause_range: List[float] = dataclasses.field(default_factory=lambda: [0.1, 1.0])
    lead_range: List[float] = dataclasses.field(default_factory=lambda: [0.1, 0.5])
    overlap_margin: float = 0.3
    shard_size: int = 200
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)

    def validate(self) -> None:
        if not 2 <= self.min_speakers <= self.max_speakers:
            raise ValueError("need 2 <= min_speakers <= max_speakers")
        if not 2 <= self.min_turns <= self.max_turns:
            raise ValueError("need 2 <= min_turns <= max_turns")
        if not self.overlap_ratios or any(not 0.0 <= r < 1.0 for r in self.overlap_ratios):
            raise ValueError("overlap_ratios must be a non-empty list of values in [0, 1)")
        for name in ("pause_range", "lead_range"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1]:
                raise ValueError(f"{name} must be [min, max] with 0 <= min <= max")
        unknown = sorted(set(self.conversations) - set(SPLITS))
        if unknown or any(n < 0 for n in self.conversations.values()):
            raise ValueError(f"conversations: keys must be splits ({', '.join(SPLITS)}) with counts >= 0")
        if self.overlap_margin < 0 or self.shard_size < 1:
            raise ValueError("overlap_margin must be >= 0 and shard_size >= 1")


@dataclasses.dataclass
class PlannedTurn:
    """One turn of a planned conversation: a source cut placed at `offset` seconds."""

    cut_id: str
    speaker: str
    offset: float
    duration: float

    @property
    def end(self) -> float:
        return self.offset + self.duration


@dataclasses.dataclass
class ConversationPlan:
    """A planned conversation.

    Attributes:
      id: the conversation (cut) id, `<split>-conv<n>`.
      target_overlap: the overlap ratio it was planned for.
      turns: its turns in start order.
      tail: silence after the last turn (s).
    """

    id: str
    target_overlap: float
    turns: List[PlannedTurn]
    tail: float

    @property
    def duration(self) -> float:
        return max(t.end for t in self.turns) + self.tail

    def as_turns(self) -> List[Turn]:
        """The turns as `Turn`s (no text), for overlap and channel checks."""
        return [Turn(t.offset, t.end, t.speaker, "") for t in self.turns]

    def to_dict(self) -> Dict[str, Any]:
        turns = self.as_turns()
        return {
            "id": self.id,
            "target_overlap": self.target_overlap,
            "overlap_ratio": round(overlap_ratio(turns), 4),
            "num_speakers": len({t.speaker for t in self.turns}),
            "num_turns": len(self.turns),
            "duration": round(self.duration, 4),
            "turns": [dataclasses.asdict(t) for t in self.turns],
        }


def _speaker_pools(cuts: CutSet, rng: random.Random, name: str) -> Dict[str, List[Tuple[str, float]]]:
    """speaker -> shuffled [(cut id, duration)] of single-supervision source cuts."""
    pools: Dict[str, List[Tuple[str, float]]] = {}
    for cut in sorted(cuts, key=lambda c: c.id):
        if len(cut.supervisions) != 1 or not (cut.supervisions[0].text or "").strip():
            raise DataError(f"{name}: source cut {cut.id} must hold exactly one transcribed supervision")
        speaker = cut.supervisions[0].speaker or "unknown"
        pools.setdefault(speaker, []).append((cut.id, float(cut.duration)))
    for speaker in sorted(pools):
        rng.shuffle(pools[speaker])
    return pools


def _turn_speakers(speakers: Sequence[str], num_turns: int, rng: random.Random) -> List[str]:
    """A turn order using every speaker, never the same speaker twice in a row."""
    order = list(speakers)
    rng.shuffle(order)
    while len(order) < num_turns:
        order.append(rng.choice([s for s in speakers if s != order[-1]]))
    return order


def _place(durations: Sequence[float], ratio: float, cfg: MixConfig, rng: random.Random) -> List[float]:
    """Start times of turns of `durations` aiming at overlap ratio `ratio` (see module doc)."""
    remaining = ratio / (1.0 + ratio) * sum(durations)
    weights = [rng.uniform(0.5, 1.5) for _ in durations[1:]]
    starts = [rng.uniform(*cfg.lead_range)]
    ends = [starts[0] + durations[0]]
    for k in range(1, len(durations)):
        cap = min(durations[k - 1], durations[k]) - cfg.overlap_margin
        if k >= 2:
            cap = min(cap, ends[k - 1] - ends[k - 2] - 0.01)  # never a third talker
        share = remaining * weights[k - 1] / sum(weights[k - 1:]) if remaining > 0 else 0.0
        overlap = min(max(cap, 0.0), share)
        if overlap > 0.0:
            start = ends[k - 1] - overlap
            remaining -= overlap
        else:
            start = ends[k - 1] + rng.uniform(*cfg.pause_range)
        starts.append(start)
        ends.append(start + durations[k])
    return starts


def plan_split(cuts: CutSet, split: str, cfg: MixConfig) -> List[ConversationPlan]:
    """Plan the conversations of one split (deterministic in `cfg` and the source cuts).

    Args:
      cuts: the split's single-utterance source cuts.
      split: "train", "dev" or "test" (names the conversations and seeds the plan).
      cfg: the simulation settings.

    Returns:
      The conversations; fewer than asked when the split runs out of utterances.
    """
    rng = random.Random(f"{cfg.seed}-{split}")
    pools = _speaker_pools(cuts, rng, f"cuts_{split}")
    wanted = cfg.conversations.get(split, 0) or None
    plans: List[ConversationPlan] = []
    while wanted is None or len(plans) < wanted:
        eligible = sorted(s for s, pool in pools.items() if pool)
        if len(eligible) < cfg.min_speakers:
            break
        num_speakers = min(rng.randint(cfg.min_speakers, cfg.max_speakers), len(eligible))
        chosen: List[str] = []
        while len(chosen) < num_speakers:  # speakers with more utterances left are likelier
            left = [s for s in eligible if s not in chosen]
            chosen.append(rng.choices(left, weights=[len(pools[s]) for s in left])[0])
        num_turns = rng.randint(max(cfg.min_turns, num_speakers), max(cfg.max_turns, num_speakers))
        order = _turn_speakers(chosen, num_turns, rng)
        order = _fit_to_pools(order, pools)
        if len({s for s in order}) < 2:
            break
        picked = [pools[s].pop() for s in order]
        ratio = cfg.overlap_ratios[len(plans) % len(cfg.overlap_ratios)]
        starts = _place([d for _, d in picked], ratio, cfg, rng)
        turns = [PlannedTurn(cut_id, spk, round(start, 4), dur)
                 for (cut_id, dur), spk, start in zip(picked, order, starts)]
        plan = ConversationPlan(f"{split}-conv{len(plans):05d}", ratio, turns, round(rng.uniform(*cfg.lead_range), 4))
        assign_channels(plan.as_turns(), name=plan.id)  # at most two talkers at once, or a bug
        plans.append(plan)
    return plans


def _fit_to_pools(order: List[str], pools: Dict[str, List[Tuple[str, float]]]) -> List[str]:
    """Cut the turn order where a speaker would run out of utterances."""
    used: Dict[str, int] = {}
    for k, speaker in enumerate(order):
        used[speaker] = used.get(speaker, 0) + 1
        if used[speaker] > len(pools[speaker]):
            return order[:k]
    return order


def mixed_cut(plan: ConversationPlan, sources: CutSet) -> MixedCut:
    """The lhotse MixedCut of a plan: each source cut at its offset, silence to `duration`.

    Source features are dropped: the mix is featurised from the summed audio.
    """
    tracks = []
    for turn in plan.turns:
        source = sources[turn.cut_id].drop_features()
        tracks.append(MixTrack(cut=source, offset=turn.offset))
    padded = MixedCut(id=plan.id, tracks=tracks).pad(duration=plan.duration)
    return fastcopy(padded, id=plan.id)  # lhotse's pad() names the result with a random id


def _split_stats(plans: Sequence[ConversationPlan]) -> Dict[str, Any]:
    by_target: Dict[str, List[float]] = {}
    for plan in plans:
        by_target.setdefault(f"{plan.target_overlap:.2f}", []).append(overlap_ratio(plan.as_turns()))
    return {
        "conversations": len(plans),
        "hours": round(sum(p.duration for p in plans) / 3600.0, 4),
        "turns": sum(len(p.turns) for p in plans),
        "speakers": len({t.speaker for p in plans for t in p.turns}),
        "realised_overlap_by_target": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_target.items())},
    }


def simulate(source_dir: Path, out_dir: Path, cfg: MixConfig, num_jobs: int = 1,
             log: Optional[Any] = None) -> Dict[str, Any]:
    """Stage body: plan every split found in `source_dir`, then featurise the mixtures.

    Args:
      source_dir: a directory with `cuts_<split>.jsonl.gz` source cuts (with recordings),
        e.g. the output of `asrtools data features`.
      out_dir: the stage directory.
      cfg: simulation settings.
      num_jobs: feature processes.
      log: where to report progress.

    Returns:
      The statistics written to stats.json.
    """
    from asrtools.data.features import run_shards

    out_dir = Path(out_dir).resolve()
    splits = [s for s in SPLITS if s in cfg.conversations]
    for split in splits:
        if not (Path(source_dir) / f"cuts_{split}.jsonl.gz").is_file():
            raise DataError(f"{source_dir}: no cuts_{split}.jsonl.gz to simulate {split} conversations from")
    stats: Dict[str, Any] = {}
    todo, shard_manifests = [], {}
    for split in splits:
        sources = load_cuts(Path(source_dir) / f"cuts_{split}.jsonl.gz", f"cuts_{split}")
        plans = plan_split(sources, split, cfg)
        if not plans:
            raise DataError(f"cuts_{split}: too few speakers or utterances for one conversation")
        atomic_write_text(out_dir / f"conversations_{split}.jsonl",
                          "".join(json.dumps(p.to_dict(), sort_keys=True) + "\n" for p in plans))
        stats[split] = _split_stats(plans)
        shard_manifests[split] = []
        for n, start in enumerate(range(0, len(plans), cfg.shard_size)):
            manifest = out_dir / ".shards" / f"{split}-{n:04d}.jsonl.gz"
            shard_manifests[split].append(manifest)
            if not manifest.exists():
                mixes = CutSet.from_cuts(mixed_cut(p, sources) for p in plans[start:start + cfg.shard_size])
                todo.append((mixes, out_dir / "feats" / split / f"shard-{n:04d}.lca", manifest))
        if log is not None:
            log.info("%s: %s", split, json.dumps(stats[split]))
    run_shards(todo, cfg.features, num_jobs)
    for split, manifests in shard_manifests.items():
        cuts = CutSet.from_cuts(c for m in manifests for c in load_manifest(m))
        save_manifest(cuts, out_dir / f"cuts_{split}.jsonl.gz")
    atomic_write_json(out_dir / "stats.json", stats)
    return stats


def conversation_info(path: Path) -> Dict[str, Dict[str, Any]]:
    """conversation id -> its plan record, from a `conversations_<split>.jsonl`."""
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
                out[record["id"]] = record
            except (ValueError, KeyError):
                raise DataError(f"{path}:{number}: not a conversation record") from None
    return out


def supervision_targets(cuts: Any) -> Dict[str, float]:
    """conversation id -> the `target_overlap` its supervisions carry in `custom`.

    For conversations that were not simulated here but recorded to a design overlap ratio
    (LibriCSS, `asrtools data prepare libricss`); a conversation whose supervisions carry no
    such value, or disagree, is left out (reported as "unknown").
    """
    out = {}
    for cut in cuts:
        values = {(s.custom or {}).get("target_overlap") for s in cut.supervisions}
        if len(values) == 1 and isinstance(next(iter(values)), (int, float)):
            out[cut.id] = float(next(iter(values)))
    return out
