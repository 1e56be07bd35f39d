"""The results page of the compute-amortized Transformer recipe (egs/synth/amortized), from JSON
artifacts only: WER against executed encoder compute for the dense model, the arbitrated models
of a lambda sweep and the baselines at matched compute.

Inputs per system (`SystemSpec`: a name, a kind and its experiment directory), all written by
recipe stages:

    <exp>/decode_{dev,test}_greedy/summary.json      `asrtools decode`: executed encoder compute
                                                      (`encoder_compute`, asrtools.models.compute)
    <exp>/decode_{dev,test}_greedy/wer/wer.json       `asrtools score wer` (+ utts.jsonl)
    <speed json>                                      `asrtools bench encoder`: wall-clock speed-ups

Kinds: `dense` (exactly one: the reference), `arbitrated` (the sweep), and the baselines
`window` (sliding-window / limited-context attention), `static` (a smaller dense model) and
`random` (random skipping at a fixed rate).

Statistics: every WER difference against the dense model is the paired speaker bootstrap of
asrtools.scoring.compare (the same speakers resampled for both systems): the CI of the
relative difference comes from the same replicates, the p-value is compare's two-sided test.
The operating point is *chosen on dev* (the arbitrated system with the least dev compute
whose dev WER is at most `MAX_REL_WER_INCREASE` above the dense model's) and *measured on
test* (different speakers). The arbitrated-vs-baseline comparisons use the chosen system.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import ConfigError, DataError
from asrtools.scoring.bootstrap import bootstrap_p_value, bootstrap_wer_pair, percentile_ci, rng_for
from asrtools.scoring.cohorts import ALL, UtteranceTable, per_speaker_sums
from asrtools.scoring.compare import pair_tables
from asrtools.scoring.report import WER_JSON, read_json, read_wer_dir
from asrtools.utils.encoder_compute import SPEED_SCHEMA, relative_compute
from asrtools.utils.paths import display_path, relative_paths

KINDS = ("dense", "arbitrated", "window", "static", "random")
KIND_LABELS = {"dense": "dense", "arbitrated": "arbitrated", "window": "sliding-window attention",
               "static": "smaller static dense", "random": "random skipping"}
SPLITS = ("dev", "test")
SCHEMA, SCHEMA_VERSION = "asrtools.amortized_results", 1
#: Acceptance (METHODS.md §2, issue 16): compute cut, WER increase, measured speed-up.
MIN_COMPUTE_CUT, MAX_REL_WER_INCREASE, MIN_SPEEDUP = 0.50, 0.05, 1.6
N_BOOT, SEED, LEVEL, ALPHA = 1000, 0, 0.95, 0.05


@dataclasses.dataclass
class SystemSpec:
    """One system of the page.

    Attributes:
      name: its name in the table (and in the speed JSON).
      kind: one of `KINDS`.
      exp_dir: its experiment directory (decode directories below it).
      label: what the plot calls it (default: the name).
    """

    name: str
    kind: str
    exp_dir: Path
    label: str = ""


def parse_system(spec: str) -> SystemSpec:
    """`KIND:NAME=EXP_DIR` -> `SystemSpec` (`ConfigError` naming the value otherwise)."""
    head, sep, exp_dir = spec.partition("=")
    kind, colon, name = head.partition(":")
    if not sep or not colon or not name or not exp_dir or kind not in KINDS:
        raise ConfigError(f"--system {spec!r}: expected KIND:NAME=EXP_DIR with KIND one of {', '.join(KINDS)}")
    return SystemSpec(name, kind, Path(exp_dir))


def decode_dir(spec: SystemSpec, split: str) -> Path:
    """Where the recipe decodes `split` for a system."""
    return spec.exp_dir / f"decode_{split}_greedy"


def input_files(specs: Sequence[SystemSpec], speed_json: Path) -> Dict[str, Path]:
    """Every file the page reads, by stage-input name; `DataError` naming the first missing one."""
    if sum(s.kind == "dense" for s in specs) != 1:
        raise ConfigError("give exactly one dense system (--system dense:NAME=EXP_DIR)")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"system names must be unique: {', '.join(names)}")
    files = {"speed_json": Path(speed_json)}
    for spec in specs:
        for split in SPLITS:
            files[f"{spec.name}.{split}.summary"] = decode_dir(spec, split) / "summary.json"
            files[f"{spec.name}.{split}.wer"] = decode_dir(spec, split) / "wer" / WER_JSON
            files[f"{spec.name}.{split}.utts"] = decode_dir(spec, split) / "wer" / "utts.jsonl"
    for name, path in files.items():
        if not path.is_file():
            raise DataError(f"{name}: {path} does not exist (run the recipe's decode/score/bench stages first)")
    return files


# ----------------------------------------------------------------------------- reading


@dataclasses.dataclass
class SplitResult:
    """One system on one split.

    Attributes:
      wer: pooled WER (fraction).
      words: reference words.
      compute: executed encoder FLOPs / the dense reference model's FLOPs on the same utterances
        (front end included, `kv_all`).
      compute_kv_skipped: the same if skipped attention queries paid nothing.
      layers_compute: the skippable stack alone (`kv_all`).
      executed: sub-block -> fraction of frames it ran on.
      table: the utterance table (for paired comparisons).
      counts: the decode's `encoder_compute` record (summed FLOPs and frames).
    """

    wer: float
    words: int
    compute: Optional[float]
    compute_kv_skipped: Optional[float]
    layers_compute: Optional[float]
    executed: Dict[str, float]
    table: UtteranceTable
    counts: Dict[str, Any] = dataclasses.field(default_factory=dict)


def read_split(spec: SystemSpec, split: str, reference: Optional[Mapping[str, Any]] = None) -> SplitResult:
    """Read one system's decode summary and WER directory of `split`.

    `reference`: the dense model's `encoder_compute` record on the same split, which the compute
    fractions divide by (a smaller static or windowed model is compared with the model it replaces,
    not with its own dense stack); None: the system is the reference.
    """
    directory = decode_dir(spec, split)
    summary = read_json(directory / "summary.json")
    compute = summary.get("encoder_compute") if isinstance(summary, dict) else None
    if compute is None:
        raise DataError(f"{directory / 'summary.json'}: no encoder_compute (decoded with an encoder that does not "
                        "count its compute?)")
    report = read_wer_dir(directory / "wer")
    table = UtteranceTable.from_report(report)
    words, errors = int(table.words.sum()), int(table.errors.sum())
    if words == 0:
        raise DataError(f"{directory / 'wer'}: no reference words")
    try:
        fractions = relative_compute(compute, compute if reference is None else reference)
    except ValueError as err:
        raise DataError(f"{directory / 'summary.json'}: {err}") from None
    return SplitResult(errors / words, words, fractions["encoder_fraction"], fractions["encoder_fraction_kv_skipped"],
                       fractions["layers_fraction"], dict(compute.get("executed_fraction") or {}), table, compute)


def read_speed(path: Path) -> Dict[str, Any]:
    """An `asrtools bench encoder` document; `DataError` naming the file otherwise."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != SPEED_SCHEMA or not isinstance(doc.get("models"), dict):
        raise DataError(f"{path}: not an {SPEED_SCHEMA} file (made by `asrtools bench encoder`)")
    return doc


