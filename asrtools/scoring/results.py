"""The model-comparison table of a recipe (`asrtools score results`).

For each experiment (a `NAME=EXP_DIR` of `asrtools train`) it reads what the recipe
produced and puts one row per system into a Markdown table (and a JSON twin):

- the checkpoint (default `<exp>/averaged.pt`): encoder type, parameters and encoder
  GFLOPs per second of audio, measured exactly as `asrtools model info` does
  (`asrtools.models.flops`: streaming chunk by chunk for a causal encoder, on a 10 s
  random input; the chunk is the streaming decode's `--chunk-frames` when known);
- WER from the `wer.json` of `asrtools score wer` for three decodes, by default where
  egs/synth/asr/run.sh (stages 5-6) puts them:

      dev             <exp>/decode_dev_<offline method>/wer/wer.json   (offline method: greedy by default)
      test            <exp>/decode_test_<offline method>/wer/wer.json
      test_streaming  <exp>/decode_test_streaming/wer/wer.json

  (any of them can be given explicitly: a `wer.json` or the directory holding it). The
  decode's `summary.json`, found through the paths recorded in `wer.json` or as the WER
  directory's parent, gives the method and chunk; a streaming column whose decode was not
  `streaming_greedy` is an error;
- the streaming real-time factor on one CPU thread from the JSON that
  `asrtools model rtf` (or `scripts/bench_streaming.py --json-out`) writes (entries matched by NAME).

It also states whether ConvRNN-T beats the LSTM RNN-T at similar size: each `convrnnt`
system is paired with the `lstm` system closest in parameters; at a parameter ratio within
`SIZE_TOLERANCE` the test WERs (offline and streaming) are compared with the paired
speaker-level bootstrap of `asrtools.scoring.compare` (needs the WER directories'
`utts.jsonl`). A missing input is an error naming the file, or "n/a" with `allow_missing`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from asrtools.decoding.rtf import RTF_SCHEMA
from asrtools.errors import ConfigError, DataError
from asrtools.scoring.compare import BETTER, WORSE
from asrtools.scoring.report import UTTS_JSONL, WER_JSON, WER_SCHEMA, WER_SCHEMA_VERSION, read_json

#: WER columns: key -> (split, streaming?, column title).
WER_KEYS: Dict[str, Tuple[str, bool, str]] = {
    "dev": ("dev", False, "dev WER %"),
    "test": ("test", False, "test WER %"),
    "test_streaming": ("test", True, "streaming test WER %"),
}
STREAMING_METHOD = "streaming_greedy"
OFFLINE_METHODS = ("greedy", "modified_beam")
DEFAULT_CHECKPOINT = "averaged.pt"
#: ConvRNN-T and LSTM systems count as "similar size" when their parameter ratio is within 1 +- this.
SIZE_TOLERANCE = 0.25
FLOPS_SECONDS = 10.0
N_BOOT, SEED, ALPHA = 1000, 0, 0.05
NOT_TESTED = "not tested"


@dataclasses.dataclass
class ExperimentSpec:
    """Where one system's inputs are.

    Attributes:
      name: the system's name in the table.
      exp_dir: its `asrtools train` experiment directory.
      checkpoint: the checkpoint to measure (architecture, parameters, FLOPs).
      wer: WER key -> `wer.json` path.
    """

    name: str
    exp_dir: Path
    checkpoint: Path
    wer: Dict[str, Path]


def default_wer_path(exp_dir: Path, key: str, offline_method: str = "greedy") -> Path:
    """The recipe's `wer.json` of WER column `key` (see the module docstring)."""
    split, streaming, _ = WER_KEYS[key]
    decode = f"decode_{split}_streaming" if streaming else f"decode_{split}_{offline_method}"
    return Path(exp_dir) / decode / "wer" / WER_JSON


def wer_json_path(path: Path) -> Path:
    """A `wer.json` path from a `wer.json` file or a WER directory."""
    path = Path(path)
    return path / WER_JSON if path.is_dir() else path


