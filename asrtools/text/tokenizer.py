"""Sentencepiece BPE tokenizer with the transducer's reserved ids.

Id layout (fixed, so every model and decoder agrees):
  0 = `<blk>`  the transducer blank (also sentencepiece's pad piece)
  1 = `<sos/eos>` (sentencepiece's bos/eos piece, unused by transducers)
  2 = `<unk>`
  3 = `<sot>`  start of a speaker turn (multi-talker models)
  4 = `<eot>`  end of a speaker turn
  5.. = BPE pieces
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterable, List, Sequence

import sentencepiece as spm

from asrtools.errors import DataError

BLANK = "<blk>"
SOS_EOS = "<sos/eos>"
UNK = "<unk>"
SOT = "<sot>"
EOT = "<eot>"
USER_SYMBOLS = (SOT, EOT)


def train_bpe(texts: Iterable[str], model_path: Path, vocab_size: int, model_type: str = "bpe",
              character_coverage: float = 1.0, seed_sentencepiece_size: int = 1000000) -> None:
    """Train a sentencepiece model on `texts` and write it to `model_path` (+ `.vocab`).

    Args:
      texts: training sentences (already normalised, e.g. upper-case words).
      model_path: output path ending in `.model`; written as given (callers write it
        atomically by passing a temporary path).
      vocab_size: total vocabulary size including the 5 reserved ids.
      model_type: "bpe" or "unigram".
      character_coverage: sentencepiece's character_coverage.
    """
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise DataError("BPE training: no non-empty training sentences")
    model = io.BytesIO()
    try:
        _train_sentencepiece(sentences, model, vocab_size, model_type, character_coverage, seed_sentencepiece_size)
    except RuntimeError as err:
        limit = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", str(err))
        if limit is None:
            raise
        raise DataError(f"BPE training: vocab_size {limit.group(1)} is more than these {len(sentences)} "
                        f"sentences allow (at most {limit.group(2)}); lower vocab_size") from None
    Path(model_path).write_bytes(model.getvalue())


def _train_sentencepiece(sentences: List[str], model: io.BytesIO, vocab_size: int, model_type: str,
                         character_coverage: float, seed_sentencepiece_size: int) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=seed_sentencepiece_size,
        pad_id=0,
        pad_piece=BLANK,
        bos_id=1,
        bos_piece=SOS_EOS,
        eos_id=-1,
        unk_id=2,
        unk_piece=UNK,
        user_defined_symbols=list(USER_SYMBOLS),
        num_threads=1,  # deterministic output
        minloglevel=2,
    )


class Tokenizer:
    """Text <-> token ids with a trained sentencepiece model.

    Attributes:
      vocab_size: V, number of ids (including the reserved ones).
      blank_id: 0, the transducer blank.
      sot_id, eot_id: ids of `<sot>` and `<eot>`.
    """

    def __init__(self, model_path: Path) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise DataError(f"{model_path}: BPE model not found")
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.load(str(model_path))
        except (OSError, RuntimeError) as err:
            raise DataError(f"{model_path}: not a sentencepiece model ({err})") from None
        if self.sp.id_to_piece(0) != BLANK:
            raise DataError(f"{model_path}: id 0 is {self.sp.id_to_piece(0)!r}, expected {BLANK!r} "
                            "(train it with `asrtools bpe train`)")
        self.vocab_size = self.sp.get_piece_size()
        self.blank_id = 0
        self.unk_id = self.sp.unk_id()
        self.sot_id = self.sp.piece_to_id(SOT)
        self.eot_id = self.sp.piece_to_id(EOT)

    def encode(self, texts: Sequence[str]) -> List[List[int]]:
        """Token ids of each text."""
        return self.sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> List[str]:
        """Texts of each id sequence (blank ids are dropped)."""
        return [self.sp.decode([i for i in seq if i != self.blank_id]) for seq in ids]

    def pieces(self, text: str) -> List[str]:
        """The subword pieces of one text (for inspection)."""
        return self.sp.encode(text, out_type=str)