# ----------------------------------------------------------------------------- statistics


@dataclasses.dataclass
class PairedDelta:
    """System B against system A on the same utterances (paired speaker bootstrap).

    Attributes:
      wer_a, wer_b: pooled WERs.
      rel: (WER_B - WER_A) / WER_A.
      rel_ci: its CI (same replicates).
      diff_ci: CI of WER_B - WER_A.
      p_value: two-sided bootstrap p-value of "no difference".
      speakers: speakers resampled.
    """

    wer_a: float
    wer_b: float
    rel: float
    rel_ci: Tuple[float, float]
    diff_ci: Tuple[float, float]
    p_value: float
    speakers: int

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_value) and self.p_value < ALPHA


def paired_delta(a: UtteranceTable, b: UtteranceTable, names: Tuple[str, str], n_boot: int = N_BOOT,
                 seed: int = SEED) -> PairedDelta:
    """Paired speaker bootstrap of B vs A (the replicates of asrtools.scoring.compare's overall row)."""
    a, b = pair_tables(a, b, *names)
    speakers, sums = per_speaker_sums(a.speakers, np.stack([a.errors, b.errors, a.words], axis=1))
    words = sums[:, 2].sum()
    wer_a, wer_b = sums[:, 0].sum() / words, sums[:, 1].sum() / words
    rep_a, rep_b = bootstrap_wer_pair(sums[:, 0], sums[:, 1], sums[:, 2], n_boot, rng_for(seed, "paired", "overall", ALL))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_reps = (rep_b - rep_a) / rep_a
    return PairedDelta(float(wer_a), float(wer_b), float((wer_b - wer_a) / wer_a), percentile_ci(rel_reps, LEVEL),
                       percentile_ci(rep_b - rep_a, LEVEL), bootstrap_p_value(rep_b - rep_a, float(wer_b - wer_a)),
                       len(speakers))


