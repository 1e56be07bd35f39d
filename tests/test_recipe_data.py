"""egs/synth/asr stages 0–3 end to end: up-to-date reruns, config changes, SIGKILL + resume."""
from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import REPO, needs_tts

pytestmark = needs_tts
RUN_SH = REPO / "egs" / "synth" / "asr" / "run.sh"
STAGES = ("synth", "manifests", "fbank", "fbank_sp", "lang_bpe")
TINY = ("--corpus-preset", "tiny", "--speed-perturb", "0.9 1.1")  # the speed-perturbed copies are a stage-2 output too


def run_recipe(data: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(RUN_SH), *TINY, "--data", str(data), "--stop-stage", "3", *extra],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def artifacts(data: Path) -> Dict[str, bytes]:
    """Every output file's bytes, gzip manifests decompressed with the data dir made relative."""
    out = {}
    for stage in STAGES:
        for path in sorted((data / stage).rglob("*")):
            rel = path.relative_to(data)
            if not path.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            blob = path.read_bytes()
            if path.name.endswith(".gz"):
                assert blob[4:8] == b"\0\0\0\0", f"{rel}: gzip header has a timestamp"
                blob = gzip.decompress(blob).replace(str(data.resolve()).encode(), b"DATA")
            out[str(rel)] = blob
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("recipe") / "data"
    first = run_recipe(data)
    assert "up to date" not in first.stderr
    return data


def test_second_run_is_up_to_date(reference):
    proc = run_recipe(reference)
    for stage in STAGES:
        assert f"{reference / stage}: up to date, nothing to do" in proc.stderr
    assert "running" not in proc.stderr


def test_changed_parameter_reruns_exactly_the_affected_stages(reference, tmp_path):
    bpe_conf = tmp_path / "bpe.yaml"
    bpe_conf.write_text("vocab_size: 100\nmodel_type: bpe\n")
    proc = run_recipe(reference, "--bpe-config", str(bpe_conf))
    for stage in ("synth", "manifests", "fbank"):
        assert f"{reference / stage}: up to date" in proc.stderr
    assert f"{reference / 'lang_bpe'}: running (parameters changed: vocab_size)" in proc.stderr
    proc = run_recipe(reference)  # back to conf/bpe.yaml: only BPE reruns again
    assert f"{reference / 'lang_bpe'}: running (parameters changed: vocab_size)" in proc.stderr
    assert f"{reference / 'fbank'}: up to date" in proc.stderr


def test_sigkill_at_any_moment_then_resume_is_byte_identical(reference, tmp_path):
    expected = artifacts(reference)
    rng = random.Random()
    seed = rng.randrange(10 ** 6)
    rng.seed(seed)
    data = tmp_path / "data"
    kills: List[float] = []
    for attempt in range(3):
        proc = subprocess.Popen([str(RUN_SH), *TINY, "--data", str(data), "--stop-stage", "3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(0.5, 9.0)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append(round(delay, 2))
    run_recipe(data)
    got = artifacts(data)
    assert sorted(got) == sorted(expected), f"seed {seed}, kills at {kills}"
    for rel in expected:
        assert got[rel] == expected[rel], f"{rel} differs (seed {seed}, kills at {kills} s)"


def test_train_decode_score_stages_on_tiny_corpus(reference, tmp_path):
    """Stages 4–7 of run.sh with a tiny training config: a model, recognitions, WER, cohort tables, RESULTS."""
    import json

    import yaml

    from test_train_helpers import TINY_CONFIG

    conf = tmp_path / "train_tiny.yaml"
    conf.write_text(yaml.safe_dump({**TINY_CONFIG, "num_epochs": 1, "average_last_n": 1,
                                    "data": {**TINY_CONFIG["data"], "max_duration": 20.0}}))
    exp = tmp_path / "exp"
    args = [str(RUN_SH), *TINY, "--data", str(reference), "--exp", str(exp), "--stage", "4",
            "--models", "lstm", "--train-config", str(conf), "--rtf-utts", "2", "--results-md", str(tmp_path / "R.md")]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (exp / "lstm" / "averaged.pt").is_file()
    for name in ("decode_dev_greedy", "decode_test_greedy", "decode_test_streaming"):
        report = json.loads((exp / "lstm" / name / "wer" / "wer.json").read_text())
        assert report["total"]["words"] > 0
    cohorts = exp / "lstm" / "decode_test_greedy" / "cohorts"
    assert "accent" in (cohorts / "cohorts.md").read_text() and (cohorts / "wer_by_accent.png").is_file()
    rtf = json.loads((exp / "rtf_streaming" / "rtf.json").read_text())
    assert rtf["models"]["lstm"]["num_utterances"] == 2 and rtf["models"]["lstm"]["chunk_frames"] == 32
    page = (tmp_path / "R.md").read_text()
    test_wer = json.loads((exp / "lstm" / "decode_test_greedy" / "wer" / "wer.json").read_text())["total"]["wer"]
    assert "| lstm | lstm |" in page and f"{100 * test_wer:.2f}" in page
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0 and "running" not in again.stderr, again.stderr[-3000:]