def experiment_specs(
    exps: Sequence[Tuple[str, Path]],
    checkpoints: Mapping[str, Path],
    wer_paths: Mapping[Tuple[str, str], Path],
    offline_method: str = "greedy",
) -> List[ExperimentSpec]:
    """Resolve every system's input paths (defaults + explicit ones).

    Args:
      exps: `(name, exp_dir)` pairs in table order.
      checkpoints: name -> checkpoint (relative to the exp dir unless it exists as given).
      wer_paths: `(name, key)` -> `wer.json` or WER directory.
      offline_method: the method of the default dev / test decode directories.
    """
    names = [name for name, _ in exps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"--exp names must be unique: {', '.join(duplicates)}")
    if offline_method not in OFFLINE_METHODS:
        raise ConfigError(f"offline method {offline_method!r} is unknown (known: {', '.join(OFFLINE_METHODS)})")
    for name in checkpoints:
        if name not in names:
            raise ConfigError(f"--checkpoint {name}=...: no --exp named {name!r}")
    for name, key in wer_paths:
        if name not in names:
            raise ConfigError(f"--wer {name}:{key}=...: no --exp named {name!r}")
        if key not in WER_KEYS:
            raise ConfigError(f"--wer {name}:{key}=...: unknown WER key {key!r} (known: {', '.join(WER_KEYS)})")
    specs = []
    for name, exp_dir in exps:
        checkpoint = Path(checkpoints[name]) if name in checkpoints else Path(DEFAULT_CHECKPOINT)
        if name not in checkpoints or not (checkpoint.exists() or checkpoint.is_absolute()):
            checkpoint = Path(exp_dir) / checkpoint
        wer = {key: wer_json_path(wer_paths[(name, key)]) if (name, key) in wer_paths
               else default_wer_path(exp_dir, key, offline_method) for key in WER_KEYS}
        specs.append(ExperimentSpec(name, Path(exp_dir), checkpoint, wer))
    return specs


# ----------------------------------------------------------------------------- reading inputs


def read_wer_json(path: Path) -> Dict[str, Any]:
    """A `wer.json` document (schema-checked); `DataError` naming the file otherwise."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != WER_SCHEMA or doc.get("version") != WER_SCHEMA_VERSION:
        raise DataError(f"{path}: not an {WER_SCHEMA} v{WER_SCHEMA_VERSION} file (made by `asrtools score wer`)")
    if not isinstance(doc.get("total"), dict) or "words" not in doc["total"]:
        raise DataError(f"{path}: has no total counts")
    return doc


def decode_summary_path(wer_json: Path, doc: Mapping[str, Any]) -> Optional[Path]:
    """The `summary.json` of the decode that `wer_json` scored, if it can be found.

    Looks in the decode directory recorded in `wer.json` (`--ref DIR` or `--ref
    DIR/recogs.jsonl`, or the directory of `--hyp`), then in the WER directory's parent (the
    `decode_*/wer` layout).
    """
    inputs = doc.get("inputs") or {}
    candidates = []
    if inputs.get("ref"):
        ref = Path(inputs["ref"])
        candidates.append(ref if ref.is_dir() else ref.parent)
    if inputs.get("hyp"):
        candidates.append(Path(inputs["hyp"]).parent)
    candidates.append(Path(wer_json).parent.parent)
    for directory in candidates:
        summary = directory / "summary.json"
        if summary.is_file():
            return summary
    return None


def read_bench_json(path: Path) -> Dict[str, Any]:
    """An `asrtools model rtf` rtf.json document; `DataError` naming the file otherwise."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != RTF_SCHEMA or not isinstance(doc.get("models"), dict):
        raise DataError(f"{path}: not a {RTF_SCHEMA} file (made by `asrtools model rtf` or "
                        "scripts/bench_streaming.py --json-out)")
    return doc


