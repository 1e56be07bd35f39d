"""Cohort statistics: bootstrap CIs (reproducible, widen as cohorts shrink, calibrated),
disparity summary, MAPSSWE against a hand computation, paired comparison."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

from asrtools.errors import ConfigError, DataError
from asrtools.scoring.bootstrap import bootstrap_p_value, bootstrap_wer, percentile_ci, rng_for
from asrtools.scoring.cohorts import Thresholds, UtteranceTable, cohort_table, overall_stats
from asrtools.scoring.compare import compare_systems
from asrtools.scoring.tables import compare_markdown
from asrtools.scoring.significance import (
    holm,
    mapsswe,
    mapsswe_from_segments,
    mapsswe_segments,
    mcnemar_test,
    nist_normal_p,
    sign_test,
    wilcoxon_test,
)


def _table(rows: Sequence[Dict], refs: Optional[List[str]] = None) -> UtteranceTable:
    """Rows of dicts with id, speaker, corr, sub, del, ins and cohort fields."""
    counts = np.array([[r["corr"], r["sub"], r["del"], r["ins"]] for r in rows], dtype=np.int64)
    fields = ("id", "speaker", "corr", "sub", "del", "ins")
    return UtteranceTable(
        ids=[r["id"] for r in rows],
        speakers=[r["speaker"] for r in rows],
        counts=counts,
        attributes=[{**{k: v for k, v in r.items() if k not in fields}, "speaker": r["speaker"]} for r in rows],
        refs=refs if refs is not None else [r["id"] for r in rows],
        ops=["C" * r["corr"] + "S" * r["sub"] + "D" * r["del"] + "I" * r["ins"] for r in rows],
    )


def _simulated(n_speakers: int, rng: np.random.Generator, region: str = "r", mean_wer: float = 0.15,
               utts: int = 10, prefix: str = "s") -> List[Dict]:
    """Speakers with heterogeneous error rates p ~ Beta(3, 3 (1 - m) / m), binomial errors."""
    rows = []
    for s in range(n_speakers):
        p = rng.beta(3.0, 3.0 * (1 - mean_wer) / mean_wer)
        for u in range(utts):
            words = int(rng.poisson(10)) + 1
            errors = int(rng.binomial(words, p))
            sub = errors // 2
            rows.append({"id": f"{prefix}{s}-{u}", "speaker": f"{prefix}{s}", "corr": words - errors,
                         "sub": sub, "del": errors - sub, "ins": 0, "region": region})
    return rows


def test_cohort_statistics_by_hand() -> None:
    rows = [
        {"id": "a-1", "speaker": "a", "corr": 8, "sub": 1, "del": 1, "ins": 0, "g": "x"},
        {"id": "a-2", "speaker": "a", "corr": 10, "sub": 0, "del": 0, "ins": 2, "g": "x"},
        {"id": "b-1", "speaker": "b", "corr": 5, "sub": 3, "del": 2, "ins": 0, "g": "x"},
        {"id": "c-1", "speaker": "c", "corr": 9, "sub": 0, "del": 1, "ins": 0, "g": "y"},
        {"id": "d-1", "speaker": "d", "corr": 10, "sub": 0, "del": 0, "ins": 0},
    ]
    grouping = cohort_table(_table(rows), ["g"], n_boot=200, seed=1, thresholds=Thresholds(2, 10, 1))
    by_label = {c.label: c for c in grouping.cohorts}
    x = by_label["x"]
    assert (x.n_speakers, x.n_utts, x.n_words, x.n_errors) == (2, 3, 30, 9)
    assert x.wer == pytest.approx(9 / 30)
    assert x.speaker_wer_mean == pytest.approx((4 / 20 + 5 / 10) / 2)
    assert x.speaker_wer_sd == pytest.approx(np.std([0.2, 0.5], ddof=1))
    assert x.sub_rate == pytest.approx(4 / 30) and x.ins_rate == pytest.approx(2 / 30)
    assert x.flags == []
    assert by_label["y"].flags == ["speakers<2"]
    assert by_label["(missing)"].wer == 0.0 and by_label["(missing)"].n_speakers == 1
    assert [c.label for c in grouping.cohorts] == ["x", "y", "(missing)"]  # worst first
    assert x.share_speakers == pytest.approx(2 / 4) and x.share_errors == pytest.approx(9 / 10)
    # y and (missing) have one speaker each: under the size floor (2), no interval and no gap test;
    # (missing) is reported by speaker and never tested.
    assert by_label["y"].not_tested == "too few speakers (1 < 2)" and np.isnan(by_label["y"].ci_speaker).all()
    assert x.not_tested is None and np.isfinite(x.ci_speaker).all()
    assert grouping.missing == {"g": ["d"]}
    assert grouping.to_dict()["missing_attributes"] == {"g": {"count": 1, "speakers": ["d"]}}
    assert grouping.disparity is None  # only x is testable
    with pytest.raises(ConfigError, match="--by 'regoin': no utterance has this field"):
        cohort_table(_table(rows), ["regoin"], n_boot=0)


def test_bootstrap_reproducible_with_seed_and_independent_of_other_cohorts() -> None:
    rng = np.random.default_rng(0)
    table = _table(_simulated(12, rng, "north") + _simulated(12, rng, "south", prefix="t"))
    first = cohort_table(table, ["region"], n_boot=300, seed=7)
    again = cohort_table(table, ["region"], n_boot=300, seed=7)
    other = cohort_table(table, ["region"], n_boot=300, seed=8)
    assert [c.ci_speaker for c in first.cohorts] == [c.ci_speaker for c in again.cohorts]
    assert first.disparity.abs_gap_ci == again.disparity.abs_gap_ci
    assert [c.ci_speaker for c in first.cohorts] != [c.ci_speaker for c in other.cohorts]
    north_only = _table([r for r in _simulated(12, np.random.default_rng(0), "north")])
    alone = cohort_table(north_only, ["region"], n_boot=300, seed=7).cohorts[0]
    assert alone.ci_speaker == next(c for c in first.cohorts if c.label == "north").ci_speaker


def test_confidence_intervals_widen_as_cohorts_shrink() -> None:
    rows = _simulated(160, np.random.default_rng(1))
    widths = []
    for n_speakers in (160, 40, 10):
        keep = {f"s{s}" for s in range(n_speakers)}
        stats = overall_stats(_table([r for r in rows if r["speaker"] in keep]), n_boot=500, seed=0)
        widths.append(stats.ci_speaker[1] - stats.ci_speaker[0])
    assert widths[0] < widths[1] < widths[2]
    assert widths[2] > 2 * widths[0]  # ~ sqrt(16) = 4x in theory


def test_speaker_bootstrap_coverage_on_simulated_data() -> None:
    """200 simulated test sets with a known WER of 0.15: the 90% speaker-level CI should cover
    it in ~90% of them; utterance-level resampling ignores speaker variation and under-covers."""
    rng = np.random.default_rng(12345)
    covered_speaker = covered_utterance = 0
    replications = 200
    for rep in range(replications):
        p = rng.beta(3.0, 17.0, size=60)  # 60 speakers, mean error rate 0.15
        words = rng.poisson(10, size=(60, 10)) + 1
        errors = rng.binomial(words, p[:, None])
        spk = bootstrap_wer(errors.sum(1), words.sum(1), 400, rng_for(rep, "speaker"))
        utt = bootstrap_wer(errors.ravel(), words.ravel(), 400, rng_for(rep, "utterance"))
        low, high = percentile_ci(spk, 0.90)
        covered_speaker += low <= 0.15 <= high
        low, high = percentile_ci(utt, 0.90)
        covered_utterance += low <= 0.15 <= high
    coverage = covered_speaker / replications
    assert 0.85 <= coverage <= 0.95, coverage
    assert covered_utterance / replications < coverage - 0.1


def test_mapsswe_segments_by_hand() -> None:
    # Segments close after 2 words correct in both; each includes 2 good words on either side.
    assert mapsswe_segments("CCSCCCCDCC", "CCCCCCCCCC") == [(5, 1, 0), (5, 1, 0)]
    # An insertion opens a segment; B's trailing insertion forms a last one with A's last 2 words.
    assert mapsswe_segments("CCICC", "CCCCI") == [(4, 1, 0), (2, 0, 1)]
    assert mapsswe_segments("CCCC", "CCCC") == []  # no error: no segment
    assert mapsswe_segments("SCCCCCS", "CCCCCCC") == [(3, 1, 0), (3, 1, 0)]
    assert mapsswe_segments("", "I") == [(0, 0, 1)]  # empty reference: B's insertions still count


def test_mapsswe_statistic_hand_computed() -> None:
    # err_A - err_B per segment: 1, 1, 2, -1
    result = mapsswe_from_segments([(4, 2, 1), (2, 1, 0), (6, 3, 1), (3, 0, 1)])
    assert (result.n_segments, result.ref_words, result.errors_a, result.errors_b) == (4, 15, 6, 3)
    assert result.mean == pytest.approx(0.75)
    assert result.std == pytest.approx(math.sqrt(4.75 / 3))  # sum of squared deviations 4.75, n - 1 = 3
    assert result.z == pytest.approx(0.75 / (math.sqrt(4.75 / 3) / 2))  # = 1.1921
    # sc_stats looks Phi up at |z| rounded down to 0.01: 2 (1 - Phi(1.19)) = 0.2340 (exact: 0.2332)
    assert result.p_value == pytest.approx(0.2340, abs=5e-5)
    assert nist_normal_p(1.96) == pytest.approx(0.05, abs=1e-4) and nist_normal_p(9.0) == nist_normal_p(5.14)
    constant = mapsswe_from_segments([(1, 2, 1)] * 3)
    assert (constant.z, constant.p_value) == (0.0, 1.0)  # sc_stats: zero variance gives Z = 0
    assert mapsswe(["CSC", "CC"], ["CCC", "CC"]).n_segments == 1


def test_sign_wilcoxon_mcnemar_by_hand() -> None:
    wer_a = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 5.0])
    wer_b = np.array([12.0, 23.0, 34.0, 45.0, 50.001, 5.0])  # 4 better in A, 2 ties (within 0.005)
    sign = sign_test(wer_a, wer_b)
    assert (sign.n_plus, sign.n_minus, sign.n_ties) == (0, 4, 2)
    assert sign.p_value == pytest.approx(2 * 0.5 ** 6 * (1 + 6))  # ties split 1 / 1: min = 1 of 6
    wil = wilcoxon_test(wer_a, wer_b)
    # |diffs| 2, 3, 4, 5, 0.001, 0 -> ranks 3, 4, 5, 6, 2, 1. sc_stats takes B - A (B has the higher
    # WER sum); ties alternate, the first to B's side (rank 2), the next to A's (rank 1).
    assert (wil.n_plus, wil.n_minus) == (1, 5) and (wil.rank_sum_plus, wil.rank_sum_minus) == (1.0, 20.0)
    assert wil.z == pytest.approx((1.0 - 6 * 7 / 4) / math.sqrt(6 * 7 * 13 / 24))  # W: the smaller side
    mcn = mcnemar_test(np.array([1, 1, 1, 0, 0, 1], bool), np.array([0, 0, 1, 0, 1, 0], bool))
    assert (mcn.only_a_wrong, mcn.only_b_wrong, mcn.both_wrong, mcn.both_right) == (3, 1, 1, 1)
    assert mcn.p_value == pytest.approx(2 * 5 / 16)  # 2 P(X <= 1), X ~ Bin(4, 1/2)
    assert mcnemar_test(np.array([1, 0], bool), np.array([0, 1], bool)).p_value == 1.0
    # Beyond 20 discordant utterances the exact binomial is kept (sctk 2.4.10 is wrong there).
    many = mcnemar_test(np.array([1] * 40 + [0] * 38, bool), np.array([0] * 40 + [1] * 38, bool))
    assert many.p_value == pytest.approx(0.9099, abs=1e-4)


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, float("nan")])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])


def test_bootstrap_p_value() -> None:
    assert bootstrap_p_value(np.zeros(99), 0.0) == 1.0
    assert bootstrap_p_value(np.full(99, 0.5), 0.5) == pytest.approx(1 / 100)


def test_compare_detects_real_change_only() -> None:
    rng = np.random.default_rng(3)
    before = _simulated(15, rng, "north") + _simulated(15, rng, "south", prefix="t", mean_wer=0.25)
    after = []
    for row in before:
        row = dict(row)
        if row["region"] == "south":  # halve south's errors, keep north identical
            fixed = (row["sub"] + row["del"]) // 2
            row["corr"] += fixed
            row["sub"], row["del"] = max(row["sub"] - fixed, 0), row["del"] - max(fixed - row["sub"], 0)
        after.append(row)
    a, b = _table(before), _table(after)
    result = compare_systems(a, b, [("region",)], n_boot=500, seed=0, alpha=0.05)
    cohorts = {c.label: c for c in result.groupings[0].cohorts}
    assert cohorts["north"].diff == 0.0 and not cohorts["north"].significant
    assert cohorts["north"].mapsswe.p_value == 1.0
    south = cohorts["south"]
    assert south.diff < 0 and south.significant and south.significant_mapsswe and south.verdict == "better"
    assert south.ci_diff[1] < 0
    assert result.groupings[0].to_dict()["changed"] == ["south"]


def test_compare_refuses_mismatched_inputs() -> None:
    rows = _simulated(2, np.random.default_rng(0), utts=2)
    a = _table(rows)
    with pytest.raises(DataError, match=r"utterance 's1-1' is in A but not in B"):
        compare_systems(a, _table(rows[:-1]), [])
    with pytest.raises(DataError, match=r"utterance 's0-0': the reference differs between A and B"):
        compare_systems(a, _table(rows, refs=["other"] + [r["id"] for r in rows[1:]]), [])


def test_compare_verdicts_use_holm_adjusted_p_values() -> None:
    """Six cohorts tested at once: a raw bootstrap p of 0.018 in one is not a finding after Holm."""
    rng = np.random.default_rng(2)
    before = [row for r in range(6) for row in _simulated(10, rng, f"r{r}", prefix=f"r{r}s")]
    nudge = np.random.default_rng(102)
    after = []
    for row in before:
        row = dict(row)
        if row["region"] == "r0" and row["sub"] > 0 and nudge.random() < 0.3:  # a few fixes in r0 only
            row["corr"], row["sub"] = row["corr"] + 1, row["sub"] - 1
        after.append(row)
    result = compare_systems(_table(before), _table(after), [("region",)], n_boot=500, seed=0, alpha=0.05)
    grouping = result.groupings[0]
    r0 = next(c for c in grouping.cohorts if c.label == "r0")
    assert r0.p_bootstrap < 0.05 <= r0.p_bootstrap_holm  # the situation under test
    assert r0.p_bootstrap_holm == pytest.approx(min(1.0, 6 * r0.p_bootstrap))  # the others have p = 1
    assert not r0.significant and r0.verdict == "no significant change"
    assert grouping.to_dict()["changed"] == []
    doc = r0.to_dict()
    assert doc["p_bootstrap"] == pytest.approx(r0.p_bootstrap) and doc["p_bootstrap_holm"] == pytest.approx(0.1078, abs=1e-4)
    assert set(doc["tests"]) == {"mapsswe", "sign", "wilcoxon", "mcnemar"}
    assert all("p_value_holm" in t for t in doc["tests"].values())
    # The overall comparison is one test: its verdict uses the raw p-value.
    assert result.overall.p_bootstrap_holm == result.overall.p_bootstrap
    markdown = compare_markdown(result, 0.95, 0.05)
    assert "after Holm's adjustment" in markdown and "0.0180 | 0.1078" in markdown
