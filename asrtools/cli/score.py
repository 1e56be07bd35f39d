"""`asrtools score ...`: WER scoring, per-cohort WER tables with CIs, system comparisons."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from asrtools.cli.options import force_option, split_named
from asrtools.pipeline import run_stage

_PATH = click.Path(path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


def _normalize_options(func: Any) -> Any:
    func = click.option("--glm", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Mapping file of 'from => to' word rules applied to ref and hyp.")(func)
    func = click.option("--normalize", "normalize", multiple=True, type=click.Choice(["lower", "punct"]),
                        help="Normalisation step (repeatable): lower = lower-case, punct = drop punctuation. "
                             "Default: none.")(func)
    func = click.option("--mode", type=click.Choice(["levenshtein", "sclite"]), default="levenshtein",
                        show_default=True,
                        help="levenshtein: min S+D+I (jiwer's counts); "
                             "sclite: sclite's weights and tie-breaking.")(func)
    return func


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
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def wer(ref: Path, hyp: Optional[Path], ref_format: str, hyp_format: str, mode: str, normalize: Tuple[str, ...],
        glm: Optional[Path], allow_missing: bool, out_dir: Path, force: bool) -> None:
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

    def body(ctx: Any) -> None:
        pairs = load_pairs(ref, hyp, ref_format, hyp_format, allow_missing)
        report = score_pairs(pairs, mode, normalizer)
        if report.missing_hyp:
            ctx.log.warning("%d utterances without hypothesis scored as empty (listed in %s): %s%s",
                            len(report.missing_hyp), WER_JSON, ", ".join(report.missing_hyp[:5]),
                            " ..." if len(report.missing_hyp) > 5 else "")
        title = hyp.name if hyp is not None else ref.name
        doc = write_wer_dir(report, ctx.out_dir, {"ref": str(ref), "hyp": str(hyp) if hyp else None}, title)
        ctx.log.info("%s", _wer_line(doc["total"]))

    ran = run_stage(out_dir, "score wer", params, inputs, body, force=force)
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
                     help="Flag cohorts with fewer speakers."),
        click.option("--ci", "level", type=click.FloatRange(0.5, 1.0, min_open=False, max_open=True), default=0.95,
                     show_default=True, help="Confidence level of the intervals."),
        click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Bootstrap replicates (0: no CIs)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed."),
        click.option("--cohort-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Speaker attributes: a text file of 'speaker cohort' lines (field 'cohort') or a lhotse "
                          "SupervisionSet manifest (gender + custom fields per speaker)."),
        click.option("--by", "by", multiple=True,
                     help="Grouping field(s), repeatable; 'region,gender' groups by both at once."),
    ]
    for option in options:
        func = option(func)
    return func


def _groupings(by: Tuple[str, ...], cohort_map: Optional[Path], required: bool = True) -> Any:
    """Parsed --by groupings; a plain-text --cohort-map alone means --by cohort."""
    from asrtools.errors import ConfigError
    from asrtools.scoring.cohorts import parse_by

    if not by:
        if cohort_map is not None and not cohort_map.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            by = ("cohort",)
        elif required:
            raise ConfigError("give at least one --by field (e.g. --by region)")
    return parse_by(by)


def _speaker_attributes(cohort_map: Optional[Path]) -> Dict[str, Dict[str, Any]]:
    from asrtools.scoring.io import read_speaker_attributes

    return read_speaker_attributes(cohort_map) if cohort_map is not None else {}


def _file_name(grouping: Tuple[str, ...]) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "+".join(grouping))


@score.command()
@click.option("--recogs", type=_PATH, required=True,
              help="recogs.jsonl, a decode directory, or a WER directory made by 'asrtools score wer'.")
@_stats_options
@_normalize_options
@click.option("--allow-missing", is_flag=True, help="Score a missing hypothesis as empty (when scoring recogs).")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def cohorts(recogs: Path, by: Tuple[str, ...], cohort_map: Optional[Path], seed: int, n_boot: int, level: float,
            min_speakers: int, min_words: int, min_errors: int, mode: str, normalize: Tuple[str, ...],
            glm: Optional[Path], allow_missing: bool, out_dir: Path, force: bool) -> None:
    """WER per cohort with speaker-level bootstrap CIs, flags and a disparity summary.

    Writes cohorts.json, cohorts.csv, cohorts.md and one wer_by_<fields>.png per --by.
    --mode/--normalize/--glm apply when scoring recogs (a WER directory is read as is).

    Example: asrtools score cohorts --recogs exp/decode_test/recogs.jsonl --by region --by gender --by region,gender --seed 0 --bootstrap 1000 --out-dir exp/decode_test/cohorts
    """
    from asrtools.scoring.cohorts import Thresholds

    groupings = _groupings(by, cohort_map)
    normalizer = _normalizer(normalize, glm)
    thresholds = Thresholds(min_speakers, min_words, min_errors)
    params = {"by": [list(g) for g in groupings], "seed": seed, "bootstrap": n_boot, "ci": level,
              "thresholds": {"min_speakers": min_speakers, "min_words": min_words, "min_errors": min_errors},
              "mode": mode, "normalizer": normalizer.describe(), "allow_missing": allow_missing}
    inputs = {"recogs": recogs}
    if cohort_map is not None:
        inputs["cohort_map"] = cohort_map

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text
        from asrtools.scoring.cohorts import UtteranceTable, cohort_table, overall_stats
        from asrtools.scoring.plots import plot_cohort_wer
        from asrtools.scoring.report import load_report
        from asrtools.scoring.tables import cohorts_csv, cohorts_json, cohorts_markdown

        report = load_report(recogs, mode, normalizer, allow_missing)
        table = UtteranceTable.from_report(report, _speaker_attributes(cohort_map))
        overall = overall_stats(table, n_boot, seed, level, thresholds)
        results = [cohort_table(table, g, n_boot, seed, level, thresholds) for g in groupings]
        atomic_write_json(ctx.out_dir / "cohorts.json", cohorts_json(overall, results, params))
        atomic_write_text(ctx.out_dir / "cohorts.csv", cohorts_csv(overall, results))
        markdown = cohorts_markdown(overall, results, level)
        atomic_write_text(ctx.out_dir / "cohorts.md", markdown)
        for grouping in results:
            plot_cohort_wer(grouping, overall, ctx.out_dir / f"wer_by_{_file_name(grouping.by)}.png", level)
            d = grouping.disparity
            if d is not None:
                ctx.log.info("by %s: worst %s %.2f%%, best %s %.2f%%, gap %.2f points", grouping.name, d.worst,
                             100 * d.wer_worst, d.best, 100 * d.wer_best, 100 * d.abs_gap)

    run_stage(out_dir, "score cohorts", params, inputs, body, force=force)


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
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def compare(system_a: Path, system_b: Path, name_a: Optional[str], name_b: Optional[str], alpha: float,
            by: Tuple[str, ...], cohort_map: Optional[Path], seed: int, n_boot: int, level: float,
            min_speakers: int, min_words: int, min_errors: int, mode: str, normalize: Tuple[str, ...],
            glm: Optional[Path], allow_missing: bool, out_dir: Path, force: bool) -> None:
    """Compare two systems per cohort: paired speaker-bootstrap CI and p-value, MAPSSWE.

    Writes compare.json, compare.csv, compare.md and compare_by_<fields>.png (before/after).
    Without --by only the overall comparison is made.

    Example: asrtools score compare --a exp/base/decode_test/wer --b exp/ewc/decode_test/wer --by region --alpha 0.05 --out-dir exp/ewc/compare_base
    """
    from asrtools.scoring.cohorts import Thresholds

    groupings = _groupings(by, cohort_map, required=False)
    names = (name_a or str(system_a), name_b or str(system_b))
    normalizer = _normalizer(normalize, glm)
    thresholds = Thresholds(min_speakers, min_words, min_errors)
    params = {"by": [list(g) for g in groupings], "seed": seed, "bootstrap": n_boot, "ci": level, "alpha": alpha,
              "names": list(names),
              "thresholds": {"min_speakers": min_speakers, "min_words": min_words, "min_errors": min_errors},
              "mode": mode, "normalizer": normalizer.describe(), "allow_missing": allow_missing}
    inputs = {"a": system_a, "b": system_b}
    if cohort_map is not None:
        inputs["cohort_map"] = cohort_map

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text
        from asrtools.scoring.cohorts import UtteranceTable
        from asrtools.scoring.compare import compare_systems
        from asrtools.scoring.plots import plot_comparison
        from asrtools.scoring.report import load_report
        from asrtools.scoring.tables import compare_csv, compare_json, compare_markdown

        attrs = _speaker_attributes(cohort_map)
        tables = [UtteranceTable.from_report(load_report(p, mode, normalizer, allow_missing), attrs)
                  for p in (system_a, system_b)]
        result = compare_systems(tables[0], tables[1], groupings, n_boot, seed, level, alpha, thresholds, names)
        atomic_write_json(ctx.out_dir / "compare.json", compare_json(result, params))
        atomic_write_text(ctx.out_dir / "compare.csv", compare_csv(result))
        atomic_write_text(ctx.out_dir / "compare.md", compare_markdown(result, level, alpha))
        for grouping in result.groupings:
            plot_comparison(grouping, ctx.out_dir / f"compare_by_{_file_name(grouping.by)}.png", names, level)
        o = result.overall
        changed = "; ".join(
            f"{g.name}: {', '.join(c.label for c in g.cohorts if c.significant) or 'none'}" for g in result.groupings
        )
        ctx.log.info("overall WER %s -> %s (%s); changed cohorts: %s", _fmt_pct(o.wer_a), _fmt_pct(o.wer_b),
                     o.verdict, changed or "n/a")

    run_stage(out_dir, "score compare", params, inputs, body, force=force)


def _fmt_pct(value: Optional[float]) -> str:
    return f"{100 * value:.2f}%" if value is not None else "n/a"


@score.command()
@click.option("--exp", "exps", multiple=True, required=True, metavar="NAME=EXP_DIR",
              help="A system: its table name and `asrtools train` experiment directory (repeatable, table order).")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=CKPT",
              help="Checkpoint of system NAME (default: averaged.pt in its exp dir; relative to it unless the "
                   "path exists).")
@click.option("--wer", "wer_paths", multiple=True, metavar="NAME:KEY=PATH",
              help="wer.json (or its WER directory) of system NAME for KEY = dev, test or test_streaming "
                   "(default: <exp>/decode_{dev,test}_<offline method>/wer and <exp>/decode_test_streaming/wer, "
                   "as egs/synth/asr/run.sh writes them).")
@click.option("--offline-method", type=click.Choice(["greedy", "modified_beam"]), default="greedy",
              show_default=True, help="Method of the default dev/test decode directories.")
@click.option("--rtf-json", "rtf_jsons", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Streaming RTF results (rtf.json of `asrtools model rtf`), entries named like --exp "
                   "(repeatable; a later file wins).")
@click.option("--title", default="Model comparison", show_default=True, help="Title of the Markdown page.")
@click.option("--allow-missing", is_flag=True, help="Show n/a for missing inputs instead of failing.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The Markdown page to write (e.g. egs/synth/asr/RESULTS.md).")
@click.option("--out-dir", type=_DIR, default=None,
              help="Stage directory for results.md and results.json (default: exp/results beside --out).")
@force_option
def results(exps: Tuple[str, ...], checkpoints: Tuple[str, ...], wer_paths: Tuple[str, ...], offline_method: str,
            rtf_jsons: Tuple[Path, ...], title: str, allow_missing: bool, out: Path, out_dir: Optional[Path],
            force: bool) -> None:
    """Model-comparison table: params, GFLOPs/s, dev/test/streaming WER, streaming RTF.

    Reads, per system, its checkpoint (parameters and encoder FLOPs measured like
    `asrtools model info`), the wer.json of `asrtools score wer` for the dev, test and
    streaming test decodes, and the one-thread streaming RTF from
    `asrtools model rtf`; writes results.md + results.json into the stage
    directory and copies results.md to --out. States whether ConvRNN-T beats the LSTM RNN-T
    at similar size (paired speaker bootstrap on the test sets).

    \b
    Example:
      asrtools score results --exp lstm=exp/lstm --exp convrnnt=exp/convrnnt \\
        --exp conformer=exp/conformer --rtf-json exp/rtf_streaming/rtf.json --out RESULTS.md
    """
    import datetime
    import shlex

    from asrtools.pipeline import atomic_write_json, atomic_write_text
    from asrtools.scoring.results import (
        collect_results,
        convrnnt_vs_lstm,
        experiment_specs,
        locate_inputs,
        results_json,
        results_markdown,
    )

    exp_pairs = [split_named("--exp", e) for e in exps]
    ckpt_map = {name: Path(value) for name, value in (split_named("--checkpoint", c) for c in checkpoints)}
    wer_map = {}
    for text in wer_paths:
        target, value = split_named("--wer", text)
        name, _, key = target.rpartition(":")
        wer_map[(name or target, key)] = Path(value)
    specs = experiment_specs([(n, Path(d)) for n, d in exp_pairs], ckpt_map, wer_map, offline_method)
    found = locate_inputs(specs, list(rtf_jsons), allow_missing)
    out_dir = out_dir if out_dir is not None else out.parent / "exp" / "results"
    args = ([f"--exp {shlex.quote(e)}" for e in exps] + [f"--checkpoint {shlex.quote(c)}" for c in checkpoints]
            + [f"--wer {shlex.quote(w)}" for w in wer_paths] + [f"--rtf-json {shlex.quote(str(r))}" for r in rtf_jsons]
            + ([f"--offline-method {offline_method}"] if offline_method != "greedy" else [])
            + ([f"--title {shlex.quote(title)}"] if title != "Model comparison" else [])
            + (["--allow-missing"] if allow_missing else []) + [f"--out {shlex.quote(str(out))}"])
    command = "asrtools score results " + " ".join(args)
    params = {"systems": [{"name": s.name, "exp_dir": str(s.exp_dir), "checkpoint": str(s.checkpoint),
                           "wer": {k: str(p) for k, p in s.wer.items()}} for s in specs],
              "rtf_jsons": [str(r) for r in rtf_jsons], "allow_missing": allow_missing, "missing": found.missing,
              "title": title}

    def body(ctx: Any) -> None:
        generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows = collect_results(specs, found)
        verdicts = convrnnt_vs_lstm(rows)
        atomic_write_text(ctx.out_dir / "results.md",
                          results_markdown(rows, verdicts, title, command, generated, found.missing))
        atomic_write_json(ctx.out_dir / "results.json", results_json(rows, verdicts, generated, command, found.missing))
        for verdict in verdicts:
            ctx.log.info("%s", verdict.text.replace("**", ""))
        for line in found.missing:
            ctx.log.warning("missing (n/a): %s", line)

    run_stage(out_dir, "score results", params, found.files, body, force=force)
    page = (out_dir / "results.md").read_text(encoding="utf-8")
    if not out.is_file() or out.read_text(encoding="utf-8") != page:
        atomic_write_text(out, page)
    click.echo(f"wrote {out}")


@score.command("multitalker")
@click.option("--turns", "turns_path", type=_PATH, required=True,
              help="turns.jsonl of a multi-talker decode (or its decode directory).")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def multitalker(turns_path: Path, out_dir: Path, force: bool) -> None:
    """Multi-talker metrics per conversation and by target overlap ratio.

    Speaker-agnostic merged WER, cpWER and ORC-WER (meeteval), turn-counting accuracy and
    the latency of turn starts/ends (<sot>/<eot>) against the reference boundaries.
    Writes conversations.jsonl (one row per conversation) and metrics.json.

    Example: asrtools score multitalker --turns exp/sts/decode_test_streaming --out-dir exp/sts/decode_test_streaming/score
    """
    from asrtools.pipeline import atomic_write_json, atomic_write_text
    from asrtools.scoring.multitalker import read_turns, score_conversations

    source = turns_path / "turns.jsonl" if turns_path.is_dir() else turns_path

    def body(ctx: Any) -> None:
        rows, summary = score_conversations(read_turns(source))
        atomic_write_text(ctx.out_dir / "conversations.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_json(ctx.out_dir / "metrics.json", summary)
        total = summary["all"]
        ctx.log.info("%d conversations: merged WER %.2f%%, cpWER %.2f%%, ORC-WER %.2f%%, turn count acc %.1f%%",
                     total["conversations"], 100 * (total["merged_wer"] or 0), 100 * (total["cp_wer"] or 0),
                     100 * (total["orc_wer"] or 0), 100 * (total["turn_count_accuracy"] or 0))

    run_stage(out_dir, "score multitalker", {}, {"turns": source}, body, force=force)


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