@dataclasses.dataclass
class DecodeInfo:
    """The decode a WER was computed on (from its `summary.json`).

    Attributes:
      summary: the `summary.json`.
      method: the decoding method.
      chunk_frames: the streaming chunk (None for offline methods).
    """

    summary: Path
    method: str
    chunk_frames: Optional[int]


def decode_info(name: str, key: str, wer_json: Path, summary: Path) -> DecodeInfo:
    """Read a decode `summary.json`; WER column `key` must come from a matching method.

    Args:
      name: the system (for messages).
      key: the WER column (`test_streaming` needs `streaming_greedy`, the others an offline method).
      wer_json: the WER file (for messages).
      summary: the decode's `summary.json`.
    """
    try:
        options = json.loads(summary.read_text(encoding="utf-8"))["options"]
        method = str(options["method"])
        chunk = int(options["chunk_frames"]) if method == STREAMING_METHOD else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{summary}: not a decode summary.json ({type(err).__name__}: {err})") from None
    if WER_KEYS[key][1] != (method == STREAMING_METHOD):
        wanted = STREAMING_METHOD if WER_KEYS[key][1] else "an offline method"
        raise DataError(f"{name}: {key} WER {wer_json} scores a `{method}` decode ({summary}); expected {wanted}")
    return DecodeInfo(summary, method, chunk)


@dataclasses.dataclass
class ResultsInputs:
    """What the stage will read (its inputs) and what is missing.

    Attributes:
      files: stage input name -> existing file.
      missing: one line per missing item ("system: what: path").
      decodes: `(name, key)` -> the decode behind that WER, when its `summary.json` was found.
      rtf_sources: name -> the bench JSON holding its RTF (the last one given wins).
    """

    files: Dict[str, Path]
    missing: List[str]
    decodes: Dict[Tuple[str, str], DecodeInfo]
    rtf_sources: Dict[str, Path]


def locate_inputs(specs: Sequence[ExperimentSpec], rtf_jsons: Sequence[Path], allow_missing: bool) -> ResultsInputs:
    """Find every input file; raise `DataError` for the first missing one unless `allow_missing`.

    Args:
      specs: from `experiment_specs`.
      rtf_jsons: bench JSON files (later ones override earlier entries of the same name).
      allow_missing: record missing items instead of failing.
    """
    found = ResultsInputs({}, [], {}, {})

    def missing(message: str) -> None:
        if not allow_missing:
            raise DataError(message + " (--allow-missing shows n/a instead)")
        found.missing.append(message)

    rtf_names: Dict[str, Path] = {}
    for index, path in enumerate(rtf_jsons):
        if not Path(path).is_file():
            missing(f"RTF JSON {path} does not exist (write it with `asrtools model rtf`)")
            continue
        found.files[f"rtf_json_{index}"] = Path(path)
        rtf_names.update({name: Path(path) for name in read_bench_json(path)["models"]})
    for spec in specs:
        if spec.checkpoint.is_file():
            found.files[f"{spec.name}.checkpoint"] = spec.checkpoint
        else:
            missing(f"{spec.name}: checkpoint {spec.checkpoint} does not exist (or pass --checkpoint {spec.name}=PATH)")
        for key, path in spec.wer.items():
            if not path.is_file():
                missing(f"{spec.name}: {key} WER: {path} does not exist (run `asrtools score wer` or pass "
                        f"--wer {spec.name}:{key}=PATH)")
                continue
            found.files[f"{spec.name}.{key}.wer_json"] = path
            if (path.parent / UTTS_JSONL).is_file():
                found.files[f"{spec.name}.{key}.utts"] = path.parent / UTTS_JSONL
            summary = decode_summary_path(path, read_wer_json(path))
            if summary is not None:
                found.files[f"{spec.name}.{key}.decode_summary"] = summary
                found.decodes[(spec.name, key)] = decode_info(spec.name, key, path, summary)
        if spec.name in rtf_names:
            found.rtf_sources[spec.name] = rtf_names[spec.name]
        elif not rtf_jsons:
            missing(f"{spec.name}: streaming RTF: no --rtf-json given (write one with `asrtools model rtf "
                    f"--checkpoint {spec.name}=... --out-dir DIR`)")
        else:
            missing(f"{spec.name}: streaming RTF: no entry {spec.name!r} in {', '.join(map(str, rtf_jsons))}")
    return found


