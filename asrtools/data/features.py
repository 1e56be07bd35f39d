"""Fbank features for Lhotse cuts, computed in resumable shards.

Each split's cuts are cut into fixed-size shards; a shard's features go to
`feats/<split>/shard-<n>.lca` (lhotse's LilcomChunkyWriter) and its cut manifest to
`.shards/<split>-<n>.jsonl.gz`, written atomically *after* the features: the shard
manifest is the shard's completion marker, so a killed run recomputes only unfinished
shards (their half-written .lca files are simply rewritten). When every shard is done the
shard manifests are concatenated, in order, into `cuts_<split>.jsonl.gz`. Fbank has no
dither by default and lilcom is deterministic, so a resumed run is byte-identical.
"""
from __future__ import annotations

import concurrent.futures
import logging
from pathlib import Path
from typing import Dict, List, Tuple

from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet, load_manifest
from lhotse.cut import Cut
from lhotse.utils import fastcopy
from tqdm import tqdm

from asrtools.data.feature_config import FeatureConfig
from asrtools.data.manifests import find_splits
from asrtools.errors import DataError, describe
from asrtools.data.io import read_manifest, save_manifest

logger = logging.getLogger("asrtools")


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
    """Run `compute_shard` on every `(cuts, feats_path, manifest_path)`, in `num_jobs` processes."""
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


def _shards(out_dir: Path, manifest_dir: Path, cfg: FeatureConfig) -> List[Tuple[str, CutSet, Path, Path]]:
    shards = []
    for split in find_splits(manifest_dir):
        cuts = CutSet.from_manifests(
            recordings=read_manifest(manifest_dir / f"recordings_{split}.jsonl.gz", RecordingSet, "recordings"),
            supervisions=read_manifest(manifest_dir / f"supervisions_{split}.jsonl.gz", SupervisionSet, "supervisions"),
        ).map(_id_from_recording).sort_by_recording_id()
        ids = [c.id for c in cuts]
        for n, start in enumerate(range(0, len(ids), cfg.shard_size)):
            piece = cuts.subset(cut_ids=ids[start:start + cfg.shard_size])
            shards.append((split, piece, out_dir / "feats" / split / f"shard-{n:04d}.lca",
                           out_dir / ".shards" / f"{split}-{n:04d}.jsonl.gz"))
    return shards


def compute_features(manifest_dir: Path, out_dir: Path, cfg: FeatureConfig, num_jobs: int = 1) -> Dict[str, int]:
    """Compute Fbank features for every split of `manifest_dir` into `out_dir`.

    Returns the number of cuts per split. Output: `cuts_<split>.jsonl.gz` + `feats/`.
    """
    manifest_dir, out_dir = Path(manifest_dir), Path(out_dir).resolve()
    shards = _shards(out_dir, manifest_dir, cfg)
    todo = [s for s in shards if not s[3].exists()]
    if len(todo) < len(shards):
        logger.info("resuming: %d of %d feature shards already done", len(shards) - len(todo), len(shards))
    run_shards([(cuts, feats, manifest) for _, cuts, feats, manifest in todo], cfg, num_jobs)
    counts: Dict[str, int] = {}
    for split in dict.fromkeys(s[0] for s in shards):
        parts = [load_manifest(s[3]) for s in shards if s[0] == split]
        cuts = CutSet.from_cuts(c for part in parts for c in part)
        save_manifest(cuts, out_dir / f"cuts_{split}.jsonl.gz")
        counts[split] = len(cuts)
    return counts
