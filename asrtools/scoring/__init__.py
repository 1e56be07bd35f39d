"""Scoring: WER with sclite- or jiwer-exact counts, WER by speaker cohort, system comparison.

Modules (import what you need; nothing heavy is imported here):

- `asrtools.scoring.wer`: `align`, `align_many`, `score_pairs` -> `WerReport`, `ErrorCounts`.
- `asrtools.scoring.dp`: the batched alignment DP behind them (levenshtein / sclite modes).
- `asrtools.scoring.normalize`: `TextNormalizer` (lower-casing, punctuation, GLM-like rules).
- `asrtools.scoring.io`: `read_trn`, `read_kaldi_text`, `read_recogs`, `load_pairs`,
  `read_speaker_attributes` (``--cohort-map``).
- `asrtools.scoring.report`: the files of a WER directory, `read_wer_dir`, `load_report`.
- `asrtools.scoring.cohorts`: `UtteranceTable`, `cohort_table`, `overall_stats`, `Thresholds`.
- `asrtools.scoring.disparity`: `speaker_disparity` (best-worst gap, permutation test, interval).
- `asrtools.scoring.compare`: `compare_systems` (paired speaker bootstrap + NIST's paired tests).
- `asrtools.scoring.bootstrap`, `asrtools.scoring.significance`: the statistics.
- `asrtools.scoring.simulate`: simulated test sets with a known gap (calibration checks).
- `asrtools.scoring.tables`, `asrtools.scoring.plots`: JSON/CSV/Markdown and PNG outputs.

The command line is `asrtools score wer|cohorts|compare` (`asrtools.cli.score`).
"""