# ----------------------------------------------------------------------------- measuring


@dataclasses.dataclass
class WerCell:
    """One WER of one system.

    Attributes:
      wer: fraction (None without reference words).
      words, errors, sents: totals from `wer.json`.
      mode: alignment mode of the scoring.
      method: decoding method (from the decode summary, None if unknown).
      chunk_frames: streaming chunk of the decode (None if not streaming or unknown).
      path: the `wer.json`.
    """

    wer: Optional[float]
    words: int
    errors: int
    sents: int
    mode: str
    method: Optional[str]
    chunk_frames: Optional[int]
    path: Path


@dataclasses.dataclass
class SystemResult:
    """One table row (None: not available)."""

    name: str
    checkpoint: Optional[Path] = None
    encoder: Optional[str] = None
    params: Optional[int] = None
    gflops_per_second: Optional[float] = None
    flops_chunk_frames: Optional[int] = None
    checkpoint_info: Optional[str] = None
    wer: Dict[str, WerCell] = dataclasses.field(default_factory=dict)
    rtf: Optional[Dict[str, Any]] = None
    rtf_source: Optional[Path] = None


def wer_cell(path: Path, decode: Optional[DecodeInfo]) -> WerCell:
    """One WER from its `wer.json` and the decode behind it (None if unknown)."""
    doc = read_wer_json(path)
    total = doc["total"]
    return WerCell(total.get("wer"), int(total["words"]), int(total["err"]), int(total["sents"]),
                   str(doc.get("mode")), decode.method if decode else None,
                   decode.chunk_frames if decode else None, Path(path))


@dataclasses.dataclass
class CheckpointCost:
    """Size and compute of a checkpoint's model.

    Attributes:
      encoder: the registered encoder name.
      params: parameters of the whole transducer.
      gflops_per_second: encoder GFLOPs (2 x MACs) per second of audio.
      chunk_frames: streaming chunk of the FLOPs measurement (0: whole-utterance forward).
      info: training progress recorded in the checkpoint (epoch, step, averaging).
    """

    encoder: str
    params: int
    gflops_per_second: float
    chunk_frames: int
    info: str


def measure_checkpoint(path: Path, chunk_frames: Optional[int]) -> CheckpointCost:
    """Parameters and encoder FLOPs of a checkpoint's model, as `asrtools model info` measures them.

    Args:
      path: any model-bearing checkpoint of `asrtools train`.
      chunk_frames: streaming chunk in input frames (None: the encoder's default chunk).
    """
    import torch

    from asrtools.decoding.recognize import load_model
    from asrtools.models.flops import cost_table, measure_encoder_flops
    from asrtools.models.checkpoint import load_checkpoint

    model, config = load_model(path)
    torch.manual_seed(0)
    flops = measure_encoder_flops(model.encoder, config.feature_dim, FLOPS_SECONDS, chunk_frames=chunk_frames)
    total = cost_table(model, flops)[-1]
    meta = load_checkpoint(path)
    parts = [f"{key} {meta[key]}" for key in ("epoch", "step") if key in meta]
    if meta.get("averaged_from"):
        parts.append("mean of " + ", ".join(meta["averaged_from"]))
    return CheckpointCost(config.encoder, total.params, total.flops_per_second / 1e9, flops.chunk_frames,
                          "; ".join(parts))


