"""Speaker-verification metrics against an independent computation (scikit-learn's ROC), and
the speaker bootstrap: weights, calibration of the paired test on simulated null data."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from sklearn.metrics import roc_curve

from asrtools.scoring.bootstrap import bootstrap_p_value, rng_for
from asrtools.scoring.sv import (
    DcfParams,
    TrialSet,
    eer,
    metric_replicates,
    min_dcf,
    replicate_weights,
    speaker_draws,
)


def _scores(rng: np.random.Generator, n_tar: int, n_non: int, d: float, ties: bool = False):
    tar = rng.normal(d, 1.0, n_tar)
    non = rng.normal(0.0, 1.0, n_non)
    scores = np.concatenate([tar, non])
    if ties:
        scores = np.round(scores, 1)
    return scores, np.concatenate([np.ones(n_tar, bool), np.zeros(n_non, bool)])


def _sklearn_rocch_eer(scores, labels) -> float:
    """EER where the convex hull (scipy) of sklearn's ROC points crosses P_miss = P_fa."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    points = np.stack([fpr, 1 - tpr], axis=1)
    points = np.vstack([points, [[1.0, 1.0]]])  # close the region above the ROC
    hull = ConvexHull(points)
    best = np.inf
    for simplex in hull.simplices:
        (x1, y1), (x2, y2) = points[simplex]
        d1, d2 = x1 - y1, x2 - y2
        if d1 == d2:
            if d1 == 0:
                best = min(best, x1, x2)
            continue
        t = d1 / (d1 - d2)
        if 0 <= t <= 1:
            x = x1 + t * (x2 - x1)
            best = min(best, x)
    return float(best)


def _sklearn_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    cost = c_miss * p_target * (1 - tpr) + c_fa * (1 - p_target) * fpr
    return float(np.min(cost) / min(c_miss * p_target, c_fa * (1 - p_target)))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False), (3, True)])
def test_eer_and_min_dcf_equal_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    scores, labels = _scores(rng, 300 + 50 * seed, 2000, 2.0 + 0.3 * seed, ties)
    assert eer(scores, labels) == pytest.approx(_sklearn_rocch_eer(scores, labels), abs=1e-9)
    for p_target, c_miss, c_fa in ((0.01, 1, 1), (0.05, 1, 1), (0.01, 10, 1)):
        assert min_dcf(scores, labels, p_target, c_miss, c_fa) == pytest.approx(
            _sklearn_min_dcf(scores, labels, p_target, c_miss, c_fa), abs=1e-12)


def test_eer_edge_cases():
    assert eer([3.0, 2.0, 1.0, 0.0], [True, True, False, False]) == 0.0
    # a perfectly inverted system: the convex hull is the chord (0, 1)-(1, 0), so ROCCH-EER is 0.5
    assert eer([0.0, 1.0, 2.0, 3.0], [True, True, False, False]) == pytest.approx(0.5)
    # all scores tied: the hull is the chord from (0, 1) to (1, 0): EER 0.5
    assert eer([1.0] * 6, [True] * 3 + [False] * 3) == pytest.approx(0.5)


def _toy_trials(rng, n_spk=20, utts=6, shift=None):
    """Trials among `n_spk` speakers; per-speaker score offsets make speakers differ."""
    spk_effect = rng.normal(0, 0.5, n_spk) if shift is None else shift
    enroll, test, labels, scores = [], [], [], []
    for a in range(n_spk):
        for _ in range(utts):
            enroll.append(a); test.append(a); labels.append(True)
            scores.append(rng.normal(2.0 + spk_effect[a], 1.0))
        for _ in range(utts * 2):
            b = int(rng.integers(0, n_spk - 1))
            b += b >= a
            enroll.append(a); test.append(b); labels.append(False)
            scores.append(rng.normal(0.0, 1.0))
    return TrialSet(np.array(scores), np.array(labels), np.array(enroll), np.array(test),
                    [f"s{i}" for i in range(n_spk)])


