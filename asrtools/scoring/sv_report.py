"""`asrtools score sv`: EER, minDCF, per-group EERs, disparities with speaker-bootstrap CIs, DET plots.

Reads a scores file (`label enroll test score`) and the evaluation split's supervisions
(utterance -> speaker, and speaker attributes such as gender and region), and writes

  sv.json    overall EER / minDCFs, per grouping and group the within-group EER, the
             disparities (gender gap |EER_male - EER_female|, std of EER across the groups
             of every grouping corrected for the groups' sampling noise, max - min), each
             with a speaker-bootstrap CI
  sv.md      the same as Markdown tables
  det_<grouping>.png   DET curves (probit axes) of every group of the grouping + overall

Metrics and the bootstrap are `asrtools.scoring.sv`'s. `compare_systems` gives the paired
speaker-bootstrap comparison of two systems scored on the same trials (used by
`asrtools sv results`).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.scoring.bootstrap import bootstrap_p_value, rng_for
from asrtools.scoring.sv import (
    DcfParams,
    SortedTrials,
    Trial,
    TrialSet,
    interval,
    metric_replicates,
    roc_points,
    speaker_draws,
    within_group_mask,
)

SV_JSON = "sv.json"
SV_SCHEMA = "asrtools.sv_scores"
#: How `_disparities` estimates: group-EER std corrected for sampling noise, gender gap CI from the signed gap's.
# No max - min range: the range of noisy group estimates is inflated by their noise, and no
# interval for it was found calibrated (percentile: 0% coverage at equal groups; basic: ~73%).
DISPARITY_METHOD = "noise_corrected_std+signed_gap_ci;no_range"
GENDER_VALUES = ("female", "male")
MIN_GROUP_SPEAKERS = 2


@dataclasses.dataclass
class SvOptions:
    """Scoring settings.

    Attributes:
      groupings: speaker attributes to break the EER down by.
      dcfs: detection cost functions (P_target, C_miss, C_fa).
      gender_field: the grouping whose "male"/"female" EERs give the gender gap.
      n_boot: speaker-bootstrap replicates (0: no CIs).
      level: CI level.
      seed: bootstrap seed.
    """

    groupings: List[str]
    dcfs: List[DcfParams]
    gender_field: str = "gender"
    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0


def utterance_speakers(supervisions: Path) -> Dict[str, str]:
    """Utterance (supervision / cut) id -> speaker from a lhotse SupervisionSet manifest."""
    from lhotse import SupervisionSet, load_manifest

    try:
        sups = load_manifest(supervisions)
    except Exception as err:
        raise DataError(f"{supervisions}: cannot read as a lhotse manifest ({type(err).__name__}: {err})") from None
    if not isinstance(sups, SupervisionSet):
        raise DataError(f"{supervisions}: expected a SupervisionSet manifest, got {type(sups).__name__}")
    out = {}
    for sup in sups:
        if not sup.speaker:
            raise DataError(f"{supervisions}: supervision {sup.id} has no speaker")
        out[sup.id] = sup.speaker
    return out


def build_trial_set(trials: Sequence[Trial], scores: np.ndarray, utt2spk: Mapping[str, str]) -> TrialSet:
    """Index trials by speaker; `DataError` for an utterance without a speaker."""
    for t in trials:
        for utt in (t.enroll, t.test):
            if utt not in utt2spk:
                raise DataError(f"trial {t.line()}: utterance {utt!r} is not in the supervisions")
    speakers = sorted({utt2spk[u] for t in trials for u in (t.enroll, t.test)})
    index = {s: i for i, s in enumerate(speakers)}
    return TrialSet(
        scores=np.asarray(scores, dtype=np.float64),
        labels=np.array([t.label == 1 for t in trials]),
        enroll_speaker=np.array([index[utt2spk[t.enroll]] for t in trials], dtype=np.int64),
        test_speaker=np.array([index[utt2spk[t.test]] for t in trials], dtype=np.int64),
        speakers=speakers,
    )


def _groups(trials: TrialSet, attributes: Mapping[str, Mapping[str, Any]], field: str
            ) -> Tuple[List[Optional[str]], List[str]]:
    values = [None if attributes.get(s, {}).get(field) is None else str(attributes[s][field]) for s in trials.speakers]
    return values, sorted({v for v in values if v is not None})


def _summary(point: float, reps: Optional[np.ndarray], level: float) -> Dict[str, Any]:
    value = None if math.isnan(point) else float(point)
    return {"value": value, "ci": interval(reps, level) if reps is not None else [None, None]}


def evaluate(trials: TrialSet, attributes: Mapping[str, Mapping[str, Any]], options: SvOptions,
             counts: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Every metric of sv.json (see the module docstring), and their bootstrap replicates.

    Args:
      trials: the scored trials.
      attributes: speaker -> attributes.
      options: groupings, DCFs, bootstrap.
      counts: (B, S) speaker draw counts to use (to pair systems); default drawn from
        `options.seed`.

    Returns:
      `{"doc": JSON document, "replicates": {metric path: (B,) array}}`.
    """
    if counts is None and options.n_boot > 0:
        counts = speaker_draws(len(trials.speakers), options.n_boot, rng_for(options.seed, "sv-speakers"))
    reps: Dict[str, np.ndarray] = {}
    point = metric_replicates(trials, None, options.dcfs)
    boot = metric_replicates(trials, counts, options.dcfs) if counts is not None else {}
    overall = {"trials": int(len(trials.scores)), "target": int(trials.labels.sum()),
               "nontarget": int((~trials.labels).sum()), "speakers": len(trials.speakers)}
    for key, value in point.items():
        overall[key] = _summary(value[0], boot.get(key), options.level)
        if key in boot:
            reps[f"overall.{key}"] = boot[key]
    groupings: Dict[str, Any] = {}
    for field in options.groupings:
        values, names = _groups(trials, attributes, field)
        if not names:
            raise DataError(f"no speaker of the trials has the attribute {field!r}")
        groups: Dict[str, Any] = {}
        for name in names:
            mask = within_group_mask(trials, values, name)
            sub = trials.subset(mask)
            n_spk = len(set(sub.enroll_speaker.tolist()) | set(sub.test_speaker.tolist()))
            entry: Dict[str, Any] = {"trials": int(mask.sum()), "target": int(sub.labels.sum()),
                                     "nontarget": int((~sub.labels).sum()), "speakers": n_spk}
            if sub.labels.all() or not sub.labels.any() or n_spk < MIN_GROUP_SPEAKERS:
                entry["eer"] = {"value": None, "ci": [None, None]}
                entry["note"] = "too few trials of one kind or speakers for an EER"
            else:
                g_point = metric_replicates(sub, None)["eer"][0]
                g_boot = metric_replicates(sub, counts)["eer"] if counts is not None else None
                entry["eer"] = _summary(g_point, g_boot, options.level)
                if g_boot is not None:
                    reps[f"{field}.{name}.eer"] = g_boot
                entry["_point"] = g_point
            groups[name] = entry
        groupings[field] = {"groups": groups, **_disparities(field, groups, reps, options)}
        for entry in groups.values():
            entry.pop("_point", None)
    doc = {"overall": overall, "groupings": groupings, "gender_gap": groupings.get(options.gender_field, {}).get(
        "gender_gap")}
    return {"doc": doc, "replicates": reps}


