"""Sentence pools for the synthetic corpus, from Debian text packages.

Sources: WordNet usage examples (`wordnet-base`, quoted examples inside glosses) and
fortune cookies (`fortunes`, `fortunes-min`, without the offensive files). Sentences are
normalised to upper-case words, restricted to a closed vocabulary (the top-K words), and
split into train/dev/test pools *before* any sentence is assigned to a speaker, so test
sentences never occur in training.
"""
from __future__ import annotations

import collections
import random
import re
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence

from asrtools.errors import DataError

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Fortune files left out: offensive or sensitive topics, and pictures made of characters.
EXCLUDED_FORTUNES = {
    "ethnic", "men-women", "drugs", "sex", "politics", "religion", "love", "medicine", "law",
    "art", "ascii-art", "translate-me", "perl", "linux", "linuxcookie", "debian", "computers",
}
_ALLOWED = re.compile(r"^[A-Za-z ,.;:!?'\"()-]+$")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def normalise(sentence: str) -> List[str]:
    """Upper-case words of `sentence`, or [] if it has digits or unusual characters."""
    sentence = " ".join(sentence.split())
    if not sentence or not _ALLOWED.match(sentence):
        return []
    return [w.upper() for w in _WORD.findall(sentence)]


def wordnet_examples(directory: Path = WORDNET_DIR) -> Iterator[str]:
    """The quoted usage examples of every WordNet synset gloss."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = directory / f"data.{pos}"
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue
                gloss = line.split(" | ", 1)[1]
                yield from re.findall(r'"([^"]+)"', gloss)


def fortune_sentences(directory: Path = FORTUNES_DIR) -> Iterator[str]:
    """Sentences of the non-excluded fortune files (one fortune may give several)."""
    for path in sorted(directory.iterdir()):
        if path.suffix or path.is_dir() or path.name in EXCLUDED_FORTUNES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for fortune in text.split("\n%\n"):
            if "\t" in fortune or "--" in fortune:  # attributions, dialogues, verse layouts
                fortune = fortune.split("--")[0]
            for sentence in _SENTENCE_END.split(" ".join(fortune.split())):
                yield sentence


def closed_vocabulary_sentences(
    raw: Iterable[str], vocab_size: int, min_words: int, max_words: int
) -> List[List[str]]:
    """Normalised, de-duplicated sentences fully covered by the `vocab_size` top words.

    Returns the sentences sorted, so the result does not depend on source order.
    """
    candidates = set()
    for sentence in raw:
        words = normalise(sentence)
        if min_words <= len(words) <= max_words:
            candidates.add(tuple(words))
    counts = collections.Counter(w for s in candidates for w in s)
    vocab = {w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size]}
    return sorted(list(s) for s in candidates if all(w in vocab for w in s))


def sentence_pools(
    vocab_size: int,
    min_words: int,
    max_words: int,
    split_fractions: Dict[str, float],
    seed: int,
) -> Dict[str, List[str]]:
    """Disjoint pools of sentences per split, e.g. {"train": [...], "dev": [...], "test": [...]}.

    Args:
      vocab_size: size K of the closed vocabulary (top-K words by sentence frequency).
      min_words, max_words: sentence length limits in words.
      split_fractions: fraction of sentences per split (normalised to sum to 1).
      seed: shuffling seed.
    """
    for required in (WORDNET_DIR / "data.noun", FORTUNES_DIR / "fortunes"):
        if not required.exists():
            raise DataError(f"{required}: text source missing (install wordnet-base and fortunes; "
                            "scripts/setup_env.sh does)")
    raw = list(wordnet_examples()) + list(fortune_sentences())
    sentences = [" ".join(words) for words in
                 closed_vocabulary_sentences(raw, vocab_size, min_words, max_words)]
    random.Random(seed).shuffle(sentences)
    total = sum(split_fractions.values())
    pools: Dict[str, List[str]] = {}
    start = 0
    names: Sequence[str] = list(split_fractions)
    for i, name in enumerate(names):
        end = len(sentences) if i == len(names) - 1 else start + round(
            len(sentences) * split_fractions[name] / total)
        pools[name] = sentences[start:end]
        start = end
    return pools