def test_replicate_weights_follow_speaker_counts():
    trials = TrialSet(np.zeros(3), np.array([True, False, False]), np.array([0, 0, 1]), np.array([0, 1, 2]),
                      ["a", "b", "c"])
    counts = np.array([[2, 0, 1], [1, 3, 1]])
    np.testing.assert_array_equal(replicate_weights(trials, counts), [[2, 0, 0], [1, 3, 3]])
    # all-ones draws reproduce the point estimate
    rng = np.random.default_rng(0)
    toy = _toy_trials(rng)
    ones = np.ones((1, len(toy.speakers)), dtype=np.int64)
    rep = metric_replicates(toy, ones, [DcfParams(0.01)])
    point = metric_replicates(toy, None, [DcfParams(0.01)])
    assert rep["eer"][0] == pytest.approx(point["eer"][0], abs=1e-12)
    assert rep["mindcf_0.01"][0] == pytest.approx(point["mindcf_0.01"][0], abs=1e-12)


def test_weighted_eer_equals_eer_of_duplicated_trials():
    rng = np.random.default_rng(4)
    toy = _toy_trials(rng, n_spk=8, utts=3)
    counts = speaker_draws(len(toy.speakers), 1, rng_for(0, "t"))
    weights = replicate_weights(toy, counts)[0].astype(int)
    reps = np.repeat(np.arange(len(weights)), weights)
    expected = eer(toy.scores[reps], toy.labels[reps])
    assert metric_replicates(toy, counts)["eer"][0] == pytest.approx(expected, abs=1e-9)


def test_paired_speaker_bootstrap_test_is_calibrated_on_null_data():
    """Two systems with exchangeable scores: p < 0.05 in about 5% of simulations (not more than 12%)."""
    n_sims, n_boot = 80, 200
    rejections = 0
    for sim in range(n_sims):
        rng = np.random.default_rng(1000 + sim)
        shift = rng.normal(0, 0.6, 20)
        a = _toy_trials(np.random.default_rng(10_000 + sim), shift=shift)
        b = _toy_trials(np.random.default_rng(20_000 + sim), shift=shift)
        b = TrialSet(b.scores, a.labels, a.enroll_speaker, a.test_speaker, a.speakers)  # same trials, new scores
        counts = speaker_draws(len(a.speakers), n_boot, rng_for(sim, "null"))
        diff_reps = metric_replicates(b, counts)["eer"] - metric_replicates(a, counts)["eer"]
        observed = metric_replicates(b, None)["eer"][0] - metric_replicates(a, None)["eer"][0]
        rejections += bootstrap_p_value(diff_reps, observed) < 0.05
    assert rejections / n_sims <= 0.12


def test_speaker_bootstrap_ci_covers_the_population_eer():
    """CIs from resampling speakers cover the true EER (simulated population) most of the time."""
    truth_rng = np.random.default_rng(99)
    big = _toy_trials(truth_rng, n_spk=400, utts=6)
    true_eer = metric_replicates(big, None)["eer"][0]
    covered = 0
    n_sims = 40
    for sim in range(n_sims):
        toy = _toy_trials(np.random.default_rng(500 + sim), n_spk=25, utts=6)
        reps = metric_replicates(toy, speaker_draws(25, 200, rng_for(sim, "cov")))["eer"]
        lo, hi = np.percentile(reps, [2.5, 97.5])
        covered += lo <= true_eer <= hi
    assert covered / n_sims >= 0.8


def _noisy_groups(rng: np.random.Generator, true: np.ndarray, noise_sd: float, n_boot: int):
    """Group estimates = truth + noise, and bootstrap-like replicates that add the noise once more."""
    points = true + rng.normal(0, noise_sd, true.size)
    return points, points + rng.normal(0, noise_sd, (n_boot, true.size))


