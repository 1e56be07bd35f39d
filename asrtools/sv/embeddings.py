"""Speaker-embedding artifacts: utterance and speaker-averaged embeddings keyed by id.

`asrtools sv embed` writes into its stage directory:

  utterances.npz   ids (U,) str, speakers (U,) str, vectors (U, E) float32, L2-normalised
  speakers.npz     ids (S,) str, vectors (S, E) float32 (mean of the speaker's normalised
                   utterance embeddings, normalised again), counts (S,) int64
  embed.json       what made them: model (checkpoint or external encoder), dimension, counts
  .parts/          per-shard utterance embeddings while the stage runs (`EmbedWork`;
                   resume, `-j N` processes or SLURM array tasks), removed by the merge

Both `.npz` files are plain arrays (read with `allow_pickle=False`); `read_embeddings`
returns `{id: vector}` from either, so other tools (e.g. cohort discovery's `--embeddings`)
take a speaker -> vector map without knowing how it was made.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.pipeline import atomic_path, atomic_write_json
from asrtools.pipeline.sharding import Progress, ShardedWork

UTTERANCES_NPZ = "utterances.npz"
SPEAKERS_NPZ = "speakers.npz"
EMBED_JSON = "embed.json"
PARTS_DIR = ".parts"

logger = logging.getLogger("asrtools")


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to an `.npz` file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path: Path, required: Sequence[str]) -> Dict[str, np.ndarray]:
    """Read an `.npz` (no pickles); `DataError` naming the file if unreadable or lacking `required`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embeddings {path} do not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise DataError(f"embeddings {path} cannot be read ({type(err).__name__}: {err})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataError(f"embeddings {path} lack the arrays {', '.join(missing)}")
    if len(arrays["ids"]) != len(arrays["vectors"]):
        raise DataError(f"embeddings {path}: {len(arrays['ids'])} ids but {len(arrays['vectors'])} vectors")
    if not np.all(np.isfinite(arrays["vectors"])):
        raise DataError(f"embeddings {path} hold non-finite values")
    return arrays


def embedding_file(path: Path, level: str) -> Path:
    """The `.npz` of `level` ("utterances" or "speakers") in a stage dir, or `path` if a file."""
    path = Path(path)
    if path.is_dir():
        return path / (UTTERANCES_NPZ if level == "utterances" else SPEAKERS_NPZ)
    return path


def read_embeddings(path: Path, level: str = "speakers") -> Dict[str, np.ndarray]:
    """`{id: (E,) float32 vector}` from an `asrtools sv embed` directory or one of its `.npz` files.

    Args:
      path: the stage directory (then `level` picks the file) or an `.npz` file.
      level: "speakers" (speaker -> averaged vector) or "utterances" (utterance -> vector).
    """
    arrays = load_npz(embedding_file(path, level), ("ids", "vectors"))
    return {str(i): v for i, v in zip(arrays["ids"], arrays["vectors"])}


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def speaker_means(ids: Sequence[str], speakers: Sequence[str], vectors: np.ndarray
                  ) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Per-speaker mean of normalised utterance vectors, normalised: (ids, (S, E), counts (S,))."""
    names = sorted(set(speakers))
    index = {s: i for i, s in enumerate(names)}
    sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float64)
    counts = np.zeros(len(names), dtype=np.int64)
    unit = normalize_rows(vectors.astype(np.float64))
    for spk, vec in zip(speakers, unit):
        sums[index[spk]] += vec
        counts[index[spk]] += 1
    return names, normalize_rows(sums).astype(np.float32), counts


EmbedFn = Callable[[List[Any]], np.ndarray]
EmbedLoader = Callable[[], EmbedFn]


class EmbedWork(ShardedWork):
    """Embedding extraction as the units of a sharded stage (`asrtools sv embed`).

    The cuts are sorted by id; unit k is shard k, the cuts [k * shard_size, (k+1) * shard_size)
    of that order. Each unit writes `<out_dir>/.parts/part-<k>.npz` (ids (n,) str, vectors
    (n, E) float32, L2-normalised); `merge` writes utterances.npz, speakers.npz and embed.json.

    Args:
      out_dir: the stage directory.
      cuts: lhotse cuts (speaker in the first supervision), in any order.
      shard_size: cuts per unit.
      load: makes the embedding function (a list of n cuts -> (n, E) vectors of any scale);
        called once in each process that runs units, so the model is loaded only there. It
        fixes the process's CPU threads: the vectors may differ in the last bits between
        thread counts, never between numbers of processes or tasks.
      describe: the model's part of embed.json (what made the embeddings).
      cuts_path: the cuts manifest, recorded in embed.json.
    """

    label = "embedding"

    def __init__(self, out_dir: Path, cuts: Sequence[Any], shard_size: int, load: EmbedLoader,
                 describe: Callable[[], Dict[str, Any]], cuts_path: Path) -> None:
        self.out_dir = Path(out_dir)
        self.cuts = sorted(cuts, key=lambda c: c.id)
        self.shards = [self.cuts[start:start + shard_size] for start in range(0, len(self.cuts), shard_size)]
        self._load = load
        self._describe = describe
        self.cuts_path = Path(cuts_path)

    def num_units(self) -> int:
        return len(self.shards)

    def unit_size(self, index: int) -> int:
        return len(self.shards[index])

    def part_path(self, index: int) -> Path:
        return self.out_dir / PARTS_DIR / f"part-{index:05d}.npz"

    def read_part(self, index: int) -> Optional[np.ndarray]:
        """The (n, E) vectors of part `index`, or None unless it holds exactly shard `index`'s cuts, in order."""
        try:
            arrays = load_npz(self.part_path(index), ("ids", "vectors"))
        except DataError:
            return None
        if arrays["vectors"].ndim != 2 or [str(i) for i in arrays["ids"]] != [c.id for c in self.shards[index]]:
            return None
        return arrays["vectors"]

    def unit_done(self, index: int) -> bool:
        return self.read_part(index) is not None

    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        if not indices:
            return
        embed = self._load()
        for index in indices:
            shard = self.shards[index]
            if self.part_path(index).exists():
                logger.warning("%s holds other cuts than shard %d; embedding it again", self.part_path(index), index)
            vectors = normalize_rows(np.asarray(embed(shard), dtype=np.float64)).astype(np.float32)
            if not np.all(np.isfinite(vectors)):
                raise DataError(f"non-finite embedding among cuts {shard[0].id} ... {shard[-1].id}")
            save_npz(self.part_path(index), ids=np.array([c.id for c in shard]), vectors=vectors)
            progress(len(shard))

    def merged(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every cut's embedding, from the parts: ids (U,) str, speakers (U,) str, vectors (U, E) float32."""
        from asrtools.data.cuts import cut_speaker

        chunks = []
        for index in range(self.num_units()):
            part = self.read_part(index)
            if part is None:
                raise DataError(f"{self.part_path(index)}: missing, or not the cuts of shard {index}")
            chunks.append(part)
        ids = np.array([c.id for c in self.cuts])
        speakers = np.array([cut_speaker(c) for c in self.cuts])
        return ids, speakers, np.concatenate(chunks)

    def merge(self) -> None:
        """Write the outputs (`write_outputs`) from every part, then drop the parts."""
        ids, speakers, vectors = self.merged()
        self.write_outputs(ids, speakers, vectors)
        shutil.rmtree(self.out_dir / PARTS_DIR, ignore_errors=True)

    def write_outputs(self, ids: np.ndarray, speakers: np.ndarray, vectors: np.ndarray) -> None:
        """utterances.npz, speakers.npz and embed.json (arrays as `merged` returns them)."""
        save_npz(self.out_dir / UTTERANCES_NPZ, ids=ids, speakers=speakers, vectors=vectors)
        names, means, counts = speaker_means(list(ids), list(speakers), vectors)
        save_npz(self.out_dir / SPEAKERS_NPZ, ids=np.array(names), vectors=means, counts=counts)
        atomic_write_json(self.out_dir / EMBED_JSON, {**self._describe(), "utterances": len(ids),
                                                      "speakers": len(names), "dim": int(vectors.shape[1]),
                                                      "cuts": str(self.cuts_path)})
        logger.info("embedded %d utterances of %d speakers (%d-dim)", len(ids), len(names), vectors.shape[1])


def read_embed_json(path: Path) -> Dict[str, Any]:
    """`embed.json` of an embedding directory."""
    file = Path(path) / EMBED_JSON
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{file}: cannot read ({err})") from None