# ----------------------------------------------------------------------------- the page


@dataclasses.dataclass
class SystemRow:
    """One table row."""

    spec: SystemSpec
    dev: SplitResult
    test: SplitResult
    dev_delta: Optional[PairedDelta]
    test_delta: Optional[PairedDelta]
    speed: Optional[Dict[str, Any]]
    params: Optional[int]


def speedup(row: SystemRow, setting: str, threads: str) -> Optional[float]:
    """The measured encoder speed-up of `row` in a setting (e.g. "offline b1") at a thread count."""
    if row.speed is None:
        return None
    return row.speed.get("speedup", {}).get(setting, {}).get(threads)


def collect(specs: Sequence[SystemSpec], speed_json: Path) -> Tuple[List[SystemRow], Dict[str, Any]]:
    """Read every system and compare each with the dense model on dev and test."""
    speed = read_speed(speed_json)
    dense = next(s for s in specs if s.kind == "dense")
    data = {dense.name: {split: read_split(dense, split) for split in SPLITS}}
    for spec in specs:
        if spec.name != dense.name:
            data[spec.name] = {split: read_split(spec, split, data[dense.name][split].counts) for split in SPLITS}
    rows = []
    for spec in specs:
        deltas = {}
        for split in SPLITS:
            if spec.name == dense.name:
                deltas[split] = None
            else:
                deltas[split] = paired_delta(data[dense.name][split].table, data[spec.name][split].table,
                                             (dense.name, spec.name))
        entry = speed["models"].get(spec.name)
        rows.append(SystemRow(spec, data[spec.name]["dev"], data[spec.name]["test"], deltas["dev"], deltas["test"],
                              entry, entry.get("params") if entry else None))
    return rows, speed


def choose_operating_point(rows: Sequence[SystemRow]) -> Optional[SystemRow]:
    """The arbitrated row of least dev compute whose dev WER is within MAX_REL_WER_INCREASE of dense's."""
    eligible = [r for r in rows if r.spec.kind == "arbitrated" and r.dev_delta is not None
                and r.dev_delta.rel <= MAX_REL_WER_INCREASE and r.dev.compute is not None]
    return min(eligible, key=lambda r: r.dev.compute) if eligible else None


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def _ci(ci: Tuple[float, float], digits: int = 1, signed: bool = False) -> str:
    if not all(math.isfinite(v) for v in ci):
        return "n/a"
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return "[" + fmt.format(100 * ci[0]) + ", " + fmt.format(100 * ci[1]) + "]"


