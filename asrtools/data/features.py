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
"""
from __future__ import annotations

import concurrent.futures
import logging
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence, Tuple

from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet, load_manifest
from lhotse.cut import Cut
from lhotse.utils import fastcopy
from tqdm import tqdm

from asrtools.data.feature_config import FeatureConfig
from asrtools.data.manifests import find_splits
from asrtools.errors import DataError, describe
from asrtools.data.io import read_manifest, save_manifest
from asrtools.pipeline.sharding import Progress, ShardedWork

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
    with tqdm(total=sum(len(s[0]) for s in todo), desc="fbank", unit="cut", dynamic_ncols=True) as progress:
        if num_jobs <= 1:
            for cuts, feats, manifest in todo:
                progress.update(compute_shard(cuts, cfg, feats, manifest))
        else:
            with concurrent.futures.ProcessPoolExecutor(num_jobs) as pool:
                futures = [pool.submit(compute_shard, cuts, cfg, feats, manifest) for cuts, feats, manifest in todo]
                for future in concurrent.futures.as_completed(futures):
                    progress.update(future.result())


def _id_from_recording(cut: Cut) -> Cut:
    """Name each cut after its recording (one utterance per recording)."""
    return fastcopy(cut, id=cut.recording_id)


def plan_shards(out_dir: Path, manifest_dir: Path, cfg: FeatureConfig) -> List[FeatureShard]:
    """Every split's cuts (sorted by recording id) in consecutive shards of `cfg.shard_size`."""
    shards = []
    for split in find_splits(manifest_dir):
        cuts = CutSet.from_manifests(
            recordings=read_manifest(manifest_dir / f"recordings_{split}.jsonl.gz", RecordingSet, "recordings"),
            supervisions=read_manifest(manifest_dir / f"supervisions_{split}.jsonl.gz", SupervisionSet, "supervisions"),
        ).map(_id_from_recording).sort_by_recording_id()
        ids = [c.id for c in cuts]
        for n, start in enumerate(range(0, len(ids), cfg.shard_size)):
            piece = cuts.subset(cut_ids=ids[start:start + cfg.shard_size])
            shards.append(FeatureShard(split, piece, out_dir / "feats" / split / f"shard-{n:04d}.lca",
                                       out_dir / ".shards" / f"{split}-{n:04d}.jsonl.gz"))
    return shards


class FeatureWork(ShardedWork):
    """Fbank extraction as the units of a sharded stage (one unit = one `FeatureShard`).

    Args:
      manifest_dir: the manifests of `asrtools data manifests`.
      out_dir: the stage directory.
      cfg: Fbank options and the shard size.
    """

    label = "fbank"

    def __init__(self, manifest_dir: Path, out_dir: Path, cfg: FeatureConfig) -> None:
        self.out_dir = Path(out_dir).resolve()  # the cut manifests store absolute feature paths
        self.cfg = cfg
        self.shards = plan_shards(self.out_dir, Path(manifest_dir), cfg)
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

    def merge(self) -> None:
        """Concatenate each split's shard manifests, in order, into cuts_<split>.jsonl.gz."""
        for split in dict.fromkeys(s.split for s in self.shards):
            parts = [load_manifest(s.manifest) for s in self.shards if s.split == split]
            cuts = CutSet.from_cuts(c for part in parts for c in part)
            save_manifest(cuts, self.out_dir / f"cuts_{split}.jsonl.gz")
            self.counts[split] = len(cuts)
        logger.info("cuts per split: %s", self.counts)
