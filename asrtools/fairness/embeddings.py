"""Speaker embeddings for automatic cohort discovery: encoders, the artifact and its one loader.

`asrtools cohorts embed --encoder SPEC` writes into its stage directory:

  embeddings.npz   speakers (S,) str, vectors (S, D) float32 (the mean of the speaker's
                   L2-normalised utterance embeddings, normalised again), counts (S,) int64
                   (utterances averaged; 0 for vectors taken from a file)
  utterances.npz   ids (U,) str, speakers (U,) str, vectors (U, D) float32: the utterances
                   embedded (encoders only)
  info.json        backend, encoder description, dim, speakers, utterances per speaker

Encoders (`SPEC`), none of which downloads anything:

  resemblyzer      Resemblyzer's pretrained GE2E encoder (weights inside the PyPI wheel;
                   scripts/setup_sv_ref_env.sh), on the cuts' audio with its own
                   preprocessing (`asrtools.sv.extract.resemblyzer_embedder`)
  sv:<checkpoint>  the toolkit's speaker model (a `task: speaker` checkpoint of egs/synth/sv)
                   on the cuts' Fbank features (`asrtools.sv.extract.checkpoint_embedder`)
  file:<path>      a user's `speaker -> vector` file (see `load_embeddings`)

The encoders run as the units of a sharded stage (`asrtools.sv.embeddings.EmbedWork`: the
same resumable shards, `-j N` processes and thread rule as `asrtools sv embed`).
`load_embeddings` reads this artifact, `asrtools sv embed`'s speakers.npz, or a user's
`.npz` / JSON file, and is what cohort discovery (`asrtools cohorts auto --embeddings`) uses.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import ConfigError, DataError
from asrtools.pipeline import atomic_write_json
from asrtools.sv.embeddings import (SPEAKERS_NPZ, UTTERANCES_NPZ, EmbedFn, EmbedLoader, EmbedWork, normalize_rows,
                                    save_npz, speaker_means)

EMBEDDINGS_NPZ = "embeddings.npz"
INFO_JSON = "info.json"
ENCODER_KINDS = ("resemblyzer", "sv", "file")


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """A parsed `--encoder` value: kind ("resemblyzer", "sv" or "file") and its path (sv, file)."""

    kind: str
    path: Optional[Path] = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_encoder(spec: str) -> EncoderSpec:
    """`resemblyzer`, `sv:<checkpoint>` or `file:<path>` -> `EncoderSpec`; ConfigError otherwise."""
    kind, sep, rest = spec.partition(":")
    if kind == "resemblyzer" and not sep:
        return EncoderSpec("resemblyzer")
    if kind in ("sv", "file") and rest:
        return EncoderSpec(kind, Path(rest))
    raise ConfigError(f"--encoder {spec!r}: expected resemblyzer, sv:<checkpoint> or file:<path>")


# ---------------------------------------------------------------------------- the loader


def load_embeddings(path: Path, normalize: bool = True) -> Dict[str, np.ndarray]:
    """`{speaker: (D,) float32 vector}` (sorted by speaker) from a file or an embedding directory.

    Accepts an `asrtools cohorts embed` directory (its embeddings.npz), an `asrtools sv embed`
    directory (its speakers.npz), an `.npz` with arrays `speakers` (or `ids`) `(S,)` and
    `vectors` `(S, D)`, or a JSON object `{speaker: [floats]}`.

    Args:
      path: the file or directory.
      normalize: scale every vector to unit L2 norm (an all-zero vector is then an error).

    Raises:
      DataError: naming the file and, where there is one, the offending speaker: unreadable,
        empty, duplicate speakers, vectors of different dimensions, non-numeric or
        non-finite values.
    """
    path = _embedding_file(Path(path))
    if path.suffix == ".json":
        speakers, rows = _read_json(path)
    else:
        speakers, rows = _read_npz(path)
    if not speakers:
        raise DataError(f"embeddings {path} hold no speakers")
    vectors = _stack(path, speakers, rows)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1)
        if np.any(norms == 0):
            raise DataError(f"embeddings {path}: speaker {speakers[int(np.argmin(norms))]} has an all-zero vector")
        vectors = normalize_rows(vectors)
    order = sorted(range(len(speakers)), key=lambda i: speakers[i])
    return {speakers[i]: vectors[i].astype(np.float32) for i in order}


def _embedding_file(path: Path) -> Path:
    if path.is_dir():
        for name in (EMBEDDINGS_NPZ, SPEAKERS_NPZ):
            if (path / name).is_file():
                return path / name
        raise DataError(f"embedding directory {path} holds neither {EMBEDDINGS_NPZ} nor {SPEAKERS_NPZ}")
    if not path.is_file():
        raise DataError(f"embeddings {path} do not exist")
    return path


def _read_json(path: Path) -> Tuple[List[str], List[Any]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"embeddings {path} cannot be read as JSON ({err})") from None
    if not isinstance(document, dict):
        raise DataError(f"embeddings {path}: expected a JSON object {{speaker: [floats]}}, "
                        f"got {type(document).__name__}")
    for speaker, row in document.items():
        if not isinstance(row, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                for x in row):
            raise DataError(f"embeddings {path}: speaker {speaker}'s vector is not a list of numbers")
    return list(document), list(document.values())


def _read_npz(path: Path) -> Tuple[List[str], List[Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # numpy raises several kinds for a file that is no .npz
        raise DataError(f"embeddings {path} cannot be read as .npz ({type(err).__name__}: {err})") from None
    key = "speakers" if "speakers" in arrays else "ids"
    if key not in arrays or "vectors" not in arrays:
        raise DataError(f"embeddings {path} need the arrays speakers (or ids) and vectors; "
                        f"found {', '.join(sorted(arrays)) or 'none'}")
    vectors = arrays["vectors"]
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise DataError(f"embeddings {path}: vectors must be a numeric (S, D) array, got shape "
                        f"{vectors.shape} of {vectors.dtype}")
    speakers = [str(s) for s in arrays[key]]
    if len(speakers) != len(vectors):
        raise DataError(f"embeddings {path}: {len(speakers)} speakers but {len(vectors)} vectors")
    return speakers, list(vectors)


def _stack(path: Path, speakers: Sequence[str], rows: Sequence[Any]) -> np.ndarray:
    """`(S, D)` float64 from the rows; DataError naming a duplicate, ragged or non-finite speaker."""
    seen = set()
    for speaker in speakers:
        if speaker in seen:
            raise DataError(f"embeddings {path}: speaker {speaker} appears twice")
        seen.add(speaker)
    dim = len(rows[0])
    for speaker, row in zip(speakers, rows):
        if len(row) != dim:
            raise DataError(f"embeddings {path}: speaker {speaker} has a {len(row)}-dim vector, "
                            f"speaker {speakers[0]} a {dim}-dim one")
        if dim == 0:
            raise DataError(f"embeddings {path}: speaker {speaker} has an empty vector")
        if not all(math.isfinite(float(x)) for x in row):
            raise DataError(f"embeddings {path}: speaker {speaker}'s vector holds NaN or infinite values")
    return np.asarray(rows, dtype=np.float64)


def vectors_for(embeddings: Mapping[str, np.ndarray], speakers: Sequence[str], source: str = "embeddings"
                ) -> np.ndarray:
    """The `(S, D)` vectors of `speakers`, in that order; DataError naming the first speaker without one."""
    missing = [s for s in speakers if s not in embeddings]
    if missing:
        raise DataError(f"{source}: no vector for speaker {missing[0]}"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return np.stack([embeddings[s] for s in speakers])


# ---------------------------------------------------------------------------- the stage


def select_cuts(cuts: Sequence[Any], per_speaker: int, seed: int) -> List[Any]:
    """At most `per_speaker` cuts of each speaker (0: all), drawn without replacement, seeded.

    The draw depends only on the seed and the speakers' sorted cut ids, not on input order.
    """
    from asrtools.data.cuts import cut_speaker

    by_speaker: Dict[str, List[Any]] = {}
    for cut in sorted(cuts, key=lambda c: c.id):
        by_speaker.setdefault(cut_speaker(cut), []).append(cut)
    rng = np.random.default_rng(seed)
    chosen: List[Any] = []
    for speaker in sorted(by_speaker):
        group = by_speaker[speaker]
        if 0 < per_speaker < len(group):
            chosen += [group[i] for i in sorted(rng.choice(len(group), per_speaker, replace=False))]
        else:
            chosen += group
    return chosen


def write_embeddings(out_dir: Path, speakers: Sequence[str], vectors: np.ndarray, counts: np.ndarray,
                     info: Mapping[str, Any]) -> None:
    """embeddings.npz (speakers (S,), vectors (S, D) float32, counts (S,)) and info.json, atomically."""
    save_npz(Path(out_dir) / EMBEDDINGS_NPZ, speakers=np.array(list(speakers)),
             vectors=np.asarray(vectors, dtype=np.float32), counts=np.asarray(counts, dtype=np.int64))
    atomic_write_json(Path(out_dir) / INFO_JSON, {**info, "speakers": len(speakers), "dim": int(vectors.shape[1]),
                                                 "utts_per_speaker": _count_range(counts)})


def _count_range(counts: np.ndarray) -> Dict[str, int]:
    return {"min": int(np.min(counts)), "max": int(np.max(counts)), "total": int(np.sum(counts))}


class CohortEmbedWork(EmbedWork):
    """`EmbedWork` whose outputs are the cohort-discovery artifact (embeddings.npz, utterances.npz, info.json).

    Args:
      out_dir, cuts, shard_size, load, describe: as for `EmbedWork` (cuts: the selected ones).
      cuts_paths: the cut manifests, recorded in info.json.
      selection: how the cuts were chosen (utterances per speaker, seed), recorded in info.json.
    """

    def __init__(self, out_dir: Path, cuts: Sequence[Any], shard_size: int, load: EmbedLoader,
                 describe: Any, cuts_paths: Sequence[Path], selection: Mapping[str, Any]) -> None:
        super().__init__(out_dir, cuts, shard_size, load, describe, cuts_paths[0])
        self.cuts_paths = [str(p) for p in cuts_paths]
        self.selection = dict(selection)

    def write_outputs(self, ids: np.ndarray, speakers: np.ndarray, vectors: np.ndarray) -> None:
        save_npz(self.out_dir / UTTERANCES_NPZ, ids=ids, speakers=speakers, vectors=vectors)
        names, means, counts = speaker_means(list(ids), list(speakers), vectors)
        write_embeddings(self.out_dir, names, means, counts,
                         {"encoder": self._describe(), "cuts": self.cuts_paths, "selection": self.selection,
                          "utterances": len(ids)})


def encoder_loader(spec: EncoderSpec, device: str, num_threads: int) -> Tuple[EmbedLoader, Any]:
    """(load, describe) of an encoder spec: `load()` builds the `EmbedFn` in the process that embeds."""
    from asrtools.sv.extract import checkpoint_embedder, load_speaker_checkpoint, resemblyzer_embedder

    if spec.kind == "file":
        raise ConfigError("a file: encoder embeds nothing; use embed_from_file")

    def load() -> EmbedFn:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        return (checkpoint_embedder(spec.path, device) if spec.kind == "sv" else resemblyzer_embedder())[0]

    def describe() -> Dict[str, Any]:
        if spec.kind == "sv":
            return load_speaker_checkpoint(spec.path)[2]
        return resemblyzer_embedder()[1]

    return load, describe


def check_encoder(spec: EncoderSpec) -> None:
    """Fail at the door if the encoder cannot run: the package (Resemblyzer) or the checkpoint (sv)."""
    from asrtools.sv.extract import load_speaker_checkpoint, resemblyzer_embedder

    if spec.kind == "resemblyzer":
        resemblyzer_embedder()
    elif spec.kind == "sv":
        load_speaker_checkpoint(spec.path)


def embed_from_file(out_dir: Path, source: Path, speakers: Optional[Sequence[str]]) -> int:
    """The artifact from a user's file (`load_embeddings`), restricted to `speakers` when given.

    Returns the number of speakers written; DataError naming a speaker of `speakers` the file lacks.
    """
    embeddings = load_embeddings(source)
    names = sorted(set(speakers)) if speakers is not None else list(embeddings)
    vectors = vectors_for(embeddings, names, f"embeddings {source}")
    write_embeddings(out_dir, names, vectors, np.zeros(len(names), dtype=np.int64),
                     {"encoder": {"model": "file", "file": str(source)}, "utterances": 0})
    return len(names)
