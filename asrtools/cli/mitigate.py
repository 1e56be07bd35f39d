"""`asrtools mitigate`: fairness mitigations of a baseline transducer and their evaluation (stages).

    mitigate fisher        diagonal empirical Fisher of the baseline on general training data
    mitigate finetune      fine-tune on general / worst-cohort / pooled data, penalty none / ewc / l2
    mitigate oversample    continue training with the worst cohorts' cuts oversampled
    mitigate cohort-input  continue training with a learned cohort embedding on the encoder input
    mitigate evaluate      before/after by cohort on held-out speakers -> evaluation.json
    mitigate results       table (results.md) and trade-off plot from evaluation.json files

Library: `asrtools.fairness.mitigation`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import click

from asrtools.cli.options import config_options, force_option, split_named

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


@click.group("mitigate")
def mitigate() -> None:
    """Fairness mitigations (EWC, oversampling, cohort input) and their before/after evaluation."""


def _load_mitigation_config(config_path: Optional[Path], overrides: Tuple[str, ...], opts: Dict[str, Any]) -> Any:
    """The shared mitigation config; the model is --baseline's when given, else the default architecture."""
    from asrtools.fairness.mitigation.finetune import Baseline, mitigation_config

    model_config = Baseline.load(Path(opts["baseline"])).model_config if opts.get("baseline") else {}
    return mitigation_config(config_path, overrides, model_config, {})


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the fine-tuning commands."""
    for option in reversed([
        click.option("--baseline", type=_FILE, required=True, help="Baseline checkpoint (model and initial weights)."),
        click.option("--cuts-train", type=_FILE, required=True, help="General training cuts (with features)."),
        click.option("--cuts-dev", type=_FILE, required=True, help="Dev cuts for the validation loss."),
        click.option("--bpe-model", type=_FILE, required=True, help="The baseline's sentencepiece model."),
        click.option("--assignments", type=_FILE, default=None,
                     help="assignments.json of the training speakers (cohorts and ranking, worst first)."),
        click.option("--exp-dir", type=_DIR, required=True, help="The run's experiment (train stage) directory."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True),
    ]):
        func = option(func)
    return config_options(_load_mitigation_config)(func)


def _train(run: Dict[str, Any], settings: Dict[str, Any], penalty_kind: str = "none", lam: float = 0.0,
           fisher: Optional[Path] = None, cohort_input: Optional[Tuple[int, str]] = None) -> None:
    """Build and run one mitigation train stage (checks every input before the stage starts)."""
    from asrtools.data.cuts import check_cuts_file
    from asrtools.data.assignments import read_assignments
    from asrtools.fairness.mitigation.finetune import Baseline, check_assignments, mitigation_config, penalty, train_paths
    from asrtools.models.enc_cohort_input import cohort_input_config
    from asrtools.pipeline import current_stage_mode
    from asrtools.training.trainer import run_training

    baseline = Baseline.load(run["baseline"])
    model_config = baseline.model_config
    if cohort_input is not None:
        if run["assignments"] is None:
            from asrtools.errors import ConfigError

            raise ConfigError("cohort-input needs --assignments (the training speakers' cohorts)")
        labels = read_assignments(run["assignments"]).ranking
        model_config = cohort_input_config(model_config, labels, *cohort_input)
    config = mitigation_config(run["config_path"], run["overrides"], model_config, settings)
    check_assignments(run["assignments"], config, cohort_input is not None)
    check_cuts_file(run["cuts_train"], "--cuts-train")
    check_cuts_file(run["cuts_dev"], "--cuts-dev")
    regularizers = penalty(penalty_kind, lam, baseline, fisher)
    paths = train_paths(run["cuts_train"], run["cuts_dev"], run["bpe_model"], run["exp_dir"], baseline.path,
                        run["assignments"], fisher)
    device = "cpu" if current_stage_mode().check else run["device"]
    run_training(config, paths, device=device, force=run["force"], regularizers=regularizers)


def _run_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """Collect the shared options into one `run` dict for `_train`."""
    names = ("config_path", "overrides", "baseline", "cuts_train", "cuts_dev", "bpe_model", "assignments",
             "exp_dir", "device", "force")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        run = {name: kwargs.pop(name) for name in names}
        return func(run, **kwargs)

    return wrapper


@mitigate.command("fisher")
@config_options(_load_mitigation_config)
@click.option("--baseline", type=_FILE, required=True, help="Baseline checkpoint.")
@click.option("--cuts-train", type=_FILE, required=True, help="General training cuts (the Fisher's data).")
@click.option("--bpe-model", type=_FILE, required=True, help="The baseline's sentencepiece model.")
@click.option("--out-dir", type=_DIR, required=True, help="Stage directory for fisher.pt and fisher.json.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@force_option
def fisher(config_path: Optional[Path], overrides: Tuple[str, ...], baseline: Path, cuts_train: Path,
           bpe_model: Path, out_dir: Path, device: str, force: bool) -> None:
    """Diagonal empirical Fisher of --baseline on `mitigation.fisher_utts` training utterances (for EWC).

    \b
    Example:
      asrtools mitigate fisher --config conf/mitigate.yaml --baseline exp/base/averaged.pt \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --bpe-model data/lang_bpe/bpe.model --out-dir exp/mitigate/fisher
    """
    import torch

    from asrtools.decoding.recognize import load_model
    from asrtools.errors import ConfigError
    from asrtools.fairness.mitigation.finetune import Baseline, mitigation_config
    from asrtools.fairness.mitigation.fisher import estimate_fisher, fisher_params, write_fisher
    from asrtools.pipeline import run_stage
    from asrtools.text.tokenizer import Tokenizer

    config = mitigation_config(config_path, overrides, Baseline.load(baseline).model_config, {})
    params = fisher_params(config.mitigation.fisher_utts, config.seed, config.loss, config.data.min_cut_duration,
                           config.data.max_cut_duration)
    loaded: Dict[str, Any] = {}

    def validate() -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        loaded["tokenizer"] = Tokenizer(bpe_model)
        loaded["model"], loaded["model_config"] = load_model(baseline, torch.device(device))
        if loaded["model"].vocab_size != loaded["tokenizer"].vocab_size:
            raise ConfigError(f"{bpe_model} has {loaded['tokenizer'].vocab_size} tokens, {baseline} "
                              f"{loaded['model'].vocab_size}")

    def body(ctx: Any) -> None:
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        values, summary = estimate_fisher(loaded["model"], cuts_train, loaded["tokenizer"], params,
                                          loaded["model_config"].feature_dim, torch.device(device))
        write_fisher(ctx.out_dir, values, baseline, params, summary)
        ctx.log.info("Fisher of %d parameters on %d utterances: mean %.3g, max %.3g", summary["parameters"],
                     summary["num_utterances"], summary["mean"], summary["max"])

    inputs = {"baseline": baseline, "cuts": cuts_train, "bpe_model": bpe_model}
    run_stage(out_dir, "mitigate fisher", params, inputs, body, force=force, validate=validate)


@mitigate.command("finetune")
@_run_options
@click.option("--data", type=click.Choice(["general", "cohorts", "pooled"]), default="cohorts", show_default=True,
              help="Training cuts: all (continue-training control), the worst cohorts' speakers, or those "
                   "pooled with as many other cuts (mitigation.pooled_ratio).")
@click.option("--penalty", "penalty_kind", type=click.Choice(["none", "ewc", "l2"]), default="none",
              show_default=True, help="Penalty on the distance to the baseline: EWC (Fisher-weighted) or plain L2.")
@click.option("--lambda", "lam", type=float, default=0.0, show_default=True, help="The penalty's weight λ.")
@click.option("--fisher", type=_DIR, default=None, help="`mitigate fisher` directory of this baseline (EWC).")
@force_option
@_run_args
def finetune(run: Dict[str, Any], data: str, penalty_kind: str, lam: float, fisher: Optional[Path]) -> None:
    """Fine-tune --baseline for the config's `max_steps`: EWC, L2, plain, pooled or continued training.

    \b
    Examples (the same conf, so the same budget):
      asrtools mitigate finetune --config conf/mitigate.yaml --baseline exp/base/averaged.pt \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --cuts-dev data/fbank/cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe/bpe.model --assignments exp/cohorts/train_assign.json --penalty ewc --lambda 10 \\
        --fisher exp/mitigate/fisher --exp-dir exp/mitigate/ewc_10
      (the same with --data cohorts --penalty none: plain fine-tuning; --penalty l2 --lambda 1;
      --data pooled; --data general: the control)
    """
    _train(run, {"mitigation": {"data": data}}, penalty_kind, lam, fisher)


@mitigate.command("ewc")
@_run_options
@click.option("--lambda", "lam", type=float, required=True, help="The EWC weight λ.")
@click.option("--fisher", type=_DIR, required=True, help="`mitigate fisher` directory of this baseline.")
@force_option
@_run_args
def ewc(run: Dict[str, Any], lam: float, fisher: Path) -> None:
    """EWC fine-tuning on the worst cohorts' speakers: `finetune --data cohorts --penalty ewc`.

    \b
    Example:
      asrtools mitigate ewc --config conf/mitigate.yaml --baseline exp/base/averaged.pt \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --cuts-dev data/fbank/cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe/bpe.model --assignments exp/cohorts/train_assign.json --lambda 1e7 \\
        --fisher exp/mitigate/fisher --exp-dir exp/mitigate/ewc_1e7
    """
    _train(run, {"mitigation": {"data": "cohorts"}}, "ewc", lam, fisher)


@mitigate.command("oversample")
@_run_options
@click.option("--factor", type=click.FloatRange(min=1.0), required=True,
              help="Expected copies per epoch of each cut of the worst cohorts (mitigation.worst_k).")
@force_option
@_run_args
def oversample(run: Dict[str, Any], factor: float) -> None:
    """Continue training --baseline on all data with the worst cohorts' cuts oversampled by --factor.

    \b
    Example:
      asrtools mitigate oversample --config conf/mitigate.yaml --baseline exp/base/averaged.pt \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --cuts-dev data/fbank/cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe/bpe.model --assignments exp/cohorts/train_assign.json --factor 3 \\
        --exp-dir exp/mitigate/oversample_3
      asrtools mitigate oversample --show-config --set max_steps=200
    """
    _train(run, {"mitigation": {"data": "general", "oversample_factor": factor}})


@mitigate.command("cohort-input")
@_run_options
@click.option("--dim", type=click.IntRange(min=1), default=8, show_default=True, help="Cohort embedding size.")
@click.option("--combine", type=click.Choice(["add", "concat"]), default="add", show_default=True,
              help="Add a projected embedding to every input frame, or concatenate and project back.")
@force_option
@_run_args
def cohort_input(run: Dict[str, Any], dim: int, combine: str) -> None:
    """Continue training --baseline on all data with a cohort embedding on the encoder input.

    The cohorts (and their ids) come from --assignments; decode the result with
    `asrtools decode --cohort-map` (e.g. the evaluation speakers' `asrtools cohorts assign` output).

    \b
    Example:
      asrtools mitigate cohort-input --config conf/mitigate.yaml --baseline exp/base/averaged.pt \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --cuts-dev data/fbank/cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe/bpe.model --assignments exp/cohorts/train_assign.json --dim 8 \\
        --exp-dir exp/mitigate/cohort_input
    """
    _train(run, {"mitigation": {"data": "general"}}, cohort_input=(dim, combine))


@mitigate.command("evaluate")
@click.option("--decode", "decode_dir", type=_DIR, required=True, help="The system's decode directory.")
@click.option("--baseline-decode", type=_DIR, default=None,
              help="The baseline's decode of the same cuts (omit for the baseline's own row).")
@click.option("--assignments", type=_FILE, required=True,
              help="Held-out cohort assignments of the evaluation speakers (assignments.json).")
@click.option("--name", required=True, help="The system's name in the table.")
@click.option("--train-dir", type=_DIR, default=None, help="The system's train stage directory (method, cost).")
@click.option("--fisher-dir", type=_DIR, default=None, help="The Fisher stage an EWC system used (its cost).")
@click.option("--n-boot", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--n-permutations", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--level", type=float, default=0.95, show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--out-dir", type=_DIR, required=True, help="Stage directory for evaluation.json.")
@force_option
def evaluate(decode_dir: Path, baseline_decode: Optional[Path], assignments: Path, name: str,
             train_dir: Optional[Path], fisher_dir: Optional[Path], n_boot: int, n_permutations: int, seed: int,
             level: float, alpha: float, out_dir: Path, force: bool) -> None:
    """Overall / worst-region / cohort-spread WER, gap with CI and paired per-cohort tests vs the baseline.

    \b
    Example:
      asrtools mitigate evaluate --decode exp/mitigate/ewc_10/decode_test --baseline-decode exp/base/decode_test \\
        --assignments exp/cohorts/test_assign.json --name ewc_10 --out-dir exp/mitigate/eval_ewc_10
    """
    from asrtools.data.assignments import read_assignments
    from asrtools.fairness.mitigation.evaluate import EVALUATION_NAME, EvalOptions, evaluation, training_cost
    from asrtools.pipeline import atomic_write_json, run_stage
    from asrtools.scoring.report import load_report
    from asrtools.utils.provenance import provenance

    options = EvalOptions(n_boot, n_permutations, seed, level, alpha)
    inputs = {"decode": decode_dir, "assignments": assignments}
    for key, path in (("baseline_decode", baseline_decode), ("train_dir", train_dir), ("fisher_dir", fisher_dir)):
        if path is not None:
            inputs[key] = path
    loaded: Dict[str, Any] = {}

    def validate() -> None:
        loaded["assignments"] = read_assignments(assignments)
        loaded["system"] = load_report(decode_dir)
        loaded["baseline"] = load_report(baseline_decode) if baseline_decode is not None else None
        loaded["cost"] = training_cost(train_dir, fisher_dir)

    def body(ctx: Any) -> None:
        sources = {key: str(path) for key, path in inputs.items()}
        doc = evaluation(name, loaded["system"], loaded["baseline"], loaded["assignments"], loaded["cost"],
                         options, sources)
        atomic_write_json(ctx.out_dir / EVALUATION_NAME, {**doc, "provenance": provenance()})
        ctx.log.info("%s: overall WER %.2f%%, worst-region (%s) %.2f%%", name, 100 * doc["overall"]["wer"],
                     doc["worst_ranked"]["cohort"], 100 * doc["worst_ranked"]["wer"])

    params = {"name": name, "options": {"n_boot": n_boot, "n_permutations": n_permutations, "seed": seed,
                                        "level": level, "alpha": alpha}}
    run_stage(out_dir, "mitigate evaluate", params, inputs, body, force=force, validate=validate)


@mitigate.command("results")
@click.option("--eval", "evals", multiple=True, required=True, metavar="[NAME=]DIR",
              help="A `mitigate evaluate` directory (repeatable; table order; NAME overrides its name).")
@click.option("--out-dir", type=_DIR, required=True, help="Stage directory: results.md, results.json, tradeoff.png.")
@force_option
def results(evals: Tuple[str, ...], out_dir: Path, force: bool) -> None:
    """The mitigation table and the overall-vs-worst-region trade-off plot, from evaluation.json files only.

    \b
    Example:
      asrtools mitigate results --eval base=exp/mitigate/eval_base --eval ewc_10=exp/mitigate/eval_ewc_10 \\
        --out-dir exp/mitigate/results
    """
    import json

    from asrtools.errors import DataError
    from asrtools.fairness.mitigation.evaluate import EVALUATION_NAME
    from asrtools.fairness.mitigation.results import plot_tradeoff, results_markdown, results_rows
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage

    named = [split_named("--eval", spec, allow_bare=True) for spec in evals]
    inputs = {f"eval{i}": Path(path) / EVALUATION_NAME for i, (_, path) in enumerate(named)}
    loaded: Dict[str, Any] = {}

    def validate() -> None:
        docs = []
        for (label, _), path in zip(named, inputs.values()):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise DataError(f"--eval {path}: not a readable evaluation.json ({err})") from None
            docs.append({**doc, "name": label or doc["name"]})
        loaded["rows"] = results_rows(docs)

    def body(ctx: Any) -> None:
        rows = loaded["rows"]
        atomic_write_json(ctx.out_dir / "results.json", {"rows": rows})
        atomic_write_text(ctx.out_dir / "results.md", results_markdown(rows))
        plot_tradeoff(rows, ctx.out_dir / "tradeoff.png")

    run_stage(out_dir, "mitigate results", {"names": [n for n, _ in named]}, inputs, body, force=force,
              validate=validate)
