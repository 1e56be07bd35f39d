"""Fbank features for Lhotse cuts, computed in resumable shards.

Each split's cuts are cut into fixed-size shards (`shard_size` cuts); a shard's features go
to `feats/<split>/shard-<n>.lca` (lhotse's LilcomChunkyWriter) and its cut manifest to
`.shards/<split>-<n>.jsonl.gz`, written atomically *after* the features: the shard
manifest, holding the shard's cut ids in order, is the shard's completion marker, so a
killed run recomputes only unfinished shards (their half-written .lca files are simply
rewritten). The shards are the units of a sharded stage (`FeatureWork`): `-j N` computes
them in N processes or N SLURM array tasks. When every shard is done the shard manifests
are concatenated, in order, into `cuts_<split>.jsonl.gz`. Fbank has no dither by default
and lilcom is deterministic, so the result is byte-identical whatever N, resumed or not.

Speed perturbation (`SpeedPerturbWork`, `asrtools data perturb`) is the same sharded
computation on lhotse's speed-perturbed copies of already featurised cuts (resampled audio,
supervisions and ids `<id>_sp<factor>` rescaled by lhotse); its manifest holds the original
cuts, unchanged, followed by every factor's copies.
"""
from __future__ import annotations

import concurrent.futures
import logging
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple

from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet, load_manifest
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from asrtools.data.feature_config import FeatureConfig
from asrtools.data.manifests import find_splits
from asrtools.errors import ConfigError, DataError, describe
from asrtools.data.io import read_manifest, save_manifest
from asrtools.pipeline.sharding import Progress, ShardedWork
from asrtools.utils.progress import progress

logger = logging.getLogger("asrtools")


class FeatureShard(NamedTuple):
    """One unit of feature work: `shard_size` consecutive cuts of one split."""

    split: str
    cuts: CutSet
    feats: Path  # feats/<split>/shard-<n>.lca
    manifest: Path  # .shards/<split>-<n>.jsonl.gz, the completion marker


def compute_shard(cuts: CutSet, cfg: FeatureConfig, feats_path: Path, manifest_path: Path) -> int:
    """Compute and store the features of `cuts` (a MixedCut's on its mixed audio), then write
    the shard's cut manifest (the shard's completion marker); return the number of cuts."""
    import torch

    torch.set_num_threads(1)
    extractor = cfg.extractor()
    feats_path.parent.mkdir(parents=True, exist_ok=True)
    done = []
    with LilcomChunkyWriter(feats_path) as writer:
        for cut in cuts:
            try:
                done.append(cut.compute_and_store_features(extractor, writer))
            except Exception as err:  # corrupt audio surfaces here as many exception types
                raise DataError(f"cut {cut.id}: cannot compute features ({describe(err)})") from None
    save_manifest(CutSet.from_cuts(done), manifest_path)
    return len(done)


def run_shards(todo: List[Tuple[CutSet, Path, Path]], cfg: FeatureConfig, num_jobs: int = 1) -> None:
    """Run `compute_shard` on every `(cuts, feats_path, manifest_path)`, in `num_jobs` processes
    (for stages that are not sharded stages themselves, e.g. `asrtools data mix`)."""
    with progress(total=sum(len(s[0]) for s in todo), desc="fbank", unit="cut") as bar:
        if num_jobs <= 1:
            for cuts, feats, manifest in todo:
                bar.update(compute_shard(cuts, cfg, feats, manifest))
        else:
            with concurrent.futures.ProcessPoolExecutor(num_jobs) as pool:
                futures = [pool.submit(compute_shard, cuts, cfg, feats, manifest) for cuts, feats, manifest in todo]
                for future in concurrent.futures.as_completed(futures):
                    bar.update(future.result())


def _id_from_recording(cut: Cut) -> Cut:
    """Name each cut after its recording (one utterance per recording)."""
    return fastcopy(cut, id=cut.recording_id)


def _utterance_cuts(cuts: CutSet) -> CutSet:
    """One cut per utterance. Where each recording is one utterance (the synthetic corpus,
    LibriSpeech) the cut is named after its recording; where recordings hold several segments
    (a Kaldi data dir with `segments`, a CSV table with start/end; `asrtools data prepare`)
    each supervision is cut out and the cut named after it."""
    def whole(cut: Cut) -> bool:
        return len(cut.supervisions) == 1 and cut.supervisions[0].start < 1e-3 and \
            abs(cut.supervisions[0].duration - cut.duration) < 1e-3

    if all(whole(cut) for cut in cuts):
        return cuts.map(_id_from_recording)
    return cuts.trim_to_supervisions(keep_overlapping=False)


def plan_shards(out_dir: Path, manifest_dir: Path, cfg: FeatureConfig) -> List[FeatureShard]:
    """Every split's cuts (sorted by recording id) in consecutive shards of `cfg.shard_size`."""
    shards = []
    for split in find_splits(manifest_dir):
        whole = CutSet.from_manifests(
            recordings=read_manifest(manifest_dir / f"recordings_{split}.jsonl.gz", RecordingSet, "recordings"),
            supervisions=read_manifest(manifest_dir / f"supervisions_{split}.jsonl.gz", SupervisionSet, "supervisions"),
        )
        cuts = (whole.map(_id_from_recording) if cfg.cuts == "recording" else _utterance_cuts(whole)).sort_by_recording_id()
        ids = [c.id for c in cuts]
        for n, start in enumerate(range(0, len(ids), cfg.shard_size)):
            piece = cuts.subset(cut_ids=ids[start:start + cfg.shard_size])
            shards.append(FeatureShard(split, piece, out_dir / "feats" / split / f"shard-{n:04d}.lca",
                                       out_dir / ".shards" / f"{split}-{n:04d}.jsonl.gz"))
    return shards