def _disparities(field: str, groups: Dict[str, Any], reps: Dict[str, np.ndarray], options: SvOptions
                 ) -> Dict[str, Any]:
    """Noise-corrected std of the group EERs, and the gender gap for the gender grouping (with CIs)."""
    names = [n for n, g in groups.items() if "_point" in g]
    out: Dict[str, Any] = {}
    if len(names) < 2:
        return out
    points = np.array([groups[n]["_point"] for n in names])
    boot = np.stack([reps[f"{field}.{n}.eer"] for n in names], axis=1) if all(
        f"{field}.{n}.eer" in reps for n in names) else None
    value, rep = between_group_std(points, boot)
    out["eer_std"] = _summary(value, rep, options.level)
    if rep is not None:
        reps[f"{field}.eer_std"] = rep
    if field == options.gender_field and all(g in names for g in GENDER_VALUES):
        i_f, i_m = names.index("female"), names.index("male")
        gap = abs(points[i_m] - points[i_f])
        rep = None if boot is None else np.abs(boot[:, i_m] - boot[:, i_f])
        out["gender_gap"] = _summary(gap, rep, options.level)
        if boot is not None:
            out["gender_gap"]["ci"] = absolute_interval(interval(boot[:, i_m] - boot[:, i_f], options.level))
            reps[f"{field}.gender_gap"] = rep
    return out


