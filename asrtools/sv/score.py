"""Cosine scoring of verification trials, with optional adaptive s-norm (AS-norm).

Score of a trial = cosine similarity of the enrolment and test utterance embeddings.
AS-norm (Matejka et al., 2017) normalises it with a cohort of speaker embeddings (the
training speakers' averaged embeddings): for each side x in {enroll, test}, mu_x and
sigma_x are the mean and standard deviation of x's `top_k` highest cohort scores, and

    s' = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2.

Scores file (`scores.txt`, written by `asrtools sv score`): one `label enroll test score`
line per trial, in trial-list order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.pipeline import atomic_write_text
from asrtools.scoring.sv import Trial
from asrtools.sv.embeddings import normalize_rows

SCORES_TXT = "scores.txt"


def cosine_scores(trials: Sequence[Trial], index: Dict[str, int], vectors: np.ndarray) -> np.ndarray:
    """(n,) cosine scores of `trials` given utterance id -> row of (U, E) `vectors`."""
    unit = normalize_rows(vectors.astype(np.float64))
    enroll = unit[[index[t.enroll] for t in trials]]
    test = unit[[index[t.test] for t in trials]]
    return np.einsum("ne,ne->n", enroll, test)


def as_norm(trials: Sequence[Trial], index: Dict[str, int], vectors: np.ndarray, scores: np.ndarray,
            cohort: np.ndarray, top_k: int) -> np.ndarray:
    """AS-norm of `scores` (n,) with cohort vectors (C, E) and the top-`top_k` cohort scores."""
    if len(cohort) == 0:
        raise DataError("AS-norm needs a non-empty cohort")
    k = min(top_k, len(cohort))
    unit = normalize_rows(vectors.astype(np.float64))
    cohort_scores = unit @ normalize_rows(cohort.astype(np.float64)).T  # (U, C)
    top = -np.partition(-cohort_scores, k - 1, axis=1)[:, :k]
    mean, std = top.mean(axis=1), np.maximum(top.std(axis=1), 1e-8)
    e = np.array([index[t.enroll] for t in trials])
    t = np.array([index[tr.test] for tr in trials])
    return 0.5 * ((scores - mean[e]) / std[e] + (scores - mean[t]) / std[t])


def write_scores(path: Path, trials: Sequence[Trial], scores: np.ndarray) -> None:
    """`label enroll test score` lines (atomic)."""
    atomic_write_text(path, "".join(f"{t.line()} {s:.8f}\n" for t, s in zip(trials, scores)))


def read_scores(path: Path) -> Tuple[List[Trial], np.ndarray]:
    """Trials and scores of a `label enroll test score` file.

    Raises:
      DataError: naming file and line for a malformed line or a non-finite score, or the
        file when it has no target or no non-target trial.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_TXT
    if not path.is_file():
        raise DataError(f"scores {path} do not exist")
    trials, scores = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            try:
                if len(fields) != 4 or fields[0] not in ("0", "1"):
                    raise ValueError
                score = float(fields[3])
            except ValueError:
                raise DataError(f"{path}:{lineno}: expected 'label enroll test score', got {raw.strip()[:80]!r}") from None
            if not np.isfinite(score):
                raise DataError(f"{path}:{lineno}: score is not finite ({fields[3]})")
            trials.append(Trial(int(fields[0]), fields[1], fields[2]))
            scores.append(score)
    labels = {t.label for t in trials}
    if labels != {0, 1}:
        kind = "target" if 1 not in labels else "non-target"
        raise DataError(f"{path}: no {kind} trials: an EER needs both kinds")
    return trials, np.array(scores, dtype=np.float64)


def score_trials(trials: Sequence[Trial], ids: Sequence[str], vectors: np.ndarray,
                 cohort: Optional[np.ndarray] = None, top_k: int = 200) -> np.ndarray:
    """Cosine (and, with a cohort, AS-normalised) scores of `trials`.

    Args:
      trials: the trials (ids must be in `ids`).
      ids: utterance ids, row-aligned with `vectors` (U, E).
      cohort: (C, E) cohort speaker vectors for AS-norm, or None for raw cosine scores.
      top_k: AS-norm's top-k.
    """
    index = {str(u): i for i, u in enumerate(ids)}
    scores = cosine_scores(trials, index, vectors)
    if cohort is not None:
        scores = as_norm(trials, index, vectors, scores, cohort, top_k)
    return scores
