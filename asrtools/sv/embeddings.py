"""Speaker-embedding artifacts: utterance and speaker-averaged embeddings keyed by id.

`asrtools sv embed` writes into its stage directory:

  utterances.npz   ids (U,) str, speakers (U,) str, vectors (U, E) float32, L2-normalised
  speakers.npz     ids (S,) str, vectors (S, E) float32 (mean of the speaker's normalised
                   utterance embeddings, normalised again), counts (S,) int64
  embed.json       what made them: model (checkpoint or external encoder), dimension, counts
  parts/           per-shard utterance embeddings (resume)

Both `.npz` files are plain arrays (read with `allow_pickle=False`); `read_embeddings`
returns `{id: vector}` from either, so other tools (e.g. cohort discovery's `--embeddings`)
take a speaker -> vector map without knowing how it was made.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.pipeline import atomic_path, atomic_write_json

UTTERANCES_NPZ = "utterances.npz"
SPEAKERS_NPZ = "speakers.npz"
EMBED_JSON = "embed.json"
PARTS_DIR = "parts"


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


def embed_in_shards(cuts: Sequence[Any], embed: EmbedFn, out_dir: Path, shard_size: int,
                    progress: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Embed `cuts` shard by shard (finished shards are kept and skipped), then write the artifacts.

    Args:
      cuts: lhotse cuts (with a speaker in their first supervision), in a fixed order.
      embed: a list of cuts -> (N, E) vectors (any scale; normalised here).
      out_dir: the stage directory.
      shard_size: cuts per resumable shard.
      progress: called with the number of cuts finished in each shard.

    Returns:
      Counts for `embed.json`: utterances, speakers, dim.
    """
    from asrtools.data.cuts import cut_speaker

    parts = Path(out_dir) / PARTS_DIR
    ids: List[str] = []
    speakers: List[str] = []
    chunks: List[np.ndarray] = []
    for start in range(0, len(cuts), shard_size):
        shard = list(cuts[start:start + shard_size])
        path = parts / f"part-{start // shard_size:05d}.npz"
        if path.is_file():
            vectors = load_npz(path, ("ids", "vectors"))["vectors"]
        else:
            vectors = normalize_rows(np.asarray(embed(shard), dtype=np.float64)).astype(np.float32)
            if not np.all(np.isfinite(vectors)):
                raise DataError(f"non-finite embedding among cuts {shard[0].id} ... {shard[-1].id}")
            save_npz(path, ids=np.array([c.id for c in shard]), vectors=vectors)
        ids += [c.id for c in shard]
        speakers += [cut_speaker(c) for c in shard]
        chunks.append(vectors)
        if progress is not None:
            progress(len(shard))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    order = np.argsort(np.array(ids), kind="stable")
    ids_arr, spk_arr, vectors = np.array(ids)[order], np.array(speakers)[order], vectors[order]
    save_npz(Path(out_dir) / UTTERANCES_NPZ, ids=ids_arr, speakers=spk_arr, vectors=vectors)
    names, means, counts = speaker_means(list(ids_arr), list(spk_arr), vectors)
    save_npz(Path(out_dir) / SPEAKERS_NPZ, ids=np.array(names), vectors=means, counts=counts)
    return {"utterances": len(ids_arr), "speakers": len(names), "dim": int(vectors.shape[1]) if len(vectors) else 0}


def write_embed_json(out_dir: Path, info: Dict[str, Any]) -> None:
    """Write `embed.json`."""
    atomic_write_json(Path(out_dir) / EMBED_JSON, info)


def read_embed_json(path: Path) -> Dict[str, Any]:
    """`embed.json` of an embedding directory."""
    file = Path(path) / EMBED_JSON
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{file}: cannot read ({err})") from None