def collect_results(specs: Sequence[ExperimentSpec], inputs: ResultsInputs) -> List[SystemResult]:
    """Read and measure everything `inputs` found; missing items stay None."""
    results = []
    for spec in specs:
        row = SystemResult(spec.name)
        for key, path in spec.wer.items():
            if f"{spec.name}.{key}.wer_json" in inputs.files:
                row.wer[key] = wer_cell(path, inputs.decodes.get((spec.name, key)))
        if spec.name in inputs.rtf_sources:
            row.rtf_source = inputs.rtf_sources[spec.name]
            row.rtf = read_bench_json(row.rtf_source)["models"][spec.name]
        if f"{spec.name}.checkpoint" in inputs.files:
            row.checkpoint = spec.checkpoint
            streaming = row.wer.get("test_streaming")
            chunk = streaming.chunk_frames if streaming is not None else None
            cost = measure_checkpoint(spec.checkpoint, chunk)
            row.encoder, row.params, row.gflops_per_second = cost.encoder, cost.params, cost.gflops_per_second
            row.flops_chunk_frames, row.checkpoint_info = cost.chunk_frames, cost.info
        elif row.rtf is not None:
            row.encoder = row.rtf.get("encoder")
        results.append(row)
    return results


# ----------------------------------------------------------------------------- ConvRNN-T vs LSTM


@dataclasses.dataclass
class PairComparison:
    """ConvRNN-T system `b` against LSTM system `a` on one WER key.

    Attributes:
      key: the WER key.
      wer_a, wer_b: the two WERs (fractions).
      p_value: paired speaker-bootstrap p-value (None when not tested).
      verdict: `better` / `worse` / `no significant change` for ConvRNN-T, or
        `not tested` when no paired bootstrap could be run.
      note: why it was not tested.
    """

    key: str
    wer_a: Optional[float]
    wer_b: Optional[float]
    p_value: Optional[float]
    verdict: str
    note: str = ""


@dataclasses.dataclass
class SizeMatchedVerdict:
    """Does ConvRNN-T system `convrnnt` beat LSTM system `lstm` at similar size?"""

    convrnnt: str
    lstm: str
    params_ratio: Optional[float]
    similar_size: bool
    comparisons: List[PairComparison]
    answer: str
    text: str


def _paired(key: str, a: WerCell, b: WerCell) -> PairComparison:
    """Bootstrap comparison of two WER directories (A = LSTM, B = ConvRNN-T)."""
    from asrtools.scoring.cohorts import UtteranceTable, finite_or_none
    from asrtools.scoring.compare import compare_systems
    from asrtools.scoring.report import is_wer_dir, read_wer_dir

    if not (is_wer_dir(a.path.parent) and is_wer_dir(b.path.parent)):
        return PairComparison(key, a.wer, b.wer, None, NOT_TESTED, f"no {UTTS_JSONL} beside wer.json")
    tables = [UtteranceTable.from_report(read_wer_dir(cell.path.parent)) for cell in (a, b)]
    try:
        overall = compare_systems(tables[0], tables[1], [], N_BOOT, SEED, 0.95, ALPHA,
                                  names=(str(a.path.parent), str(b.path.parent))).overall
    except DataError as err:  # not the same utterances / references
        return PairComparison(key, a.wer, b.wer, None, NOT_TESTED, str(err))
    return PairComparison(key, a.wer, b.wer, finite_or_none(overall.p_bootstrap), overall.verdict)


def convrnnt_vs_lstm(results: Sequence[SystemResult]) -> List[SizeMatchedVerdict]:
    """For every ConvRNN-T system: the verdict against the LSTM system closest in size."""
    lstms = [r for r in results if r.encoder == "lstm" and r.params]
    verdicts = []
    for conv in (r for r in results if r.encoder == "convrnnt"):
        if not lstms or not conv.params:
            what = "no LSTM system with a checkpoint" if not lstms else "its checkpoint is missing"
            verdicts.append(SizeMatchedVerdict(conv.name, "", None, False, [], "undecided",
                                               f"{conv.name} (ConvRNN-T) vs LSTM RNN-T: cannot be decided ({what})."))
            continue
        lstm = min(lstms, key=lambda r: abs(conv.params / r.params - 1.0))
        ratio = conv.params / lstm.params
        similar = abs(ratio - 1.0) <= SIZE_TOLERANCE
        comparisons = [_paired(key, lstm.wer[key], conv.wer[key]) for key in ("test", "test_streaming")
                       if key in lstm.wer and key in conv.wer]
        verdicts.append(_verdict(conv, lstm, ratio, similar, comparisons))
    return verdicts