def between_group_std(points: np.ndarray, boot: Optional[np.ndarray]) -> Tuple[float, Optional[np.ndarray]]:
    """Population std of the true group EERs, corrected for the noise of each group's estimate.

    The std of noisy group estimates overstates the spread of the true values: with group
    estimates e_g = mu_g + noise of variance v_g, E[var(e)] = var(mu) + (G - 1) / G * mean(v).
    The point is sqrt(max(0, var(points) - k)), k = (G - 1) / G * mean(v) with v_g the bootstrap
    variance of group g. A bootstrap replicate adds the noise once more (E[var(boot_b)] =
    var(points) + k), so the replicates are sqrt(max(0, var(boot_b) - 2k)): centred on the
    corrected point, which a plain percentile interval of std(boot_b) is not (it can lie wholly
    above the point). Checked for coverage on simulated groups (tests/test_sv_metrics.py).

    Args:
      points: (G,) group EERs.
      boot: (B, G) their speaker-bootstrap replicates, or None.

    Returns:
      The corrected std, and its (B,) replicates (None without `boot`).
    """
    if boot is None:
        return float(np.std(points)), None
    groups = points.size
    noise = (groups - 1) / groups * float(np.nanmean(np.nanvar(boot, axis=0, ddof=1)))
    point = math.sqrt(max(0.0, float(np.var(points)) - noise))
    return point, np.sqrt(np.clip(np.var(boot, axis=1) - 2 * noise, 0.0, None))


def absolute_interval(signed: List[Optional[float]]) -> List[Optional[float]]:
    """CI of |d| from a CI [low, high] of d: [0, max] when it holds 0, else the absolute ends sorted.

    A percentile interval of |d|'s own replicates excludes small values whenever d's
    replicates straddle 0, so it can lie wholly above |d| when the true d is near 0.
    """
    low, high = signed
    if low is None or high is None:
        return [None, None]
    if low <= 0.0 <= high:
        return [0.0, max(-low, high)]
    return sorted([abs(low), abs(high)])


@dataclasses.dataclass
class PairedDifference:
    """System B minus system A on one metric, paired over the same speaker draws.

    Attributes:
      a: A's value. b: B's value. diff: b - a. relative: (b - a) / a.
      ci: CI of the difference. relative_ci: CI of the relative difference.
      p_value: two-sided bootstrap p-value of "no difference".
    """

    a: Optional[float]
    b: Optional[float]
    diff: Optional[float]
    relative: Optional[float]
    ci: List[Optional[float]]
    relative_ci: List[Optional[float]]
    p_value: Optional[float]


def paired_difference(a: float, b: float, reps_a: np.ndarray, reps_b: np.ndarray, level: float) -> PairedDifference:
    """Difference, relative difference, their percentile CIs and the bootstrap p-value."""
    if a is None or b is None:
        return PairedDifference(a, b, None, None, [None, None], [None, None], None)
    diff = b - a
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_reps = (reps_b - reps_a) / reps_a
    p = bootstrap_p_value(reps_b - reps_a, diff)
    return PairedDifference(a, b, diff, diff / a if a else None, interval(reps_b - reps_a, level),
                            interval(rel_reps, level), None if math.isnan(p) else p)


def check_same_trials(a: Sequence[Trial], b: Sequence[Trial], name_a: str, name_b: str) -> None:
    """`DataError` unless two systems were scored on the same trials in the same order."""
    if len(a) != len(b) or any(x != y for x, y in zip(a, b)):
        raise DataError(f"systems {name_a} and {name_b} were not scored on the same trial list")