@pytest.mark.parametrize("spread", [0.0, 0.01, 0.04])
def test_between_group_std_interval_covers_the_true_spread(spread):
    """Noise as large as the spread of the true group EERs: the corrected interval covers the true
    std in ~95% of simulations; the plain percentile interval of std(replicates) does not."""
    from asrtools.scoring.sv import interval
    from asrtools.scoring.sv_report import between_group_std

    rng = np.random.default_rng(7)
    true = 0.15 + spread * np.linspace(-1.5, 1.5, 6)
    target = float(np.std(true))
    covered = plain_covered = 0
    n_sims = 300
    for _ in range(n_sims):
        points, boot = _noisy_groups(rng, true, 0.02, 400)
        point, reps = between_group_std(points, boot)
        lo, hi = interval(reps, 0.95)
        assert lo <= point + 1e-12 and point <= hi + 1e-12 or spread == 0.0 and point == 0.0
        covered += lo - 1e-12 <= target <= hi + 1e-12
        plo, phi = interval(np.std(boot, axis=1), 0.95)
        plain_covered += plo <= target <= phi
    assert 0.88 <= covered / n_sims <= 1.0
    if spread <= 0.01:
        assert plain_covered / n_sims < 0.5  # the old interval: the test can tell them apart


def test_absolute_interval_of_a_signed_interval():
    from asrtools.scoring.sv_report import absolute_interval

    assert absolute_interval([-0.02, 0.05]) == [0.0, 0.05]
    assert absolute_interval([-0.07, 0.01]) == [0.0, 0.07]
    assert absolute_interval([0.01, 0.03]) == [0.01, 0.03]
    assert absolute_interval([-0.03, -0.01]) == [0.01, 0.03]
    assert absolute_interval([None, 0.1]) == [None, None]


@pytest.mark.parametrize("gap", [0.0, 0.01, 0.05])
def test_gender_gap_interval_covers_the_true_gap(gap):
    """|EER_m - EER_f| with noisy group EERs: the CI made from the signed gap's covers the true gap
    in >= ~95% of simulations (the percentile CI of |replicates| misses it when the gap is 0)."""
    from asrtools.scoring.sv import interval
    from asrtools.scoring.sv_report import absolute_interval

    rng = np.random.default_rng(11)
    true = np.array([0.15, 0.15 + gap])
    covered = plain_covered = 0
    n_sims = 300
    for _ in range(n_sims):
        points, boot = _noisy_groups(rng, true, 0.02, 400)
        lo, hi = absolute_interval(interval(boot[:, 1] - boot[:, 0], 0.95))
        assert lo <= abs(points[1] - points[0]) <= hi
        covered += lo <= gap <= hi
        plo, phi = interval(np.abs(boot[:, 1] - boot[:, 0]), 0.95)
        plain_covered += plo <= gap <= phi
    assert covered / n_sims >= 0.9
    if gap == 0.0:
        assert plain_covered / n_sims < 0.1


def test_range_of_noisy_groups_has_no_calibrated_bootstrap_interval():
    """Why sv.json reports no max - min range (sv_report.DISPARITY_METHOD): six equal groups,
    noisy estimates. The percentile interval of the replicates' range never covers the true range
    of 0, and the basic (bias-corrected) interval covers it in well under 95% of simulations."""
    from asrtools.scoring.sv import interval
    from asrtools.scoring.sv_report import DISPARITY_METHOD

    rng = np.random.default_rng(7)
    true = np.full(6, 0.15)
    percentile = basic = 0
    n_sims = 300
    for _ in range(n_sims):
        points, boot = _noisy_groups(rng, true, 0.02, 400)
        lo, hi = interval(np.ptp(boot, axis=1), 0.95)
        percentile += lo <= 0.0
        basic += 2 * np.ptp(points) - hi <= 0.0
    assert percentile == 0
    assert basic / n_sims < 0.85
    assert "no_range" in DISPARITY_METHOD