def _verdict(conv: SystemResult, lstm: SystemResult, ratio: float, similar: bool,
             comparisons: List[PairComparison]) -> SizeMatchedVerdict:
    sizes = (f"{conv.name} (ConvRNN-T, {conv.params / 1e6:.2f} M params) vs {lstm.name} "
             f"(LSTM RNN-T, {lstm.params / 1e6:.2f} M; ratio {ratio:.2f})")
    details = "; ".join(f"{WER_KEYS[c.key][2].replace(' %', '')} {_pct(c.wer_b)} vs {_pct(c.wer_a)}, "
                        f"{_significance(c)}" for c in comparisons)
    tested = {c.verdict for c in comparisons if c.verdict != NOT_TESTED}
    if not similar:
        answer = "not comparable"
        text = f"{sizes}: not similar in size (ratio outside 1 +- {SIZE_TOLERANCE}), no verdict."
    elif not comparisons:
        answer = "undecided"
        text = f"{sizes}: cannot be decided (no test WER of both systems)."
    elif not tested:
        answer = "undecided"
        text = f"{sizes}: undecided, no significance test could be run ({details})."
    elif tested == {BETTER}:
        answer = "yes"
        text = f"{sizes}: **yes, ConvRNN-T beats the LSTM RNN-T** ({details})."
    elif WORSE in tested:
        answer = "no"
        text = f"{sizes}: **no, ConvRNN-T is worse** ({details})."
    else:
        answer = "not shown"
        text = f"{sizes}: **not shown**, no significant improvement at alpha {ALPHA} ({details})."
    return SizeMatchedVerdict(conv.name, lstm.name, ratio, similar, comparisons, answer, text)


def _significance(c: PairComparison) -> str:
    if c.verdict == NOT_TESTED:
        return f"{NOT_TESTED}: {c.note}"
    if c.p_value is None:
        return c.verdict
    return f"{c.verdict} (paired speaker bootstrap, {N_BOOT} replicates: p = {c.p_value:.3g})"


# ----------------------------------------------------------------------------- output


def _pct(value: Optional[float]) -> str:
    return f"{100 * value:.2f}%" if value is not None else "n/a"


def _cell_pct(cell: Optional[WerCell]) -> str:
    return f"{100 * cell.wer:.2f}" if cell is not None and cell.wer is not None else "n/a"


def _params(count: Optional[int]) -> str:
    return f"{count / 1e6:.2f} M" if count is not None else "n/a"


def _num(value: Optional[float], fmt: str) -> str:
    return format(value, fmt) if value is not None else "n/a"