def _x(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _delta_cell(delta: Optional[PairedDelta]) -> Tuple[str, str]:
    if delta is None:
        return "(reference)", ""
    sig = "" if delta.significant else " (n.s.)"
    return f"{100 * delta.rel:+.1f}% {_ci(delta.rel_ci, 1, signed=True)}{sig}", f"{delta.p_value:.3f}"


def verdicts(rows: Sequence[SystemRow], chosen: Optional[SystemRow], speed: Dict[str, Any]) -> List[str]:
    """The acceptance checks, one line each (chosen on dev, measured on test)."""
    lines = []
    if chosen is None:
        return [f"- No arbitrated system keeps its dev WER within {100 * MAX_REL_WER_INCREASE:.0f}% of the dense "
                "model's: no operating point (see the table for what each lambda costs)."]
    test, delta = chosen.test, chosen.test_delta
    cut = 1.0 - test.compute if test.compute is not None else None
    wer_ok = delta.rel <= MAX_REL_WER_INCREASE
    lines.append(
        f"- Operating point (chosen on dev speakers: least dev compute with dev WER within "
        f"{100 * MAX_REL_WER_INCREASE:.0f}% of dense; measured on the disjoint test speakers): **{chosen.spec.name}**, "
        f"test compute {_pct(test.compute)}% of dense (cut {_pct(cut)}%; {_pct(test.compute_kv_skipped)}% if skipped "
        f"queries paid nothing), test WER {_pct(test.wer, 2)}% vs {_pct(delta.wer_a, 2)}% "
        f"({100 * delta.rel:+.1f}% relative, 95% CI {_ci(delta.rel_ci, 1, signed=True)}, p = {delta.p_value:.3f}).")
    lines.append(
        f"- Compute cut >= {100 * MIN_COMPUTE_CUT:.0f}% at <= {100 * MAX_REL_WER_INCREASE:.0f}% relative WER increase: "
        + ("**met**" if cut is not None and cut >= MIN_COMPUTE_CUT and wer_ok else "**not met**")
        + f" (cut {_pct(cut)}%, WER {100 * delta.rel:+.1f}%).")
    thread_list = [str(t) for t in speed.get("threads", [])]
    settings = speed.get("settings", [])
    parts = [f"{s}, {t} thread(s): {_x(speedup(chosen, s, t))}" for s in settings for t in thread_list]
    met = [f"{s}, {t} thread(s)" for s in settings for t in thread_list
           if (speedup(chosen, s, t) or 0.0) >= MIN_SPEEDUP]
    lines.append(f"- Measured encoder speed-up >= {MIN_SPEEDUP}x on CPU: "
                 + (f"**met** in {', '.join(met)}" if met else "**not met** in any measured setting")
                 + f" ({'; '.join(parts)}; bN = N utterances per call).")
    for kind in ("window", "static", "random"):
        for row in (r for r in rows if r.spec.kind == kind):
            d = paired_delta(row.test.table, chosen.test.table, (row.spec.name, chosen.spec.name))
            verdict = ("no significant difference" if not d.significant
                       else ("arbitrated better" if d.rel < 0 else "arbitrated worse"))
            lines.append(
                f"- {chosen.spec.name} ({_pct(test.compute)}% compute) vs {KIND_LABELS[kind]} {row.spec.name} "
                f"({_pct(row.test.compute)}% compute): test WER {_pct(d.wer_b, 2)}% vs {_pct(d.wer_a, 2)}%, "
                f"{100 * d.rel:+.1f}% relative (95% CI {_ci(d.rel_ci, 1, signed=True)}, p = {d.p_value:.3f}): "
                f"{verdict}" + ("" if row.test.compute is None or test.compute is None
                                 or abs(row.test.compute - test.compute) <= 0.05
                                 else "; not at equal compute (see the plot)") + ".")
    return lines


def results_markdown(rows: Sequence[SystemRow], chosen: Optional[SystemRow], speed: Dict[str, Any], *,
                     title: str, command: str, generated: str, plot_name: Optional[str]) -> str:
    """The RESULTS.md page."""
    speed_cols = [(s, "1") for s in speed.get("settings", []) if "1" in [str(t) for t in speed.get("threads", [])]]
    lines = [
        f"# {title}",
        "",
        f"Generated on {generated} by",
        "",
        "```",
        relative_paths(command),
        "```",
        "",
        "from JSON artifacts of the recipe's stages (listed under Sources). Compute = executed encoder FLOPs / "
        "the dense model's on the same test utterances (2 x multiply-adds, front end and arbitrators included; "
        "keys/values of every frame counted: `kv_all`, what the implementation runs; in brackets `kv_skipped`: "
        "if a skipped attention query paid nothing). Speed-up = the dense encoder's wall-clock time / the "
        f"system's on the same test cuts at one CPU thread (`asrtools bench encoder`; offline / streaming, bN = N "
        f"utterances per call; other thread counts in exp/encoder_speed; commit {speed.get('commit')}, "
        f"torch {speed.get('torch')}, {speed.get('machine')}). Relative delta WER against dense with the 95% CI "
        f"and two-sided p-value of a paired speaker bootstrap ({N_BOOT} replicates; n.s. = not significant at "
        f"{ALPHA}).",
        "",
        "| system | kind | compute % of dense (kv_skipped) | "
        + " | ".join(f"speed-up {m}, 1 thr." for m, _ in speed_cols)
        + " | dev WER % | test WER % | relative delta test WER [95% CI] | p |",
        "|---|---|---:|" + "---:|" * len(speed_cols) + "---:|---:|---:|---:|",
    ]
    for row in rows:
        delta, p = _delta_cell(row.test_delta)
        lines.append(
            f"| {row.spec.name} | {KIND_LABELS[row.spec.kind]} | {_pct(row.test.compute)} "
            f"({_pct(row.test.compute_kv_skipped)}) | "
            + " | ".join(_x(speedup(row, m, t)) for m, t in speed_cols)
            + f" | {_pct(row.dev.wer, 2)} | {_pct(row.test.wer, 2)} | {delta} | {p} |")
    lines += ["", "**Acceptance** (issue 16):", ""] + verdicts(rows, chosen, speed)
    if plot_name:
        lines += ["", f"![test WER against executed encoder compute]({plot_name})"]
    lines += ["", "Executed fraction of frames per sub-block (test):", "",
              "| system | " + " | ".join(_subblock_names(rows)) + " |",
              "|---|" + "---:|" * len(_subblock_names(rows))]
    for row in rows:
        lines.append(f"| {row.spec.name} | " + " | ".join(_pct(row.test.executed.get(n), 0)
                                                           for n in _subblock_names(rows)) + " |")
    lines += ["", "## Sources", "", "| system | item | file |", "|---|---|---|"]
    for row in rows:
        for split in SPLITS:
            d = decode_dir(row.spec, split)
            lines.append(f"| {row.spec.name} | {split} decode (compute) | {display_path(d / 'summary.json')} |")
            lines.append(f"| {row.spec.name} | {split} WER | {display_path(d / 'wer' / WER_JSON)} |")
    lines.append(f"| all | encoder speed | `{relative_paths(str(speed.get('command')))}` |")
    return "\n".join(lines) + "\n"


def _subblock_names(rows: Sequence[SystemRow]) -> List[str]:
    names: List[str] = []
    for row in rows:
        names += [n for n in row.test.executed if n not in names]
    return names


def results_json(rows: Sequence[SystemRow], chosen: Optional[SystemRow], speed: Dict[str, Any],
                 command: str, generated: str) -> Dict[str, Any]:
    """The page's JSON twin."""

    def split_dict(result: SplitResult) -> Dict[str, Any]:
        return {"wer": result.wer, "words": result.words, "compute": result.compute,
                "compute_kv_skipped": result.compute_kv_skipped, "layers_compute": result.layers_compute,
                "executed_fraction": result.executed}

    def delta_dict(delta: Optional[PairedDelta]) -> Optional[Dict[str, Any]]:
        return None if delta is None else {**dataclasses.asdict(delta), "significant": delta.significant}

    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "generated": generated,
        "command": command,
        "operating_point": chosen.spec.name if chosen else None,
        "speed_command": speed.get("command"),
        "systems": [{"name": r.spec.name, "kind": r.spec.kind, "exp_dir": display_path(r.spec.exp_dir), "params": r.params,
                     "dev": split_dict(r.dev), "test": split_dict(r.test), "dev_delta": delta_dict(r.dev_delta),
                     "test_delta": delta_dict(r.test_delta), "speedup": r.speed.get("speedup") if r.speed else None}
                    for r in rows],
    }


