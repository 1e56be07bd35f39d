"""`asrtools score ...`: WER scoring, per-cohort WER tables with CIs, system comparisons."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from asrtools.cli.options import force_option, split_named
from asrtools.pipeline import run_stage

_LOG = logging.getLogger("asrtools.score")

_PATH = click.Path(path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


def _normalize_options(func: Any) -> Any:
    func = click.option("--glm", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Mapping file of 'from => to' word rules applied to ref and hyp.")(func)
    func = click.option("--normalize", "normalize", multiple=True, type=click.Choice(["lower", "punct"]),
                        help="Normalisation step (repeatable): lower = lower-case (case-insensitive scoring), "
                             "punct = drop punctuation. Default: none (a warning says when case alone explains "
                             "many errors).")(func)
    func = click.option("--mode", type=click.Choice(["levenshtein", "sclite"]), default="levenshtein",
                        show_default=True,
                        help="levenshtein: min S+D+I (jiwer's counts); "
                             "sclite: sclite's weights and tie-breaking.")(func)
    return func


def _utt2spk_option(func: Any) -> Any:
    return click.option(
        "--utt2spk", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Kaldi utt2spk file ('utterance-id speaker-id' lines) giving every scored utterance's speaker. "
             "Without it, trn/text inputs take the speaker from the id: the text before the first '-' "
             "(else '_'), sclite's -i rm rule; recogs.jsonl carries its own speakers.")(func)


def _warn_case(report: Any, log: Any) -> None:
    """Log one warning when reference and hypothesis differ mostly in letter case."""
    from asrtools.scoring.wer import case_mismatch_warning

    warning = case_mismatch_warning(report)
    if warning:
        log.warning("%s", warning)


def _normalizer(normalize: Tuple[str, ...], glm: Optional[Path]) -> Any:
    from asrtools.scoring.normalize import TextNormalizer

    return TextNormalizer.from_options(sorted(set(normalize)), glm)


def _wer_line(total: Dict[str, Any]) -> str:
    wer = total["wer"]
    shown = f"{100 * wer:.2f}" if wer is not None else "n/a"
    return (f"%WER {shown} [ {total['err']} / {total['words']}, {total['ins']} ins, {total['del']} del, "
            f"{total['sub']} sub ] over {total['sents']} utterances")


@click.group()
def score() -> None:
    """Score recognitions: WER, per-cohort tables, system comparisons."""


@score.command()
@click.option("--ref", type=_PATH, required=True,
              help="Reference: trn file, Kaldi text file, recogs.jsonl or decode directory (then no --hyp).")
@click.option("--hyp", type=_PATH, default=None, help="Hypothesis: trn or Kaldi text file.")
@click.option("--ref-format", type=click.Choice(["auto", "trn", "text", "recogs"]), default="auto", show_default=True)
@click.option("--hyp-format", type=click.Choice(["auto", "trn", "text"]), default="auto", show_default=True)
@_normalize_options
@click.option("--allow-missing", is_flag=True,
              help="Score a reference without hypothesis as an empty hypothesis (listed in wer.json) "
                   "instead of failing.")
@_utt2spk_option
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def wer(ref: Path, hyp: Optional[Path], ref_format: str, hyp_format: str, mode: str, normalize: Tuple[str, ...],
        glm: Optional[Path], allow_missing: bool, utt2spk: Optional[Path], out_dir: Path, force: bool) -> None:
    """Align and count word errors; write wer.json, utts.jsonl, errs.txt, wer.sys, ref/hyp.trn.

    Example: asrtools score wer --ref exp/decode_test/ref.trn --hyp exp/decode_test/hyp.trn --mode sclite --normalize lower --out-dir exp/decode_test/wer
    """
    from asrtools.scoring.io import load_pairs
    from asrtools.scoring.report import WER_JSON, write_wer_dir
    from asrtools.scoring.wer import score_pairs

    normalizer = _normalizer(normalize, glm)
    params = {"mode": mode, "normalizer": normalizer.describe(), "allow_missing": allow_missing,
              "ref_format": ref_format, "hyp_format": hyp_format}
    inputs: Dict[str, Path] = {"ref": ref}
    if hyp is not None:
        inputs["hyp"] = hyp
    if utt2spk is not None:
        inputs["utt2spk"] = utt2spk

    loaded = {}

    def load() -> None:
        loaded["pairs"] = load_pairs(ref, hyp, ref_format, hyp_format, allow_missing, utt2spk)

    def body(ctx: Any) -> None:
        report = score_pairs(loaded["pairs"], mode, normalizer)
        _warn_case(report, ctx.log)
        if report.missing_hyp:
            ctx.log.warning("%d utterances without hypothesis scored as empty (listed in %s): %s%s",
                            len(report.missing_hyp), WER_JSON, ", ".join(report.missing_hyp[:5]),
                            " ..." if len(report.missing_hyp) > 5 else "")
        title = hyp.name if hyp is not None else ref.name
        doc = write_wer_dir(report, ctx.out_dir, {"ref": str(ref), "hyp": str(hyp) if hyp else None}, title)
        ctx.log.info("%s", _wer_line(doc["total"]))

    ran = run_stage(out_dir, "score wer", params, inputs, body, force=force, validate=load)
    if not ran:
        total = json.loads((out_dir / WER_JSON).read_text())["total"]
        click.echo(_wer_line(total))


def _stats_options(func: Any) -> Any:
    options = [
        click.option("--min-errors", type=click.IntRange(min=0), default=20, show_default=True,
                     help="Flag cohorts with fewer word errors."),
        click.option("--min-words", type=click.IntRange(min=0), default=200, show_default=True,
                     help="Flag cohorts with fewer reference words."),
        click.option("--min-speakers", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Size floor: a cohort with fewer speakers (the floor never goes below 2) is flagged "
                          "and gets no interval, no p-value and no verdict, shown as 'too few speakers (1 < 5)'."),
        click.option("--ci", "level", type=click.FloatRange(0.5, 1.0, min_open=False, max_open=True), default=0.95,
                     show_default=True, help="Confidence level of the intervals."),
        click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Bootstrap replicates (0: no CIs)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed."),
        click.option("--cohort-map", "cohort_maps", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Speaker attributes (repeatable): a Kaldi-style spk2<field> file of 'speaker value' "
                          "lines (spk2accent gives the field 'accent'; any other name gives 'cohort'), a CSV/TSV "
                          "speaker table with a header row (id column, every other column a field, e.g. the "
                          "speakers.csv of 'asrtools data prepare'), or a lhotse SupervisionSet manifest. Each must "
                          "name at least half of the scored speakers; speakers without a value are reported (log, "
                          "cohorts.md/json) and form the cohort '(missing)', which is not tested. Without --by, "
                          "the fields of the spk2*/plain maps are the groupings."),
        click.option("--by", "by", multiple=True,
                     help="Grouping field(s), repeatable; 'region,gender' groups by both at once."),
    ]
    for option in options:
        func = option(func)
    return func


def _groupings(by: Tuple[str, ...], cohort_maps: Tuple[Path, ...], required: bool = True) -> Any:
    """Parsed --by groupings; without --by, the field of each spk2*/plain --cohort-map (in order)."""
    from asrtools.errors import ConfigError
    from asrtools.scoring.cohorts import parse_by
    from asrtools.scoring.io import map_field

    if not by:
        by = tuple(dict.fromkeys(f for f in (map_field(m) for m in cohort_maps) if f is not None))
        if not by and required:
            raise ConfigError("give at least one --by field (e.g. --by region)")
    return parse_by(by)


def _speaker_attributes(cohort_maps: Tuple[Path, ...], reports: Any, log: Any) -> Dict[str, Dict[str, Any]]:
    """The `--cohort-map` attributes, each map checked against the speakers of the scored `reports`."""
    from asrtools.scoring.io import check_cohort_map, merge_cohort_maps, read_speaker_attributes

    speakers = [u.speaker for report in reports for u in report.utterances]
    maps = [(cohort_map, read_speaker_attributes(cohort_map)) for cohort_map in cohort_maps]
    for cohort_map, attributes in maps:
        missing = check_cohort_map(attributes, speakers, cohort_map)
        if missing:
            log.warning("%d scored speaker(s) are not in %s: %s%s", len(missing), cohort_map,
                        ", ".join(missing[:5]), " ..." if len(missing) > 5 else "")
    return merge_cohort_maps(maps)


def _log_missing(groupings: Any, n_speakers: int, log: Any) -> None:
    """One warning per grouping field some speakers lack (they form the untested cohort '(missing)')."""
    from asrtools.scoring.cohorts import describe_missing

    for grouping in groupings:
        for line in describe_missing(grouping.missing, n_speakers):
            log.warning("by %s: %s; they form the cohort (missing), left out of the gap test", grouping.name, line)


def _map_inputs(cohort_maps: Tuple[Path, ...]) -> Dict[str, Path]:
    return {f"cohort_map_{i}": path for i, path in enumerate(cohort_maps)}


def _provenance(sources: Dict[str, Path]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(this scoring run's provenance, name -> provenance of the decode behind each source)."""
    from asrtools.scoring.report import decode_provenance
    from asrtools.utils.provenance import provenance

    return provenance(), decode_provenance(sources)