def _without_features(cut: Cut) -> Cut:
    # lhotse's perturb_speed detaches features by assigning to the cut it is given (with a
    # warning): hand it a copy so the source cuts stay intact.
    return fastcopy(cut, features=None)


def plan_perturbed_shards(cuts: CutSet, split: str, factors: Sequence[float], out_dir: Path,
                          shard_size: int) -> List[FeatureShard]:
    """Each factor's speed-perturbed copies of `cuts` in consecutive shards of `shard_size`,
    written under `feats/<split>_sp<factor>/` (split = the output manifest's name)."""
    source = [_without_features(c) for c in cuts]
    pieces = [CutSet.from_cuts(source[start:start + shard_size]) for start in range(0, len(source), shard_size)]
    shards = []
    for factor in factors:
        tag = f"{split}_sp{factor:g}"
        for n, piece in enumerate(pieces):
            shards.append(FeatureShard(tag, piece.perturb_speed(factor), out_dir / "feats" / tag / f"shard-{n:04d}.lca",
                                       out_dir / ".shards" / f"{tag}-{n:04d}.jsonl.gz"))
    return shards


class _ShardWork(ShardedWork):
    """Feature shards as the units of a sharded stage (one unit = one `FeatureShard`)."""

    label = "fbank"

    def __init__(self, out_dir: Path, cfg: FeatureConfig, shards: List[FeatureShard]) -> None:
        self.out_dir = out_dir
        self.cfg = cfg
        self.shards = shards
        self.counts: Dict[str, int] = {}

    def num_units(self) -> int:
        return len(self.shards)

    def unit_size(self, index: int) -> int:
        return len(self.shards[index].cuts)

    def unit_done(self, index: int) -> bool:
        shard = self.shards[index]
        if not shard.manifest.is_file() or not shard.feats.is_file():
            return False
        try:
            stored = [cut.id for cut in load_manifest(shard.manifest)]
        except Exception:  # a manifest lhotse cannot read is simply not done
            return False
        return stored == [cut.id for cut in shard.cuts]

    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        for index in indices:
            shard = self.shards[index]
            progress(compute_shard(shard.cuts, self.cfg, shard.feats, shard.manifest))

    def shard_cuts(self, tag: str) -> List[Cut]:
        """The cuts of every finished shard whose split is `tag`, in shard order."""
        return [c for s in self.shards if s.split == tag for c in load_manifest(s.manifest)]


class FeatureWork(_ShardWork):
    """Fbank extraction of every split of a manifest directory.

    Args:
      manifest_dir: the manifests of `asrtools data manifests`.
      out_dir: the stage directory.
      cfg: Fbank options and the shard size.
    """

    def __init__(self, manifest_dir: Path, out_dir: Path, cfg: FeatureConfig) -> None:
        out_dir = Path(out_dir).resolve()  # the cut manifests store absolute feature paths
        super().__init__(out_dir, cfg, plan_shards(out_dir, Path(manifest_dir), cfg))

    def merge(self) -> None:
        """Concatenate each split's shard manifests, in order, into cuts_<split>.jsonl.gz."""
        for split in dict.fromkeys(s.split for s in self.shards):
            cuts = CutSet.from_cuts(self.shard_cuts(split))
            save_manifest(cuts, self.out_dir / f"cuts_{split}.jsonl.gz")
            self.counts[split] = len(cuts)
        logger.info("cuts per split: %s", self.counts)


def check_speed_factors(factors: Sequence[float]) -> None:
    """Raise a one-line ConfigError unless `factors` are distinct, in (0, 10) and not 1."""
    bad = [f for f in factors if not 0 < f < 10 or f == 1]
    if not factors or bad or len(set(factors)) != len(factors):
        raise ConfigError(f"speed factors must be distinct, positive, below 10 and not 1, got {list(factors)}")


class SpeedPerturbWork(_ShardWork):
    """Fbank extraction of speed-perturbed copies of featurised cuts.

    Args:
      cuts_path: the source cuts, with features (e.g. `cuts_train.jsonl.gz` of `asrtools data features`).
      factors: speed factors (1.1 = 10% faster and shorter); 1 is the source itself and not allowed.
      out_dir: the stage directory; the result is `<name>_sp.jsonl.gz` (`cuts_train_sp.jsonl.gz`
        for `cuts_train.jsonl.gz`): the source cuts, then each factor's copies.
      cfg: Fbank options (those the source was computed with) and the shard size.
    """

    def __init__(self, cuts_path: Path, factors: Sequence[float], out_dir: Path, cfg: FeatureConfig) -> None:
        check_speed_factors(factors)
        out_dir = Path(out_dir).resolve()
        self.source = read_manifest(Path(cuts_path), CutSet, "--cuts")  # eager: load_manifest reads it whole
        missing = [c.id for c in self.source if not c.has_features or not c.has_recording]
        if missing:
            raise DataError(f"--cuts {cuts_path}: cut {missing[0]} has no audio or no features "
                            f"(speed perturbation needs both; {len(missing)} such cut(s))")
        self.name = Path(cuts_path).name.split(".")[0]
        super().__init__(out_dir, cfg, plan_perturbed_shards(self.source, self.name, factors, out_dir, cfg.shard_size))

    def merge(self) -> None:
        tags = list(dict.fromkeys(s.split for s in self.shards))
        cuts = CutSet.from_cuts([*self.source, *(c for tag in tags for c in self.shard_cuts(tag))])
        save_manifest(cuts, self.out_dir / f"{self.name}_sp.jsonl.gz")
        self.counts = {"source": len(self.source), **{tag: len(self.source) for tag in tags}}
        logger.info("cuts: %s", self.counts)
