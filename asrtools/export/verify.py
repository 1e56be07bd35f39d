"""`asrtools export verify`: does the deployed model give the words the PyTorch model gives?

Compares decode stages (recogs.jsonl) of deployed runtimes (sherpa-onnx fp32/int8, the
toolkit's onnxruntime decoder) with the PyTorch streaming reference on the same cuts:
per candidate, the share of utterances with an identical hypothesis, both WERs and the WER
difference (candidate - reference) with a 95% paired bootstrap interval that resamples
speakers (`asrtools.scoring.bootstrap`). Writes verify.json and verify.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np

from asrtools.errors import DataError
from asrtools.pipeline import StageContext, atomic_write_json, atomic_write_text, run_stage
from asrtools.scoring.bootstrap import bootstrap_wer_pair, percentile_ci, rng_for
from asrtools.scoring.wer import UttPair, score_pairs
from asrtools.utils.provenance import provenance

N_BOOT = 2000


def read_recogs(path: Path) -> Dict[str, Dict[str, Any]]:
    """cut id -> record of a recogs.jsonl; `DataError` naming file and line if malformed."""
    records: Dict[str, Dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            records[record["cut_id"]] = record
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{number}: not a recogs.jsonl record") from None
    return records


def _errors(records: Mapping[str, Dict[str, Any]], ids: List[str]) -> tuple:
    report = score_pairs(UttPair(i, records[i]["speaker"], records[i]["ref"], records[i]["hyp"]) for i in ids)
    counts = report.counts_array()  # (U, 4): corr, sub, del, ins
    return counts[:, 1:].sum(axis=1), counts[:, :3].sum(axis=1)


def compare(reference: Mapping[str, Dict[str, Any]], candidate: Mapping[str, Dict[str, Any]], name: str,
            seed: int = 0) -> Dict[str, Any]:
    """Agreement and WER difference of one candidate with the reference (same cut ids)."""
    if sorted(reference) != sorted(candidate):
        missing = sorted(set(reference) ^ set(candidate))[0]
        raise DataError(f"candidate {name}: cut {missing} is in only one of the two decodes")
    ids = sorted(reference)
    identical = sum(reference[i]["hyp"] == candidate[i]["hyp"] for i in ids)
    ref_err, words = _errors(reference, ids)
    cand_err, _ = _errors(candidate, ids)
    speakers = sorted({reference[i]["speaker"] for i in ids})
    index = {s: k for k, s in enumerate(speakers)}
    per_speaker = np.zeros((len(speakers), 3))
    for u, i in enumerate(ids):
        per_speaker[index[reference[i]["speaker"]]] += (ref_err[u], cand_err[u], words[u])
    ref_boot, cand_boot = bootstrap_wer_pair(per_speaker[:, 0], per_speaker[:, 1], per_speaker[:, 2], N_BOOT,
                                             rng_for(seed, "export verify", name))
    total_words = max(float(words.sum()), 1.0)
    low, high = percentile_ci(100.0 * (cand_boot - ref_boot))
    return {"utterances": len(ids), "identical": identical, "identical_percent": round(100.0 * identical / max(len(ids), 1), 2),
            "reference_wer": round(100.0 * ref_err.sum() / total_words, 3),
            "wer": round(100.0 * cand_err.sum() / total_words, 3),
            "wer_diff": round(100.0 * (cand_err.sum() - ref_err.sum()) / total_words, 3),
            "wer_diff_ci95": [round(low, 3), round(high, 3)], "speakers": len(speakers)}


def page(results: Dict[str, Dict[str, Any]], reference: str) -> str:
    lines = [f"Reference: {reference} (PyTorch streaming greedy). WER difference: candidate - reference, "
             f"95% interval resampling speakers ({N_BOOT} replicates).", "",
             "| runtime | identical hyps | WER % | ref WER % | diff (abs.) | 95% CI |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['identical']}/{r['utterances']} ({r['identical_percent']}%) | {r['wer']} | "
                     f"{r['reference_wer']} | {r['wer_diff']:+.3f} | [{r['wer_diff_ci95'][0]:+.3f}, "
                     f"{r['wer_diff_ci95'][1]:+.3f}] |")
    return "\n".join(lines) + "\n"


def verify_decodes(reference: Path, candidates: Mapping[str, Path], out_dir: Path, force: bool = False) -> bool:
    """The `asrtools export verify` stage (inputs are decode stage directories or recogs.jsonl files)."""
    def recogs(path: Path) -> Path:
        return Path(path) / "recogs.jsonl" if Path(path).is_dir() else Path(path)

    loaded: Dict[str, Any] = {}

    def validate() -> None:
        loaded["reference"] = read_recogs(recogs(reference))
        loaded["candidates"] = {name: read_recogs(recogs(p)) for name, p in candidates.items()}
        for name, records in loaded["candidates"].items():
            if sorted(records) != sorted(loaded["reference"]):
                raise DataError(f"candidate {name} ({recogs(candidates[name])}) decodes other cuts than the reference")

    def body(ctx: StageContext) -> None:
        results = {name: compare(loaded["reference"], records, name) for name, records in loaded["candidates"].items()}
        atomic_write_json(ctx.out_dir / "verify.json", {"reference": str(recogs(reference)), "candidates": results,
                                                        "provenance": provenance()})
        atomic_write_text(ctx.out_dir / "verify.md", page(results, str(recogs(reference))))
        for name, r in results.items():
            ctx.log.info("%s: %s%% identical hypotheses, WER %s vs %s (diff %+.3f, 95%% CI %s)", name,
                         r["identical_percent"], r["wer"], r["reference_wer"], r["wer_diff"], r["wer_diff_ci95"])

    inputs = {"reference": recogs(reference), **{f"candidate_{n}": recogs(p) for n, p in candidates.items()}}
    return run_stage(Path(out_dir), "export verify", {"candidates": sorted(candidates), "n_boot": N_BOOT}, inputs,
                     body, force=force, validate=validate)
