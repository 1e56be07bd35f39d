"""Word error rate: alignments, error counts and per-utterance / per-speaker / total reports.

`align` aligns one utterance; `score_pairs` aligns many at once (batched DP, see
`asrtools.scoring.dp`) and returns a `WerReport` with per-utterance alignments and counts,
per-speaker and total `ErrorCounts`. Two alignment modes:

- ``levenshtein`` (default): minimum S+D+I; counts equal jiwer's on the same words.
- ``sclite``: NIST sclite's weights (sub 4, ins 3, del 3) and tie-breaking; counts equal
  ``sctk sclite`` on the same words (sclite folds case unless run with ``-s``: use the
  ``lower`` normalisation to reproduce its default).

A speaker is the utterance-id part before the first ``-`` (else before the first ``_``),
as sclite's ``-i rm``; inputs that carry an explicit speaker (recogs.jsonl) use it instead,
and a Kaldi ``utt2spk`` file (``--utt2spk``) overrides both.

Scoring is case-sensitive unless the ``lower`` normalisation is asked for. Because a model
that writes upper case scored against lower-case references gets ~100% WER without a single
wrong word, `case_mismatch` counts the substitutions that differ only in letter case and
`case_mismatch_warning` turns a large share of them into one warning line.
"""
from __future__ import annotations

import dataclasses
import itertools
import types
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from asrtools.scoring.dp import LEVENSHTEIN, MODES, SCLITE, align_batch, check_mode

__all__ = [
    "LEVENSHTEIN",
    "MODES",
    "SCLITE",
    "Alignment",
    "ErrorCounts",
    "UttPair",
    "UtteranceScore",
    "WerReport",
    "align",
    "align_many",
    "case_mismatch",
    "case_mismatch_warning",
    "score_pairs",
    "speaker_of",
]

_NO_FIELDS: Mapping[str, Any] = types.MappingProxyType({})


def speaker_of(utt_id: str) -> str:
    """The speaker of an utterance id by sclite's `-i rm` rule: text before the first `-`.

    If the id has no `-`, the text before the first `_`; if neither, the whole id.
    """
    for sep in ("-", "_"):
        pos = utt_id.find(sep)
        if pos > 0:
            return utt_id[:pos]
    return utt_id


