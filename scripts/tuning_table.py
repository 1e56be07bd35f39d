#!/usr/bin/env python3
"""Build the tuning table (docs/tuning.md) from the probes of egs/synth/asr/local/tune.sh.

Reads, for every finished training stage under --exp (a directory per probe), its stage
marker (`.done.json`: the resolved training config, the digests of its inputs) and
`train_summary.json` (dev loss and greedy dev-subset WER after every epoch, the checkpoints
averaged), and writes one Markdown table: what each probe changed against --baseline (config
keys, and inputs with other digests: training cuts, BPE model), its dev WER after as many
optimizer steps as the baseline made (the screening comparison at equal training: the epoch
whose end is nearest to that step), its best dev WER and epoch, its last dev loss, its training
minutes (a column only once some probe's trainer recorded them: `train_seconds`; earlier probes
partly ran side by side, so their wall times would mislead) and the checkpoints it averaged.
Only stage artifacts are read; no model is loaded.

    python3 scripts/tuning_table.py --exp egs/synth/asr/exp/tune --baseline p6_base --out docs/tuning.md
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrtools.pipeline.atomic import atomic_write_text  # noqa: E402
from asrtools.utils.provenance import format_provenance  # noqa: E402

IGNORED = {"num_threads", "save_every_n_steps", "tensorboard", "log_every_n_steps"}  # do not change the model


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_probe(directory: Path) -> Optional[Dict[str, Any]]:
    """The config, validation history and selection of a finished probe (None if unfinished)."""
    marker, summary = directory / ".done.json", directory / "train_summary.json"
    if not marker.is_file() or not summary.is_file():
        return None
    done = json.loads(marker.read_text())
    doc = json.loads(summary.read_text())
    history = {int(epoch): metrics for epoch, metrics in doc["valid_history"].items()}
    return {"name": directory.name, "config": flatten(done["params"]["config"]), "history": history,
            "steps": doc["steps"], "inputs": done.get("inputs", {}), "seconds": doc.get("train_seconds"),
            "selection": doc.get("selection", {}), "provenance": done.get("provenance")}


def changes(probe: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    config, base = probe["config"], baseline["config"]
    inputs, base_inputs = probe["inputs"], baseline["inputs"]
    other = [f"other `--{k.replace('_', '-')}` (see tune.sh)" for k in sorted(set(inputs) | set(base_inputs))
             if inputs.get(k) != base_inputs.get(k)]
    diff = [f"`{k}={config.get(k)}`" for k in sorted(set(config) | set(base))
            if k not in IGNORED and config.get(k) != base.get(k)]
    return ", ".join(other + diff) or "(baseline)"


def steps_per_epoch(probe: Mapping[str, Any]) -> float:
    """Optimizer steps of one epoch (epochs have equal lengths)."""
    return probe["steps"] / max(probe["history"])


def epoch_at_steps(probe: Mapping[str, Any], steps: int) -> int:
    """The epoch whose end is nearest to optimizer step `steps`."""
    return min(probe["history"], key=lambda e: abs(e * steps_per_epoch(probe) - steps))


def pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def minutes(seconds: Optional[float]) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


def best_within(probe: Mapping[str, Any], steps: float) -> str:
    """Best dev WER (epoch) among the epochs that end within `steps` optimizer steps."""
    inside = [e for e in probe["history"] if e * steps_per_epoch(probe) <= steps * 1.01]
    if not inside:
        return "–"
    return wer_at(probe, min(inside, key=lambda e: probe["history"][e].get("wer", float("inf"))))


def wer_at(probe: Mapping[str, Any], epoch: int) -> str:
    return f"{pct(probe['history'][epoch].get('wer'))} ({epoch})"


def table(probes: List[Dict[str, Any]], baseline: Dict[str, Any], budget_steps: int) -> List[str]:
    """Header, alignment row and one row per probe; optional columns only where they apply."""
    screen_steps = baseline["steps"]
    columns: List[Tuple[str, str, Callable[[Dict[str, Any]], str]]] = [  # (title, alignment, cell)
        ("probe", "---", lambda p: p["name"]),
        (f"change against `{baseline['name']}`", "---", lambda p: changes(p, baseline)),
        ("epochs", "---:", lambda p: str(max(p["history"]))),
        ("steps", "---:", lambda p: str(p["steps"])),
        (f"dev WER % after ~{screen_steps} steps (epoch)", "---:",
         lambda p: wer_at(p, epoch_at_steps(p, screen_steps))),
    ]
    if budget_steps:
        columns.append((f"best dev WER % within {budget_steps} steps (epoch)", "---:",
                        lambda p: best_within(p, budget_steps)))
    columns += [("best dev WER % (epoch)", "---:", lambda p: best_within(p, math.inf)),
                ("last dev loss", "---:", lambda p: f"{p['history'][max(p['history'])]['loss']:.3f}")]
    if any(p["seconds"] is not None for p in probes):
        columns.append(("training min", "---:", lambda p: minutes(p["seconds"])))
    columns.append(("averaged", "---",
                    lambda p: ", ".join(Path(c).stem for c in p["selection"].get("chosen", [])) or "–"))

    def row(cells: List[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [row([title for title, _, _ in columns]), "|" + "|".join(align for _, align, _ in columns) + "|",
            *(row([cell(probe) for _, _, cell in columns]) for probe in probes)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exp", type=Path, required=True, help="Directory holding one stage directory per probe.")
    parser.add_argument("--baseline", required=True, help="Probe whose config the others are compared with.")
    parser.add_argument("--out", type=Path, required=True, help="Markdown page to write.")
    parser.add_argument("--budget-steps", type=int, default=0,
                        help="Add a column: each probe's best dev WER among the epochs ending within this many steps.")
    args = parser.parse_args()
    probes = [p for p in (load_probe(d) for d in sorted(args.exp.iterdir()) if d.is_dir()) if p is not None]
    by_name = {p["name"]: p for p in probes}
    if args.baseline not in by_name:
        print(f"tuning_table.py: error: no finished probe {args.baseline!r} in {args.exp}", file=sys.stderr)
        return 1
    baseline = by_name[args.baseline]
    probes.sort(key=lambda p: (p is not baseline, p["name"]))
    made_by = sorted({format_provenance(p["provenance"]) for p in probes if p["provenance"]})
    lines = [
        "# Tuning the LSTM recipe (dev only)", "",
        "Generated by `python3 scripts/tuning_table.py` from the probes of `egs/synth/asr/local/tune.sh` "
        "(stage markers and `train_summary.json` only). Dev WER: greedy, on the fixed 300-utterance dev "
        "subset the trainer decodes after every epoch (`valid.wer_utts`); the test set is not used here. "
        "One seed (42) per probe unless the probe says otherwise; the two seeds of the 24-epoch probe differ "
        "by 0.3 points in best dev WER, which is one measurement of the seed spread: only differences of "
        "several points are read as informative, and none is claimed as significant.", "",
        *table(probes, baseline, args.budget_steps), "",
        "Made by: " + ("; ".join(made_by) if made_by else "unknown (markers without provenance)") + ".", "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
