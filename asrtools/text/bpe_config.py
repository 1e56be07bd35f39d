"""Options of the BPE stage."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class BpeConfig:
    vocab_size: int = 500
    model_type: str = "bpe"
    character_coverage: float = 1.0

    def validate(self) -> None:
        if self.model_type not in ("bpe", "unigram"):
            raise ValueError("model_type must be bpe or unigram")
        if self.vocab_size < 8:
            raise ValueError("vocab_size must be >= 8 (5 ids are reserved)")