@dataclasses.dataclass(frozen=True)
class ErrorCounts:
    """Summed alignment counts of a set of utterances.

    Attributes:
      sents: number of utterances.
      words: number of reference words (`corr + sub + del_`).
      hyp_words: number of hypothesis words (`corr + sub + ins`).
      corr, sub, del_, ins: correct words, substitutions, deletions, insertions.
      sent_err: utterances with at least one error.
    """

    sents: int = 0
    words: int = 0
    hyp_words: int = 0
    corr: int = 0
    sub: int = 0
    del_: int = 0
    ins: int = 0
    sent_err: int = 0

    @property
    def err(self) -> int:
        """Word errors `sub + del + ins`."""
        return self.sub + self.del_ + self.ins

    @property
    def wer(self) -> Optional[float]:
        """`err / words`, or None when there are no reference words."""
        return self.err / self.words if self.words else None

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @classmethod
    def from_array(cls, counts: np.ndarray) -> "ErrorCounts":
        """Sum of per-utterance `(corr, sub, del, ins)` rows, `counts` shaped `(U, 4)`."""
        counts = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
        corr, sub, dele, ins = (int(x) for x in counts.sum(axis=0))
        sent_err = int((counts[:, 1:].sum(axis=1) > 0).sum())
        return cls(len(counts), corr + sub + dele, corr + sub + ins, corr, sub, dele, ins, sent_err)

    def to_dict(self) -> Dict[str, Any]:
        """JSON form with keys sents, words, hyp_words, corr, sub, del, ins, err, sent_err, wer."""
        return {
            "sents": self.sents,
            "words": self.words,
            "hyp_words": self.hyp_words,
            "corr": self.corr,
            "sub": self.sub,
            "del": self.del_,
            "ins": self.ins,
            "err": self.err,
            "sent_err": self.sent_err,
            "wer": self.wer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ErrorCounts":
        """Inverse of `to_dict` (derived keys are ignored)."""
        return cls(
            int(data["sents"]), int(data["words"]), int(data["hyp_words"]), int(data["corr"]),
            int(data["sub"]), int(data["del"]), int(data["ins"]), int(data["sent_err"]),
        )


class Alignment(NamedTuple):
    """The alignment of one reference with one hypothesis.

    Attributes:
      ref: reference words.
      hyp: hypothesis words.
      ops: one letter per alignment column: `C` correct, `S` substitution, `D` deletion
        (reference word missing from the hypothesis), `I` insertion.
    """

    ref: Tuple[str, ...]
    hyp: Tuple[str, ...]
    ops: str

    def pairs(self) -> List[Tuple[Optional[str], Optional[str], str]]:
        """Alignment columns as `(ref word or None, hyp word or None, op)`."""
        out = []
        r = h = 0
        for op in self.ops:
            ref_word = hyp_word = None
            if op != "I":
                ref_word = self.ref[r]
                r += 1
            if op != "D":
                hyp_word = self.hyp[h]
                h += 1
            out.append((ref_word, hyp_word, op))
        return out

    @property
    def counts(self) -> ErrorCounts:
        """This utterance's `ErrorCounts` (sents = 1)."""
        corr, sub, dele, ins = (self.ops.count(c) for c in "CSDI")
        return ErrorCounts(1, len(self.ref), len(self.hyp), corr, sub, dele, ins, int(sub + dele + ins > 0))


class UttPair(NamedTuple):
    """One utterance to score.

    Attributes:
      id: utterance (cut) id.
      speaker: speaker id.
      ref: reference transcript (raw text, normalised by `score_pairs`).
      hyp: hypothesis transcript.
      custom: cohort fields carried along (gender, region, ...).
      missing_hyp: True if the hypothesis was absent and replaced by an empty one.
    """

    id: str
    speaker: str
    ref: str
    hyp: str
    custom: Mapping[str, Any] = _NO_FIELDS
    missing_hyp: bool = False


class UtteranceScore(NamedTuple):
    """A scored utterance: its identity, cohort fields and alignment."""

    id: str
    speaker: str
    alignment: Alignment
    custom: Mapping[str, Any] = _NO_FIELDS

    @property
    def counts(self) -> ErrorCounts:
        """This utterance's counts."""
        return self.alignment.counts


@dataclasses.dataclass
class WerReport:
    """Scores of a set of utterances.

    Attributes:
      mode: the alignment mode used.
      utterances: per-utterance scores, in input order.
      missing_hyp: ids whose hypothesis was missing and scored as empty (`--allow-missing`).
      normalizer: description of the text normalisation applied (JSON-serialisable).
    """

    mode: str
    utterances: List[UtteranceScore]
    missing_hyp: List[str] = dataclasses.field(default_factory=list)
    normalizer: Dict[str, Any] = dataclasses.field(default_factory=dict)
    _counts: Optional[np.ndarray] = dataclasses.field(default=None, repr=False, compare=False)

    def counts_array(self) -> np.ndarray:
        """Per-utterance `(corr, sub, del, ins)`, shape `(U, 4)` int64 (computed once)."""
        if self._counts is None or len(self._counts) != len(self.utterances):
            out = np.zeros((len(self.utterances), 4), dtype=np.int64)
            for u, utt in enumerate(self.utterances):
                ops = utt.alignment.ops
                out[u] = (ops.count("C"), ops.count("S"), ops.count("D"), ops.count("I"))
            self._counts = out
        return self._counts

    @property
    def total(self) -> ErrorCounts:
        """Counts over all utterances."""
        return ErrorCounts.from_array(self.counts_array())

    def by_speaker(self) -> Dict[str, ErrorCounts]:
        """Counts per speaker, speakers sorted by name."""
        counts = self.counts_array()
        rows: Dict[str, List[int]] = {}
        for u, utt in enumerate(self.utterances):
            rows.setdefault(utt.speaker, []).append(u)
        return {spk: ErrorCounts.from_array(counts[rows[spk]]) for spk in sorted(rows)}


def _encode(sequences: Sequence[Sequence[str]], vocab: Dict[str, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Word ids concatenated `(sum_len,)` and offsets `(len(sequences) + 1,)`; grows `vocab`."""
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(seq) for seq in sequences])
    words = list(itertools.chain.from_iterable(sequences))
    for word in dict.fromkeys(words):
        vocab.setdefault(word, len(vocab))
    flat = np.array(list(map(vocab.__getitem__, words)), dtype=np.int64)
    return flat, offsets


def align_many(
    refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], mode: str = LEVENSHTEIN
) -> List[Alignment]:
    """Align many word sequences at once.

    Args:
      refs: reference word lists, one per utterance.
      hyps: hypothesis word lists (same length as `refs`).
      mode: `levenshtein` or `sclite`.

    Returns:
      One `Alignment` per utterance.
    """
    check_mode(mode)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    vocab: Dict[str, int] = {}
    ref_flat, ref_offsets = _encode(refs, vocab)
    hyp_flat, hyp_offsets = _encode(hyps, vocab)
    ops = align_batch(ref_flat, ref_offsets, hyp_flat, hyp_offsets, mode)
    return [Alignment(tuple(r), tuple(h), op.decode("ascii")) for r, h, op in zip(refs, hyps, ops)]


def align(ref_words: Sequence[str], hyp_words: Sequence[str], mode: str = LEVENSHTEIN) -> Alignment:
    """Align one reference word list with one hypothesis word list.

    Args:
      ref_words: reference words.
      hyp_words: hypothesis words.
      mode: `levenshtein` (jiwer's counts) or `sclite` (sclite's counts).
    """
    return align_many([ref_words], [hyp_words], mode)[0]


def score_pairs(
    pairs: Iterable[UttPair],
    mode: str = LEVENSHTEIN,
    normalizer: Optional[Any] = None,
) -> WerReport:
    """Normalise, align and count a set of utterances.

    Args:
      pairs: the utterances (`UttPair`; ids must be unique).
      mode: `levenshtein` or `sclite`.
      normalizer: a callable `text -> words` (an `asrtools.scoring.normalize.TextNormalizer`);
        None splits on whitespace only.

    Returns:
      A `WerReport` in input order.
    """
    pairs = list(pairs)
    split = normalizer if normalizer is not None else str.split
    refs = [split(p.ref) for p in pairs]
    hyps = [split(p.hyp) for p in pairs]
    alignments = align_many(refs, hyps, mode)
    utterances = [
        UtteranceScore(p.id, p.speaker, ali, p.custom) for p, ali in zip(pairs, alignments)
    ]
    describe = getattr(normalizer, "describe", None)
    return WerReport(
        mode=mode,
        utterances=utterances,
        missing_hyp=[p.id for p in pairs if p.missing_hyp],
        normalizer=describe() if callable(describe) else {},
    )


CASE_WARNING_SHARE = 0.2  # warn when at least this share of the word errors are case-only substitutions


def case_mismatch(report: WerReport) -> Tuple[int, int, int]:
    """How much of `report`'s errors letter case alone explains.

    Returns:
      `(case-only substitutions, word errors, utterances whose reference and hypothesis
      are equal once case is folded but differ as written)`.
    """
    case_only = utterances = 0
    for utt in report.utterances:
        ali = utt.alignment
        case_only += sum(1 for r, h, op in ali.pairs() if op == "S" and r.casefold() == h.casefold())
        if ali.ref != ali.hyp and [w.casefold() for w in ali.ref] == [w.casefold() for w in ali.hyp]:
            utterances += 1
    return case_only, report.total.err, utterances


def case_mismatch_warning(report: WerReport) -> Optional[str]:
    """One warning line when letter case explains `CASE_WARNING_SHARE` or more of the errors, else None."""
    case_only, errors, utterances = case_mismatch(report)
    if not case_only or case_only < CASE_WARNING_SHARE * errors:
        return None
    return (f"{case_only} of {errors} word errors ({100 * case_only / errors:.0f}%) are substitutions that differ "
            f"from the reference only in letter case, and {utterances} of {len(report.utterances)} utterances "
            "match it once case is folded: reference and hypothesis are written in different case; "
            "score with --normalize lower to compare them case-insensitively")