def results_markdown(results: Sequence[SystemResult], verdicts: Sequence[SizeMatchedVerdict], title: str,
                     command: str, generated: str, missing: Sequence[str]) -> str:
    """The RESULTS.md document.

    Args:
      results: the rows.
      verdicts: from `convrnnt_vs_lstm`.
      title: the page title.
      command: the command that generated the page (shown in the header).
      generated: when, e.g. "2026-11-25 18:00 UTC".
      missing: the missing inputs (shown as n/a).
    """
    bench_commands = sorted({(str(r.rtf_source), _bench_command(r.rtf_source)) for r in results if r.rtf_source})
    lines = [
        f"# {title}",
        "",
        f"Generated on {generated} by",
        "",
        "```",
        command,
        "```",
        "",
        "from the files listed under Sources: parameters and encoder GFLOPs per second of audio measured on "
        "each checkpoint as `asrtools model info` does (2 x MACs, streaming_forward chunk by chunk, "
        f"{FLOPS_SECONDS:g} s random input); WER from the `wer.json` of `asrtools score wer` on "
        "`asrtools decode` outputs; streaming RTF (one stream, one CPU thread, wall time / audio time, "
        "mean over utterances) from `asrtools model rtf`"
        + ("" if not bench_commands else " run as " + "; ".join(f"`{cmd}`" for _, cmd in bench_commands))
        + ". Latency = chunk + look-ahead of that streaming run.",
        "",
        "| system | encoder | params | GFLOPs/s | " + " | ".join(t for _, _, t in WER_KEYS.values())
        + " | latency ms | RTF (1 thread) |",
        "|---|---|---:|---:|" + "---:|" * len(WER_KEYS) + "---:|---:|",
    ]
    for r in results:
        rtf = r.rtf or {}
        lines.append(
            f"| {r.name} | {r.encoder or 'n/a'} | {_params(r.params)} | {_num(r.gflops_per_second, '.3f')} | "
            + " | ".join(_cell_pct(r.wer.get(key)) for key in WER_KEYS)
            + f" | {_num(rtf.get('latency_ms'), '.0f')} | {_num(rtf.get('rtf_mean'), '.4f')} |"
        )
    lines += ["", "**Does ConvRNN-T beat the LSTM RNN-T at similar size?**", ""]
    lines += [f"- {v.text}" for v in verdicts] or ["- No ConvRNN-T system (encoder `convrnnt`) in this table."]
    if missing:
        lines += ["", "Missing inputs (shown as n/a):", ""] + [f"- {m}" for m in missing]
    lines += ["", "## Sources", "", "| system | item | file | produced by |", "|---|---|---|---|"]
    for r in results:
        lines += _source_rows(r)
    return "\n".join(lines) + "\n"


def _bench_command(path: Optional[Path]) -> str:
    return str(read_bench_json(path).get("command", "asrtools model rtf")) if path else ""


def _source_rows(r: SystemResult) -> List[str]:
    rows = []
    if r.params is not None:
        rows.append(f"| {r.name} | checkpoint | {r.checkpoint} | `asrtools train`"
                    f"{' (' + r.checkpoint_info + ')' if r.checkpoint_info else ''}; FLOPs in "
                    f"{r.flops_chunk_frames}-frame chunks |")
    for key, cell in r.wer.items():
        if cell.method is None:
            decode = "`asrtools decode` (its summary.json was not found)"
        else:
            chunk = f" --chunk-frames {cell.chunk_frames}" if cell.chunk_frames else ""
            decode = f"`asrtools decode --method {cell.method}{chunk}`"
        rows.append(f"| {r.name} | {key} WER | {cell.path} | `asrtools score wer --mode {cell.mode}` on {decode}; "
                    f"{cell.sents} utterances, {cell.words} words |")
    if r.rtf is not None:
        rows.append(f"| {r.name} | streaming RTF | {r.rtf_source} | `asrtools model rtf`: "
                    f"{r.rtf.get('num_utterances')} utterance(s), {r.rtf.get('weights')} weights, "
                    f"chunk {_num(r.rtf.get('chunk_ms'), '.0f')} ms, RTF p90 {_num(r.rtf.get('rtf_p90'), '.4f')} |")
    return rows


def results_json(results: Sequence[SystemResult], verdicts: Sequence[SizeMatchedVerdict], generated: str,
                 command: str, missing: Sequence[str]) -> Dict[str, Any]:
    """The JSON twin of the table."""

    def row(r: SystemResult) -> Dict[str, Any]:
        out = dataclasses.asdict(r)
        out["wer"] = {k: {**dataclasses.asdict(c), "path": str(c.path)} for k, c in r.wer.items()}
        for name in ("checkpoint", "rtf_source"):
            out[name] = str(out[name]) if out[name] is not None else None
        return out

    return {
        "schema": "asrtools.results",
        "version": 1,
        "generated": generated,
        "command": command,
        "systems": [row(r) for r in results],
        "convrnnt_vs_lstm": [dataclasses.asdict(v) for v in verdicts],
        "missing": list(missing),
    }
