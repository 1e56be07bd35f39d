"""The BPE stage: train a sentencepiece model on the training transcripts.

Output directory: `bpe.model`, `tokens.txt` (`piece id` per line, icefall's layout) and
`stats.json` (vocabulary size, average tokens per utterance).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Dict, List

from lhotse import SupervisionSet

from asrtools.data.io import read_manifest
from asrtools.errors import DataError
from asrtools.pipeline.atomic import atomic_path, atomic_write_json, atomic_write_text
from asrtools.text.bpe_config import BpeConfig
from asrtools.text.tokenizer import Tokenizer, train_bpe


def read_transcripts(supervisions_path: Path) -> List[str]:
    """The transcripts of a SupervisionSet manifest; empty ones are an error."""
    supervisions = read_manifest(supervisions_path, SupervisionSet, "--supervisions")
    texts = []
    for sup in supervisions:
        if not (sup.text or "").strip():
            raise DataError(f"{supervisions_path}: supervision {sup.id} has an empty transcript")
        texts.append(sup.text)
    return texts


def build_bpe(texts: List[str], out_dir: Path, cfg: BpeConfig) -> Dict[str, float]:
    """Train `out_dir/bpe.model` on the transcripts (`read_transcripts`) and write tokens.txt and stats.json."""
    with atomic_path(Path(out_dir) / "bpe.model") as tmp:
        train_bpe(texts, tmp, cfg.vocab_size, cfg.model_type, cfg.character_coverage)
    tokenizer = Tokenizer(Path(out_dir) / "bpe.model")
    pieces = [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    atomic_write_text(Path(out_dir) / "tokens.txt", "".join(f"{p} {i}\n" for i, p in enumerate(pieces)))
    lengths = [len(ids) for ids in tokenizer.encode(texts)]
    stats = {"vocab_size": tokenizer.vocab_size, "utterances": len(texts),
             "mean_tokens_per_utterance": round(statistics.mean(lengths), 3)}
    atomic_write_json(Path(out_dir) / "stats.json", stats)
    return stats