def det_plot(trials: TrialSet, attributes: Mapping[str, Mapping[str, Any]], field: str, path: Path,
             title: str) -> None:
    """DET curves (probit P_fa vs P_miss) of every group of `field` and of all trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    from asrtools.pipeline import atomic_path

    values, names = _groups(trials, attributes, field)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    curves = [("all trials", np.ones(len(trials.scores), dtype=bool))] + [
        (n, within_group_mask(trials, values, n)) for n in names]
    clip = 1e-4
    for label, mask in curves:
        sub = trials.subset(mask)
        if sub.labels.all() or not sub.labels.any():
            continue
        p_miss, p_fa = roc_points(SortedTrials.build(sub.scores, sub.labels))
        ax.plot(norm.ppf(np.clip(p_fa[0], clip, 1 - clip)), norm.ppf(np.clip(p_miss[0], clip, 1 - clip)),
                label=label, linewidth=1.6 if label == "all trials" else 1.0,
                color="black" if label == "all trials" else None)
    ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([0.0005, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="gray", linestyle=":", linewidth=0.8)
    ax.set_xlabel("false alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _pct_ci(entry: Mapping[str, Any]) -> str:
    lo, hi = entry.get("ci", [None, None])
    ci = "" if lo is None or hi is None else f" [{100 * lo:.2f}, {100 * hi:.2f}]"
    return _pct(entry.get("value")) + ci


def _num_ci(entry: Mapping[str, Any]) -> str:
    value = entry.get("value")
    lo, hi = entry.get("ci", [None, None])
    if value is None:
        return "n/a"
    return f"{value:.4f}" + ("" if lo is None or hi is None else f" [{lo:.4f}, {hi:.4f}]")


def sv_markdown(doc: Mapping[str, Any], title: str) -> str:
    """sv.md: overall metrics, per-group EERs and disparities (percentages, with CIs)."""
    o = doc["overall"]
    level = doc["params"]["level"]
    dcf_keys = [k for k in o if k.startswith("mindcf_")]
    lines = [f"# {title}", "",
             f"{o['trials']} trials ({o['target']} target, {o['nontarget']} non-target) of {o['speakers']} speakers; "
             f"EER = ROC convex hull EER; minDCF normalised; [{100 * level:g}% speaker-bootstrap CI, "
             f"{doc['params']['n_boot']} replicates].", "",
             "| metric | value |", "|---|---|", f"| EER % | {_pct_ci(o['eer'])} |"]
    lines += [f"| {k} | {_num_ci(o[k])} |" for k in dcf_keys]
    for field, grouping in doc["groupings"].items():
        lines += ["", f"## EER by {field} (within-group trials)", "",
                  "| group | speakers | target | non-target | EER % |", "|---|---:|---:|---:|---|"]
        for name, g in grouping["groups"].items():
            lines.append(f"| {name} | {g['speakers']} | {g['target']} | {g['nontarget']} | {_pct_ci(g['eer'])} |")
        for key, label in (("eer_std", "std of group EERs (noise-corrected)"),
                           ("gender_gap", "gender gap abs(EER_male - EER_female)")):
            if key in grouping:
                lines.append(f"\n{label}: {_pct_ci(grouping[key])} (percentage points)")
    return "\n".join(lines) + "\n"


def checkpoint_selection(summary: Mapping[str, Any]) -> Dict[str, Any]:
    """Which epochs a trained speaker model's `averaged.pt` came from, and the ARW steps each saw.

    Args:
      summary: the training stage's `train_summary.json` (its `selection.chosen` names the
        averaged epoch checkpoints; `valid_history` holds, for ARW runs, each epoch's
        `arw_steps` and `pseudo_label_refits`, `asrtools.training.tasks.speaker`).

    Returns:
      {epochs_trained, selected_epochs (None when the final model was used, no epoch having
      been validated), arw_steps and pseudo_label_refits (one per selected epoch; None for a
      run without ARW)}.
    """
    import re

    chosen = summary.get("selection", {}).get("chosen", [])
    history = summary.get("valid_history", {})
    epochs = []
    for name in chosen:
        match = re.fullmatch(r"epoch-(\d+)\.pt", name)
        if match is None:  # final.pt: no validated epoch was there to choose from
            return {"epochs_trained": summary.get("epochs"), "selected_epochs": None, "arw_steps": None,
                    "pseudo_label_refits": None}
        epochs.append(int(match.group(1)))

    def per_epoch(key: str) -> Optional[List[int]]:
        values = [history.get(str(e), {}).get(key) for e in epochs]
        return None if any(v is None for v in values) else [int(v) for v in values]

    return {"epochs_trained": summary.get("epochs"), "selected_epochs": epochs,
            "arw_steps": per_epoch("arw_steps"), "pseudo_label_refits": per_epoch("pseudo_label_refits")}


def selection_lines(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """Markdown table: per system, the epochs `averaged.pt` averages and the ARW steps each had seen."""
    lines = ["", "## Checkpoint selection", "",
             "The epochs whose checkpoints `averaged.pt` averages (chosen by dev EER), out of the epochs "
             "trained, and for ARW systems how many learner steps each had trained with adversarial weights "
             "and how many k-means pseudo-label fits it had seen.", "",
             "| system | selected epochs (of trained) | ARW steps | k-means fits |", "|---|---|---|---|"]

    def listed(values: Optional[Sequence[int]]) -> str:
        return "–" if values is None else ", ".join(str(v) for v in values)

    for row in rows:
        sel = row.get("provenance", {}).get("selection")
        if not sel:
            lines.append(f"| {row['name']} | n/a | n/a | n/a |")
            continue
        epochs = "final model" if sel["selected_epochs"] is None else listed(sel["selected_epochs"])
        lines.append(f"| {row['name']} | {epochs} (of {sel.get('epochs_trained') or 'n/a'}) | "
                     f"{listed(sel['arw_steps'])} | {listed(sel['pseudo_label_refits'])} |")
    return lines
