"""Reading cut manifests and turning cut mini-batches into padded features and transcripts.

Shared by training, decoding and the audits, so none of them imports the others:
`load_cuts` reads a lhotse CutSet and says in one line what a manifest of the wrong kind
is; `AsrDataset` is a lhotse-style map dataset (a sampler yields a `CutSet` mini-batch and
the dataset returns padded features, transcripts and ids, like lhotse's
`K2SpeechRecognitionDataset` minus the k2 supervision tensors a transducer does not use);
`ConversationDataset` does the same for multi-talker conversation cuts, returning their
timed reference turns.
Augmentation is *not* done here: the trainer applies SpecAugment in the training process,
where its RNG state is checkpointed, so a resumed run draws the same masks.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset.collation import collate_features

from asrtools.data.io import malformed_line
from asrtools.data.turns import turns_of_cut
from asrtools.errors import DataError, describe

# What the first record of a lhotse manifest looks like, by kind (for "wrong manifest" errors).
_MANIFEST_KINDS = (
    ("a SupervisionSet (supervisions)", ("recording_id", "start", "duration"), ("type",)),
    ("a RecordingSet (recordings)", ("sources", "sampling_rate", "num_samples"), ("type",)),
    ("a FeatureSet (features)", ("storage_type", "num_frames", "num_features"), ("type",)),
)


def _first_record(path: Path) -> Optional[Dict[str, Any]]:
    """The first JSON object of a (gzipped) jsonl manifest, or None if it is not one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def manifest_kind(path: Path) -> Optional[str]:
    """What kind of lhotse manifest `path` holds when it is *not* a CutSet, else None."""
    record = _first_record(Path(path))
    if record is None or str(record.get("type", "")).endswith("Cut"):
        return None
    for kind, required, forbidden in _MANIFEST_KINDS:
        if all(k in record for k in required) and not any(k in record for k in forbidden):
            return kind
    return None


def check_cuts_file(path: Path, name: str = "cuts") -> None:
    """Cheap check (first record only) that `path` exists and is not another kind of manifest.

    Raises:
      DataError: one line naming `name` and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{name}: {path} does not exist")
    kind = manifest_kind(path)
    if kind is not None:
        raise DataError(f"{name}: {path} is {kind}, not a CutSet; give the cuts_<split>.jsonl.gz "
                        f"written by `asrtools data features`")


def load_cuts(path: Path, name: str = "cuts") -> CutSet:
    """Read a lhotse CutSet manifest eagerly.

    Raises:
      DataError: one line naming `name` and the file (and line) when it is missing,
        malformed, empty, or a manifest of another kind (supervisions, recordings, features).
    """
    path = Path(path)
    check_cuts_file(path, name)
    try:
        cuts = CutSet.from_file(path).to_eager()
    except Exception as err:  # lhotse raises many kinds for malformed manifests
        bad = malformed_line(path) if ".jsonl" in path.name else None
        if bad is not None:
            raise DataError(f"{name}: {path}:{bad[0]}: {bad[1]}") from None
        raise DataError(f"{name}: {path} is not a readable lhotse CutSet ({describe(err)})") from None
    if len(cuts) == 0:
        raise DataError(f"{name}: {path} holds no cuts")
    return cuts


def cut_text(cut: Cut, required: bool = True) -> str:
    """The transcript of a cut (its supervisions' texts joined by spaces).

    Args:
      cut: the cut.
      required: raise `DataError` if it has none (training); else return "" (decoding
        and scoring, where an empty reference counts every hypothesis word as an insertion).
    """
    texts = [s.text.strip() for s in cut.supervisions if s.text and s.text.strip()]
    if not texts and required:
        raise DataError(f"cut {cut.id}: no supervision with a transcript")
    return " ".join(texts)


def cut_speaker(cut: Cut) -> str:
    """The speaker of a cut's first supervision ("unknown" if unset)."""
    speaker = cut.supervisions[0].speaker if cut.supervisions else None
    return speaker or "unknown"


def check_features(cuts: CutSet, feature_dim: int, name: str = "cuts") -> None:
    """Raise `DataError` naming the first cut without features of size `feature_dim`."""
    for cut in cuts:
        if not cut.has_features:
            raise DataError(f"{name}: cut {cut.id} has no precomputed features (run `asrtools data features`)")
        if cut.num_features != feature_dim:
            raise DataError(f"{name}: cut {cut.id} has {cut.num_features}-dim features, "
                            f"the model expects {feature_dim}")


class AsrDataset(torch.utils.data.Dataset):
    """Turn a `CutSet` mini-batch into model inputs.

    Args:
      require_text: every cut must have a transcript (training); when False a cut without
        one gets the empty text (decoding).

    Returns a dict with:
      features: (B, T, F) float32 padded features (longest cut first);
      feature_lens: (B,) int64 valid frames;
      texts: B transcripts; cut_ids: B cut ids; speakers: B speaker ids.
    """

    def __init__(self, require_text: bool = True) -> None:
        self.require_text = require_text

    def __getitem__(self, cuts: CutSet) -> Dict[str, Any]:
        cuts, features, feature_lens = collate_longest_first(cuts)
        return {
            "features": features,
            "feature_lens": feature_lens,
            "texts": [cut_text(c, self.require_text) for c in cuts],
            "cut_ids": [c.id for c in cuts],
            "speakers": [cut_speaker(c) for c in cuts],
        }


def collate_longest_first(cuts: CutSet) -> Tuple[CutSet, torch.Tensor, torch.Tensor]:
    """Sort a mini-batch longest first and pad its features.

    Returns:
      The sorted cuts, features (B, T, F) float32 and feature_lens (B,) int64.

    Raises:
      DataError: naming the first cuts when their features cannot be loaded.
    """
    cuts = cuts.sort_by_duration(ascending=False)
    try:
        features, feature_lens = collate_features(cuts)
    except Exception as err:
        ids = ", ".join(c.id for c in list(cuts)[:3])
        raise DataError(f"cannot load features of cuts {ids}...: {err}") from None
    return cuts, features.to(torch.float32), feature_lens.to(torch.int64)


class ConversationDataset(torch.utils.data.Dataset):
    """A `CutSet` mini-batch of conversation cuts -> padded features and reference turns.

    Returns a dict with features (B, T, F) float32, feature_lens (B,) int64, cut_ids, and
    turns (B lists of `Turn`, sorted by start), longest cut first.
    """

    def __getitem__(self, cuts: CutSet) -> Dict[str, Any]:
        cuts, features, feature_lens = collate_longest_first(cuts)
        return {"features": features, "feature_lens": feature_lens,
                "cut_ids": [c.id for c in cuts], "turns": [turns_of_cut(c) for c in cuts]}
