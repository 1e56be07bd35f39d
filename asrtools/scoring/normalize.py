"""Explicit, configurable text normalisation applied to references and hypotheses before scoring.

Nothing is normalised unless asked for. The steps, always in this order, are:

1. ``lower``: Unicode lower-casing (``str.lower``). sclite's default case-insensitive mode
   lower-cases ASCII only; for ASCII text the two agree.
2. ``punct``: delete every character whose Unicode category is punctuation (``P*``), as
   jiwer's ``RemovePunctuation`` does ("don't" -> "dont"); tokens that become empty vanish.
3. a GLM-like mapping file of ``from => to`` rules over word sequences, applied greedily
   left to right with the longest matching ``from`` first (``gonna => going to``,
   ``uh =>`` deletes). Rule sides are normalised with steps 1-2 so they match the text.

Tokens are whitespace-separated words (``str.split``).
"""
from __future__ import annotations

import dataclasses
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from asrtools.errors import ConfigError, DataError

NORMALIZE_CHOICES = ("lower", "punct")

GlmRule = Tuple[Tuple[str, ...], Tuple[str, ...]]

class _PunctuationTable(dict):
    """A `str.translate` table mapping punctuation code points to None, filled on demand."""

    def __missing__(self, codepoint: int) -> Optional[int]:
        value = None if unicodedata.category(chr(codepoint)).startswith("P") else codepoint
        self[codepoint] = value
        return value


_PUNCT_TABLE = _PunctuationTable()


def strip_punctuation(text: str) -> str:
    """`text` without Unicode punctuation characters (categories Pc Pd Pe Pf Pi Po Ps)."""
    return text.translate(_PUNCT_TABLE)


def read_glm(path: Path) -> List[GlmRule]:
    """Read `from => to` rules, one per line; `#` or `;;` start a comment line.

    Args:
      path: the mapping file (UTF-8). `from` must hold at least one word; `to` may be
        empty (the words are deleted).

    Returns:
      The rules in file order as `(from_words, to_words)` tuples.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: GLM mapping file not found")
    rules: List[GlmRule] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith(";;"):
            continue
        if "=>" not in stripped:
            raise DataError(f"{path}:{lineno}: malformed rule {stripped!r} (expected 'from => to')")
        lhs, rhs = stripped.split("=>", 1)
        source = tuple(lhs.split())
        if not source:
            raise DataError(f"{path}:{lineno}: rule {stripped!r} has nothing to map from")
        rules.append((source, tuple(rhs.split())))
    return rules


@dataclasses.dataclass(frozen=True)
class TextNormalizer:
    """Turns a transcript string into the list of words that is scored.

    Attributes:
      lower: lower-case the text.
      punct: delete punctuation characters.
      glm_rules: `(from_words, to_words)` rewrite rules (see `read_glm`).
    """

    lower: bool = False
    punct: bool = False
    glm_rules: Tuple[GlmRule, ...] = ()

    def __post_init__(self) -> None:
        index: Dict[str, List[GlmRule]] = {}
        for rule in self.glm_rules:
            index.setdefault(rule[0][0], []).append(rule)
        for rules in index.values():
            rules.sort(key=lambda r: -len(r[0]))  # longest match first; stable for equal lengths
        object.__setattr__(self, "_rule_index", index)

    @classmethod
    def from_options(cls, names: Sequence[str] = (), glm: Optional[Path] = None) -> "TextNormalizer":
        """Build from CLI-style step names (`lower`, `punct`) and an optional GLM file."""
        unknown = sorted(set(names) - set(NORMALIZE_CHOICES))
        if unknown:
            raise ConfigError(
                f"unknown normalisation {unknown[0]!r} (choose from {', '.join(NORMALIZE_CHOICES)})"
            )
        base = cls(lower="lower" in names, punct="punct" in names)
        if glm is None:
            return base
        rules = []
        for source, target in read_glm(glm):
            norm_source = tuple(base._words(" ".join(source)))
            if norm_source:
                rules.append((norm_source, tuple(base._words(" ".join(target)))))
        return dataclasses.replace(base, glm_rules=tuple(rules))

    @property
    def is_identity(self) -> bool:
        """True when the normaliser only splits on whitespace."""
        return not (self.lower or self.punct or self.glm_rules)

    def describe(self) -> Dict[str, object]:
        """A JSON-serialisable description (for wer.json and stage fingerprints)."""
        return {
            "lower": self.lower,
            "punct": self.punct,
            "glm_rules": [[" ".join(a), " ".join(b)] for a, b in self.glm_rules],
        }

    def _words(self, text: str) -> List[str]:
        if self.lower:
            text = text.lower()
        if self.punct:
            text = strip_punctuation(text)
        return text.split()

    def __call__(self, text: str) -> List[str]:
        """Normalise one transcript.

        Args:
          text: the raw transcript.

        Returns:
          The scored words.
        """
        words = self._words(text)
        if not self.glm_rules:
            return words
        return _apply_rules(words, self._rule_index)  # type: ignore[attr-defined]


def _apply_rules(words: List[str], index: Dict[str, List[GlmRule]]) -> List[str]:
    out: List[str] = []
    pos = 0
    while pos < len(words):
        for source, target in index.get(words[pos], ()):
            if tuple(words[pos : pos + len(source)]) == source:
                out.extend(target)
                pos += len(source)
                break
        else:
            out.append(words[pos])
            pos += 1
    return out