def plot_wer_vs_compute(rows: Sequence[SystemRow], chosen: Optional[SystemRow], path: Path) -> None:
    """Test WER against executed compute (% of dense): the arbitrated sweep as a line, dense and baselines as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asrtools.pipeline import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"dense": ("k", "*"), "window": ("tab:orange", "s"), "static": ("tab:green", "^"),
               "random": ("tab:red", "x"), "arbitrated": ("tab:blue", "o")}
    dense = next(r for r in rows if r.spec.kind == "dense")
    ax.axhline(100 * dense.test.wer * (1 + MAX_REL_WER_INCREASE), color="grey", ls=":", lw=1,
               label=f"dense WER +{100 * MAX_REL_WER_INCREASE:.0f}% relative")
    sweep = sorted((r for r in rows if r.spec.kind == "arbitrated"), key=lambda r: r.test.compute or 0.0)
    if sweep:
        ax.plot([100 * r.test.compute for r in sweep], [100 * r.test.wer for r in sweep], "-o",
                color=markers["arbitrated"][0], label="arbitrated (lambda sweep)")
        for r in sweep:
            ax.annotate(r.spec.label or r.spec.name, (100 * r.test.compute, 100 * r.test.wer), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    for kind in ("dense", "window", "static", "random"):
        points = [r for r in rows if r.spec.kind == kind]
        if points:
            colour, marker = markers[kind]
            ax.scatter([100 * r.test.compute for r in points], [100 * r.test.wer for r in points], c=colour,
                       marker=marker, s=70, label=KIND_LABELS[kind], zorder=3)
    if chosen is not None:
        ax.scatter([100 * chosen.test.compute], [100 * chosen.test.wer], s=200, facecolors="none",
                   edgecolors="tab:blue", label="operating point (chosen on dev)", zorder=4)
    ax.set_xlabel("executed encoder compute, % of dense (test)")
    ax.set_ylabel("test WER %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
