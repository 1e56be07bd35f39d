"""scripts/tuning_table.py: the tuning page from probe artifacts (stage markers, train summaries)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "scripts" / "tuning_table.py"


def _probe(root: Path, name: str, config: dict, wers: list, steps_per_epoch: int, cuts: str = "c0",
           bpe: str = "b0", seconds: float = None) -> None:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / ".done.json").write_text(json.dumps({
        "params": {"config": config}, "inputs": {"cuts_train": cuts, "bpe_model": bpe},
        "provenance": {"asrtools": "0.1.0", "git_commit": "0" * 40, "git_dirty": False, "python": "3.11",
                       "torch": "2.9.1", "cpu": "test CPU", "cpu_count": 2, "gpu": None, "threads": 1}}))
    history = {str(e + 1): {"loss": 1.0 / (e + 1), "wer": w} for e, w in enumerate(wers)}
    summary = {"steps": steps_per_epoch * len(wers), "valid_history": history,
               "selection": {"chosen": [f"epoch-{len(wers)}.pt"]}}
    if seconds is not None:  # recorded by trainers since 2026-11-29
        summary["train_seconds"] = seconds
    (directory / "train_summary.json").write_text(json.dumps(summary))


def test_probes_are_compared_at_equal_steps_and_within_the_budget(tmp_path):
    base = {"num_epochs": 2, "optim": {"lr": 0.002}, "num_threads": 1}
    _probe(tmp_path, "base", base, [0.9, 0.6], steps_per_epoch=100)
    _probe(tmp_path, "long", {**base, "num_epochs": 4}, [0.8, 0.5, 0.4, 0.3], steps_per_epoch=100, seconds=1530.0)
    # three times the cuts per epoch (speed perturbation): epoch 1 ends nearest to the baseline's 200 steps
    _probe(tmp_path, "sp", {**base, "num_epochs": 2, "num_threads": 2}, [0.45, 0.2], steps_per_epoch=300, cuts="c1")
    _probe(tmp_path, "bpe", base, [0.7, 0.55], steps_per_epoch=100, bpe="b1")  # another BPE model (tune.sh bpe_size)
    out = tmp_path / "tuning.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--exp", str(tmp_path), "--baseline", "base",
                           "--out", str(out), "--budget-steps", "300"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in out.read_text().splitlines() if line.startswith("| ")}
    assert "after ~200 steps" in rows["probe"] and "within 300 steps" in rows["probe"]
    assert rows["base"].startswith("| base | (baseline) | 2 | 200 | 60.0 (2) | 60.0 (2) | 60.0 (2) |")
    assert rows["long"].startswith("| long | `num_epochs=4` | 4 | 400 | 50.0 (2) | 40.0 (3) | 30.0 (4) | 0.250 | 25.5 |")
    assert "| 0.500 | – | epoch-2 |" in rows["base"]  # no recorded time
    # num_threads does not change the model, so it is not listed; the other training cuts are
    assert rows["bpe"].startswith("| bpe | other `--bpe-model` (see tune.sh) | 2 | 200 | 55.0 (2) |")
    assert rows["sp"].startswith("| sp | other `--cuts-train` (see tune.sh) | 2 | 600 | 45.0 (1) | 45.0 (1) | 20.0 (2) |")


def test_no_time_column_when_no_probe_recorded_its_time(tmp_path):
    _probe(tmp_path, "base", {"num_epochs": 1}, [0.5], steps_per_epoch=10)
    out = tmp_path / "t.md"
    subprocess.run([sys.executable, str(SCRIPT), "--exp", str(tmp_path), "--baseline", "base", "--out", str(out)],
                   check=True, capture_output=True)
    row = next(line for line in out.read_text().splitlines() if line.startswith("| base "))
    assert "training min" not in out.read_text() and row.endswith("| 1.000 | epoch-1 |")


def test_a_missing_baseline_is_a_one_line_error(tmp_path):
    _probe(tmp_path, "only", {"num_epochs": 1}, [0.5], steps_per_epoch=10)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--exp", str(tmp_path), "--baseline", "base",
                           "--out", str(tmp_path / "t.md")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == f"tuning_table.py: error: no finished probe 'base' in {tmp_path}"
    assert not (tmp_path / "t.md").exists()