def _with_provenance(markdown: str, run: Dict[str, Any], decodes: Dict[str, Any]) -> str:
    """A scoring page with its "## Provenance" section appended."""
    from asrtools.scoring.report import provenance_section

    return markdown.rstrip("\n") + "\n\n" + provenance_section(run, decodes)


def _file_name(grouping: Tuple[str, ...]) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "+".join(grouping))


@score.command()
@click.option("--recogs", type=_PATH, required=True,
              help="recogs.jsonl, a decode directory, or a WER directory made by 'asrtools score wer'.")
@_stats_options
@_normalize_options
@click.option("--permutations", "n_permutations", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Speaker-label permutations for the disparity p-value and gap interval (0: neither).")
@click.option("--allow-missing", is_flag=True, help="Score a missing hypothesis as empty (when scoring recogs).")
@_utt2spk_option
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def cohorts(recogs: Path, by: Tuple[str, ...], cohort_maps: Tuple[Path, ...], seed: int, n_boot: int, level: float,
            min_speakers: int, min_words: int, min_errors: int, mode: str, normalize: Tuple[str, ...],
            glm: Optional[Path], n_permutations: int, allow_missing: bool, utt2spk: Optional[Path], out_dir: Path,
            force: bool) -> None:
    """WER per cohort with speaker-level bootstrap CIs, flags and a disparity summary.

    Writes cohorts.json, cohorts.csv, cohorts.md and one wer_by_<fields>.png per --by.
    --mode/--normalize/--glm apply when scoring recogs (a WER directory is read as is).
    The disparity summary compares the best and worst cohort with at least --min-speakers
    speakers and --min-words words (--min-errors only flags): the gap, its interval and a
    permutation p-value over whole speakers (docs/statistics.md). A cohort with fewer than
    --min-speakers speakers (the size floor; never below 2) gets no interval and no test.

    Example: asrtools score cohorts --recogs exp/decode_test/recogs.jsonl --by region --by gender --by region,gender --seed 0 --bootstrap 1000 --out-dir exp/decode_test/cohorts

    With a Kaldi data dir's speaker maps: asrtools score cohorts --recogs exp/decode_test --utt2spk data/test/utt2spk --cohort-map data/test/spk2gender --cohort-map data/test/spk2accent --out-dir exp/decode_test/cohorts
    """
    from asrtools.scoring.cohorts import Thresholds

    groupings = _groupings(by, cohort_maps)
    normalizer = _normalizer(normalize, glm)
    thresholds = Thresholds(min_speakers, min_words, min_errors)
    params = {"by": [list(g) for g in groupings], "seed": seed, "bootstrap": n_boot, "permutations": n_permutations,
              "ci": level,
              "thresholds": {"min_speakers": min_speakers, "min_words": min_words, "min_errors": min_errors},
              "mode": mode, "normalizer": normalizer.describe(), "allow_missing": allow_missing}
    inputs = {"recogs": recogs, **_map_inputs(cohort_maps)}
    if utt2spk is not None:
        inputs["utt2spk"] = utt2spk

    loaded = {}

    def load() -> None:
        from asrtools.scoring.cohorts import UtteranceTable, cohort_labels
        from asrtools.scoring.report import load_report

        report = loaded["report"] = load_report(recogs, mode, normalizer, allow_missing, utt2spk)
        table = loaded["table"] = UtteranceTable.from_report(report, _speaker_attributes(cohort_maps, [report], _LOG))
        for grouping in groupings:
            cohort_labels(table, grouping)  # an unknown --by field fails here

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text
        from asrtools.scoring.cohorts import cohort_table, overall_stats, speaker_floor
        from asrtools.scoring.plots import plot_cohort_wer
        from asrtools.scoring.tables import cohorts_csv, cohorts_json, cohorts_markdown

        table = loaded["table"]
        _warn_case(loaded["report"], ctx.log)
        overall = overall_stats(table, n_boot, seed, level, thresholds)
        results = [cohort_table(table, g, n_boot, seed, level, thresholds, n_permutations) for g in groupings]
        _log_missing(results, overall.n_speakers, ctx.log)
        run, decodes = _provenance({"recogs": recogs})
        atomic_write_json(ctx.out_dir / "cohorts.json",
                          {**cohorts_json(overall, results, params), "provenance": run, "inputs_provenance": decodes})
        atomic_write_text(ctx.out_dir / "cohorts.csv", cohorts_csv(overall, results))
        markdown = cohorts_markdown(overall, results, level)
        atomic_write_text(ctx.out_dir / "cohorts.md", _with_provenance(markdown, run, decodes))
        for grouping in results:
            plot_cohort_wer(grouping, overall, ctx.out_dir / f"wer_by_{_file_name(grouping.by)}.png", level)
            d = grouping.disparity
            untested = [f"{c.label} ({c.n_speakers})" for c in grouping.cohorts if c.not_tested is not None]
            if untested:
                ctx.log.info("by %s: no interval or test for cohorts under the size floor of %d speakers: %s",
                             grouping.name, speaker_floor(thresholds), ", ".join(untested))
            if d is not None:
                test = f", permutation p = {d.p_value:.3g}" if d.n_permutations else ""
                ctx.log.info("by %s: worst %s %.2f%%, best %s %.2f%%, gap %.2f points%s", grouping.name, d.worst,
                             100 * d.wer_worst, d.best, 100 * d.wer_best, 100 * d.abs_gap, test)
            else:
                ctx.log.info("by %s: no gap test (fewer than two cohorts with enough speakers and words)",
                             grouping.name)

    run_stage(out_dir, "score cohorts", params, inputs, body, force=force, validate=load)


@score.command()
@click.option("--a", "system_a", type=_PATH, required=True,
              help="System A (before): recogs.jsonl, decode directory or WER directory.")
@click.option("--b", "system_b", type=_PATH, required=True, help="System B (after), same utterances as A.")
@click.option("--name-a", default=None, help="Display name of A (default: its path).")
@click.option("--name-b", default=None, help="Display name of B (default: its path).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level.")
@_stats_options
@_normalize_options
@click.option("--allow-missing", is_flag=True, help="Score a missing hypothesis as empty (when scoring recogs).")
@_utt2spk_option
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def compare(system_a: Path, system_b: Path, name_a: Optional[str], name_b: Optional[str], alpha: float,
            by: Tuple[str, ...], cohort_maps: Tuple[Path, ...], seed: int, n_boot: int, level: float,
            min_speakers: int, min_words: int, min_errors: int, mode: str, normalize: Tuple[str, ...],
            glm: Optional[Path], allow_missing: bool, utt2spk: Optional[Path], out_dir: Path, force: bool) -> None:
    """Compare two systems per cohort: paired speaker-bootstrap CI and p-value, MAPSSWE.

    Writes compare.json, compare.csv, compare.md and compare_by_<fields>.png (before/after).
    Without --by only the overall comparison is made. A cohort with fewer than --min-speakers
    speakers (the size floor; never below 2) gets no interval, no p-value and no verdict, and
    Holm's adjustment counts only the cohorts tested.

    Example: asrtools score compare --a exp/base/decode_test/wer --b exp/ewc/decode_test/wer --by region --alpha 0.05 --out-dir exp/ewc/compare_base
    """
    from asrtools.scoring.cohorts import Thresholds

    groupings = _groupings(by, cohort_maps, required=False)
    names = (name_a or str(system_a), name_b or str(system_b))
    normalizer = _normalizer(normalize, glm)
    thresholds = Thresholds(min_speakers, min_words, min_errors)
    params = {"by": [list(g) for g in groupings], "seed": seed, "bootstrap": n_boot, "ci": level, "alpha": alpha,
              "names": list(names),
              "thresholds": {"min_speakers": min_speakers, "min_words": min_words, "min_errors": min_errors},
              "mode": mode, "normalizer": normalizer.describe(), "allow_missing": allow_missing}
    inputs = {"a": system_a, "b": system_b, **_map_inputs(cohort_maps)}
    if utt2spk is not None:
        inputs["utt2spk"] = utt2spk

    loaded = {}

    def load() -> None:
        from asrtools.scoring.cohorts import UtteranceTable, cohort_labels
        from asrtools.scoring.compare import pair_tables
        from asrtools.scoring.report import load_report

        reports = loaded["reports"] = [load_report(p, mode, normalizer, allow_missing, utt2spk)
                                       for p in (system_a, system_b)]
        attrs = _speaker_attributes(cohort_maps, reports, _LOG)
        tables = [UtteranceTable.from_report(report, attrs) for report in reports]
        pair_tables(tables[0], tables[1], *names)  # different utterances or references fail here
        for grouping in groupings:
            cohort_labels(tables[0], grouping)
        loaded["tables"] = tables

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text
        from asrtools.scoring.compare import compare_systems
        from asrtools.scoring.plots import plot_comparison
        from asrtools.scoring.tables import compare_csv, compare_json, compare_markdown

        tables = loaded["tables"]
        for report in loaded["reports"]:
            _warn_case(report, ctx.log)
        result = compare_systems(tables[0], tables[1], groupings, n_boot, seed, level, alpha, thresholds, names)
        _log_missing(result.groupings, result.overall.n_speakers, ctx.log)
        run, decodes = _provenance({names[0]: system_a, names[1]: system_b})
        atomic_write_json(ctx.out_dir / "compare.json",
                          {**compare_json(result, params), "provenance": run, "inputs_provenance": decodes})
        atomic_write_text(ctx.out_dir / "compare.csv", compare_csv(result))
        atomic_write_text(ctx.out_dir / "compare.md",
                          _with_provenance(compare_markdown(result, level, alpha), run, decodes))
        for grouping in result.groupings:
            plot_comparison(grouping, ctx.out_dir / f"compare_by_{_file_name(grouping.by)}.png", names, level)
        o = result.overall
        changed = "; ".join(
            f"{g.name}: {', '.join(c.label for c in g.cohorts if c.significant) or 'none'} of "
            f"{sum(c.not_tested is None for c in g.cohorts)} tested"
            + (f" ({sum(c.not_tested is not None for c in g.cohorts)} under the size floor, not tested)"
               if any(c.not_tested is not None for c in g.cohorts) else "")
            for g in result.groupings
        )
        ctx.log.info("overall WER %s -> %s (%s); changed cohorts: %s", _fmt_pct(o.wer_a), _fmt_pct(o.wer_b),
                     o.verdict, changed or "n/a")

    run_stage(out_dir, "score compare", params, inputs, body, force=force, validate=load)


def _fmt_pct(value: Optional[float]) -> str:
    return f"{100 * value:.2f}%" if value is not None else "n/a"


def _dcf_option(spec: str) -> Any:
    """`0.01` or `0.01:cmiss:cfa` -> DcfParams."""
    from asrtools.errors import ConfigError
    from asrtools.scoring.sv import DcfParams

    parts = spec.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not 0 < values[0] < 1 or any(v <= 0 for v in values[1:]):
        raise ConfigError(f"--dcf {spec!r}: expected P_TARGET or P_TARGET:C_MISS:C_FA with 0 < P_TARGET < 1, costs > 0")
    return DcfParams(*values)


@score.command("sv")
@click.option("--scores", type=_PATH, required=True,
              help="scores.txt (`label enroll test score`) or the `asrtools sv score` directory holding it.")
@click.option("--supervisions", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="lhotse SupervisionSet of the trial utterances: utterance -> speaker, speaker attributes.")
@click.option("--by", "groupings", multiple=True, default=("gender", "region", "engine"), show_default=True,
              help="Speaker attribute to give per-group (within-group trial) EERs for (repeatable).")
@click.option("--dcf", "dcfs", multiple=True, default=("0.01", "0.05"), show_default=True,
              help="minDCF operating point P_TARGET[:C_MISS:C_FA] (repeatable; costs default to 1).")
@click.option("--gender-field", default="gender", show_default=True,
              help="Grouping whose male/female EERs give the gender gap.")
@click.option("--ci", "level", type=click.FloatRange(0.5, 1.0, max_open=True), default=0.95, show_default=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Speaker-bootstrap replicates (0: no CIs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--title", default=None, help="Title of sv.md (default: the scores path).")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def sv(scores: Path, supervisions: Path, groupings: Tuple[str, ...], dcfs: Tuple[str, ...], gender_field: str,
       level: float, n_boot: int, seed: int, title: Optional[str], out_dir: Path, force: bool) -> None:
    """Verification metrics: EER, minDCF, EER per group, gender gap, region std (speaker-bootstrap CIs), DET PNGs.

    Example: asrtools score sv --scores exp/baseline/scores_test --supervisions data/manifests/supervisions_test.jsonl.gz --by gender --by region --by engine --out-dir exp/baseline/sv_test
    """
    from asrtools.scoring.sv_report import DISPARITY_METHOD, SvOptions

    score_file = scores / "scores.txt" if scores.is_dir() else scores
    options = SvOptions(list(dict.fromkeys(groupings)), [_dcf_option(d) for d in dict.fromkeys(dcfs)], gender_field,
                        n_boot, level, seed)
    params = {"groupings": options.groupings, "dcfs": [d.key() for d in options.dcfs], "gender_field": gender_field,
              "n_boot": n_boot, "level": level, "seed": seed, "title": title,
              "disparities": DISPARITY_METHOD}  # a marker from before the estimator changed is stale

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text
        from asrtools.scoring.io import read_speaker_attributes
        from asrtools.scoring.sv_report import (SV_JSON, SV_SCHEMA, build_trial_set, det_plot, evaluate, sv_markdown,
                                                utterance_speakers)
        from asrtools.sv.score import read_scores

        trial_list, values = read_scores(score_file)
        trial_set = build_trial_set(trial_list, values, utterance_speakers(supervisions))
        attributes = read_speaker_attributes(supervisions)
        result = evaluate(trial_set, attributes, options)
        doc = {"schema": SV_SCHEMA, "scores": str(score_file), "supervisions": str(supervisions),
               "params": {**params, "eer_method": "rocch"}, **result["doc"]}
        atomic_write_json(ctx.out_dir / SV_JSON, doc)
        atomic_write_text(ctx.out_dir / "sv.md", sv_markdown(doc, title or str(score_file)))
        for field in options.groupings:
            det_plot(trial_set, attributes, field, ctx.out_dir / f"det_{_file_name((field,))}.png",
                     f"DET by {field}: {title or score_file}")
        o = doc["overall"]
        gap = doc.get("gender_gap") or {}
        ctx.log.info("EER %.2f%% [%s], %s; gender gap %s", 100 * o["eer"]["value"],
                     ", ".join("n/a" if v is None else f"{100 * v:.2f}" for v in o["eer"]["ci"]),
                     ", ".join(f"{d.key()} {o[d.key()]['value']:.4f}" for d in options.dcfs),
                     "n/a" if gap.get("value") is None else f"{100 * gap['value']:.2f} pp")

    run_stage(out_dir, "score sv", params, {"scores": score_file, "supervisions": supervisions}, body, force=force)


@score.command("multitalker")
@click.option("--turns", "turns_path", type=_PATH, required=True,
              help="turns.jsonl of a multi-talker decode (or its decode directory).")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def multitalker(turns_path: Path, out_dir: Path, force: bool) -> None:
    """Multi-talker metrics per conversation and by target overlap ratio.

    Speaker-agnostic merged WER, ORC-WER and overlap-aware (MIMO) WER (meeteval; no cpWER:
    the output channels are not speakers), channel segmentation error, turn counting with
    histograms of reference and hypothesis turn counts, and the absolute latency of turn
    starts/ends, at the decoded turn boundaries and at the first/last word.
    Writes conversations.jsonl (one row per conversation) and metrics.json.

    Example: asrtools score multitalker --turns exp/sts/decode_test_streaming --out-dir exp/sts/decode_test_streaming/score
    """
    from asrtools.pipeline import atomic_write_json, atomic_write_text
    from asrtools.scoring.multitalker import SCORING_VERSION, read_turns, score_conversations

    source = turns_path / "turns.jsonl" if turns_path.is_dir() else turns_path

    def body(ctx: Any) -> None:
        rows, summary = score_conversations(read_turns(source))
        atomic_write_text(ctx.out_dir / "conversations.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_json(ctx.out_dir / "metrics.json", summary)
        total = summary["all"]
        ctx.log.info("%d conversations: merged WER %.2f%%, ORC-WER %.2f%%, turn count acc %.1f%%",
                     total["conversations"], 100 * (total["merged_wer"] or 0),
                     100 * (total["orc_wer"] or 0), 100 * (total["turn_count_accuracy"] or 0))

    run_stage(out_dir, "score multitalker", {"scoring_version": SCORING_VERSION}, {"turns": source}, body,
              force=force)


@score.command("multitalker-results")
@click.option("--system", "systems", multiple=True, required=True, metavar="NAME=EXP_DIR",
              help="A multi-talker experiment (repeatable, in table order).")
@click.option("--describe", "descriptions", multiple=True, metavar="NAME=TEXT", help="A system's description.")
@click.option("--decode", "decode_name", default="decode_test_streaming", show_default=True,
              help="Decode directory (under each EXP_DIR) whose score/ is reported.")
@click.option("--compare", "comparisons", multiple=True, metavar="A,B",
              help="Report B minus A with a paired conversation-level bootstrap (repeatable).")
@click.option("--baseline", default=None, help="System the paper comparison takes as the baseline.")
@click.option("--main", "main_system", default=None, help="System the paper comparison takes as STS.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--title", default="Multi-talker ASR results", show_default=True)
@click.option("--note", "notes", multiple=True, help="A line for the Notes section (repeatable).")
@click.option("--out", "out_md", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Markdown page to write (e.g. RESULTS.md).")
@click.option("--out-dir", type=_DIR, required=True, help="Stage directory for results.json and results.md.")
@force_option
def multitalker_results(systems: Tuple[str, ...], descriptions: Tuple[str, ...], decode_name: str,
                        comparisons: Tuple[str, ...], baseline: Optional[str], main_system: Optional[str], n_boot: int,
                        seed: int, title: str, notes: Tuple[str, ...], out_md: Path, out_dir: Path,
                        force: bool) -> None:
    """Results page of several multi-talker systems, by overlap ratio, with paired comparisons.

    \b
    Example:
      asrtools score multitalker-results --system baseline=exp/baseline --system sts=exp/sts \\
        --compare baseline,sts --baseline baseline --main sts --out RESULTS.md --out-dir exp/results
    """
    from asrtools.errors import ConfigError
    from asrtools.pipeline import atomic_write_json, atomic_write_text
    from asrtools.scoring.multitalker_results import build_results

    named = dict(split_named("--system", s) for s in systems)
    if len(named) != len(systems):
        raise ConfigError("--system: every NAME must be unique")
    texts = dict(split_named("--describe", d) for d in descriptions)
    pairs = []
    for comp in comparisons:
        a, _, b = comp.partition(",")
        if a not in named or b not in named:
            raise ConfigError(f"--compare {comp!r}: expected A,B with A and B among the --system names")
        pairs.append((a, b))
    inputs: Dict[str, Path] = {}
    for name, exp in named.items():
        inputs[f"{name}_train"] = Path(exp) / ".done.json"
        inputs[f"{name}_score"] = Path(exp) / decode_name / "score"
        inputs[f"{name}_decode"] = Path(exp) / decode_name / "summary.json"
    params = {"systems": list(named), "descriptions": texts, "decode": decode_name, "comparisons": pairs,
              "baseline": baseline, "main": main_system, "n_boot": n_boot, "seed": seed, "title": title,
              "notes": list(notes)}

    def body(ctx: Any) -> None:
        from asrtools.scoring.multitalker_page import results_markdown

        doc = build_results({n: Path(e) for n, e in named.items()}, texts, decode_name, pairs, baseline,
                            main_system, n_boot, seed, title, list(notes))
        atomic_write_json(ctx.out_dir / "results.json", doc)
        page = results_markdown(doc)
        atomic_write_text(ctx.out_dir / "results.md", page)
        atomic_write_text(out_md, page)
        ctx.log.info("results page: %s", out_md)

    run_stage(out_dir, "score multitalker-results", params, inputs, body, force=force)
