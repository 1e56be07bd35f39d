"""Collect the multi-talker systems' stage artifacts into one results document (results.json).

For each system (an experiment directory of `asrtools train` with task sts): the training
marker (`.done.json`: config, seconds), the decode summary and the scores of
`asrtools score multitalker` (`<decode>/score/metrics.json`, `conversations.jsonl`). Paired
comparisons between systems use `asrtools.scoring.multitalker.compare_systems`. The page
itself is rendered by `asrtools.scoring.multitalker_page`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from asrtools.errors import DataError
from asrtools.scoring.multitalker import compare_systems


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path} does not exist (run the stage that writes it first)")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise DataError(f"{path}: not JSON") from None


def _read_rows(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist (run `asrtools score multitalker` first)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def environment() -> Dict[str, Any]:
    """The provenance of this process (`asrtools.utils.provenance`) plus the short commit the page prints."""
    from asrtools.utils.provenance import provenance

    record = provenance()
    commit = record["git_commit"]
    short = commit[:12] + ("+dirty" if record["git_dirty"] else "") if commit else None
    return {**record, "commit": short}


def train_info(exp_dir: Path) -> Dict[str, Any]:
    """Seconds, threads, epochs and the loss switches of a finished training stage."""
    marker = _read_json(exp_dir / ".done.json")
    config = marker.get("params", {}).get("config", {})
    loss = config.get("loss", {})
    summary = _read_json(exp_dir / "train_summary.json")
    # the trainer's own sum over every resumed run (the marker's seconds are the last run's only)
    return {"seconds": summary.get("train_seconds"), "num_threads": config.get("num_threads"),
            "num_epochs": config.get("num_epochs"), "max_steps": config.get("max_steps"),
            "steps": summary.get("steps"), "epochs_reached": summary.get("epochs"),
            "world_size": marker.get("params", {}).get("world_size"),
            "turn_scheme": loss.get("turn_scheme"), "fastemit_lambda": loss.get("fastemit_lambda"),
            "activity_weight": loss.get("activity_weight"), "eot_latency_weight": loss.get("eot_latency_weight")}


def build_results(systems: Dict[str, Path], descriptions: Dict[str, str], decode_name: str,
                  comparisons: Sequence[Tuple[str, str]], baseline: Optional[str], main: Optional[str],
                  n_boot: int, seed: int, title: str, notes: Sequence[str]) -> Dict[str, Any]:
    """The results document (see the module doc).

    Args:
      systems: name -> experiment directory, in table order.
      descriptions: name -> one-line description.
      decode_name: the decode directory reported under each experiment.
      comparisons: (A, B) pairs reported as B minus A.
      baseline, main: the pair the paper comparison uses.
      n_boot, seed: bootstrap settings.
      title: page title.
      notes: extra lines for the page.
    """
    doc: Dict[str, Any] = {"title": title, "environment": environment(), "order": list(systems), "systems": {},
                           "comparisons": [], "baseline": baseline, "main": main, "n_boot": n_boot,
                           "notes": list(notes), "command": "asrtools score multitalker-results"}
    rows: Dict[str, List[Dict[str, Any]]] = {}
    for name, exp in systems.items():
        score = exp / decode_name / "score"
        doc["systems"][name] = {"exp_dir": str(exp), "description": descriptions.get(name, ""),
                                "train": train_info(exp), "decode": _read_json(exp / decode_name / "summary.json"),
                                "metrics": _read_json(score / "metrics.json")}
        rows[name] = _read_rows(score / "conversations.jsonl")
    for a, b in comparisons:
        doc["comparisons"].append({"a": a, "b": b, "metrics": compare_systems(rows[a], rows[b], n_boot, seed,
                                                                               name=f"{a}|{b}")})
    return doc
