"""The compute-amortized recipe's commands end to end on a tiny learnable corpus: a dense
Transformer, an arbitrated one fine-tuned from it with the compute penalty, decoding with the
executed compute in summary.json, `asrtools bench encoder`, `asrtools amortized results` (page,
JSON, PNG) and scripts/bench_amortized.py; plus the page's statistics against compare.py."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from asrtools.report import amortized as page
from asrtools.scoring.cohorts import UtteranceTable
from asrtools.scoring.compare import compare_systems

from conftest import run_asrtools
from test_train_helpers import TINY_CONFIG, make_corpus, train_env

REPO = Path(__file__).resolve().parents[1]

TRANSFORMER = {"encoder": "transformer",
               "encoder_params": {"dim": 16, "num_layers": 2, "num_heads": 2, "ffn_dim": 32, "chunk_size": 2,
                                  "left_context": 4, "subsampling_channels": 4, "dropout": 0.0, "norm": "layer"}}


def write_config(path: Path, model: dict, **overrides) -> Path:
    """TINY_CONFIG's trainer sections with `model` (replaced, not merged) and `overrides`."""
    import yaml

    path.write_text(yaml.safe_dump({**TINY_CONFIG, "model": {**TINY_CONFIG["model"], **model}, **overrides}))
    return path


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Train dense + arbitrated (fine-tuned) tiny models, decode and score dev and 'test' (= dev cuts)."""
    root = tmp_path_factory.mktemp("amortized")
    corpus = make_corpus(root / "data", num_train=24, num_dev=8)
    dense_conf = write_config(root / "dense.yaml", TRANSFORMER, num_epochs=3)
    arb_model = {"encoder": "transformer", "encoder_params": {
        **TRANSFORMER["encoder_params"], "gating": "arbitrator", "arbitrator_dim": 0, "arbitrator_init_bias": 0.5,
        "compute_weight": 2.0, "temperature_steps": 10}}
    arb_conf = write_config(root / "arb.yaml", arb_model, num_epochs=2, log_every_n_steps=1, tensorboard=True)
    env = train_env()
    common = ["--cuts-train", str(corpus["cuts_train"]), "--cuts-dev", str(corpus["cuts_dev"]),
              "--bpe-model", str(corpus["bpe_model"])]
    run_asrtools(["train", "--config", str(dense_conf), *common, "--exp-dir", str(root / "dense")], env=env)
    run_asrtools(["train", "--config", str(arb_conf), *common, "--exp-dir", str(root / "arb"),
                  "--init-from", str(root / "dense" / "averaged.pt")], env=env)
    for name in ("dense", "arb"):
        for split in ("dev", "test"):
            out = root / name / f"decode_{split}_greedy"
            run_asrtools(["decode", "--exp-dir", str(root / name), "--cuts", str(corpus["cuts_dev"]),
                          "--bpe-model", str(corpus["bpe_model"]), "--out-dir", str(out)], env=env)
            run_asrtools(["score", "wer", "--ref", str(out / "recogs.jsonl"), "--out-dir", str(out / "wer")], env=env)
    return {"root": root, "corpus": corpus}


def test_fine_tuning_logs_compute_and_decoding_writes_it(recipe):
    root = recipe["root"]
    log = (root / "log" / "arb.log").read_text()
    assert "initialised from" in log and "new parameters keep their initial values" in log
    assert "compute_penalty" in log and "compute_layer1" in log
    history = json.loads((root / "arb" / "train_summary.json").read_text())["valid_history"]
    assert all(0 < metrics["compute"] <= 1.0 for metrics in history.values())
    summary = json.loads((root / "arb" / "decode_test_greedy" / "summary.json").read_text())
    compute = summary["encoder_compute"]
    assert compute["streams"] == summary["num_utterances"] == 8
    assert 0 < compute["encoder_fraction"] < 1 and compute["layers_fraction"] < compute["encoder_fraction"] + 1e-9
    assert set(compute["executed_fraction"]) == {"0.attention", "0.ffn", "1.attention", "1.ffn"}
    records = [json.loads(line) for line in (root / "arb" / "decode_test_greedy" / "recogs.jsonl").open()]
    assert sum(r["encoder_compute"]["frames"] for r in records) == compute["frames"]
    dense = json.loads((root / "dense" / "decode_test_greedy" / "summary.json").read_text())["encoder_compute"]
    assert dense["encoder_fraction"] == 1.0


def test_bench_encoder_and_results_page(recipe, tmp_path):
    root = recipe["root"]
    speed_dir = tmp_path / "speed"
    run_asrtools(["bench", "encoder", "--checkpoint", f"dense={root / 'dense' / 'averaged.pt'}",
                  "--checkpoint", f"arb={root / 'arb' / 'averaged.pt'}", "--reference", "dense",
                  "--cuts", str(recipe["corpus"]["cuts_dev"]), "--num-utts", "3", "--threads", "1",
                  "--batch-size", "1", "--batch-size", "2", "--chunk-frames", "8", "--repeats", "1",
                  "--out-dir", str(speed_dir)])
    speed = json.loads((speed_dir / "encoder_speed.json").read_text())
    assert speed["schema"] == "asrtools.encoder_speed" and speed["threads"] == [1]
    assert speed["settings"] == ["offline b1", "offline b2", "streaming b1", "streaming b2"]
    assert speed["models"]["dense"]["speedup"]["offline b2"]["1"] == 1.0
    assert speed["models"]["arb"]["seconds"]["streaming b1"]["1"] > 0
    assert speed["models"]["arb"]["compute"]["offline"]["encoder_fraction"] < 1.0
    assert speed["commit"] != ""

    out = tmp_path / "RESULTS.md"
    plot = tmp_path / "wer_vs_compute.png"
    args = ["amortized", "results", "--system", f"dense:dense={root / 'dense'}",
            "--system", f"arbitrated:arb={root / 'arb'}", "--label", "arb=lambda 2",
            "--speed-json", str(speed_dir / "encoder_speed.json"), "--out", str(out), "--plot", str(plot),
            "--out-dir", str(tmp_path / "results")]
    run_asrtools(args)
    text = out.read_text()
    assert "| dense | dense |" in text and "| arb | arbitrated |" in text and "(reference)" in text
    assert "Acceptance" in text and "wer_vs_compute.png" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    arb = next(s for s in doc["systems"] if s["name"] == "arb")
    assert arb["test_delta"]["rel_ci"][0] <= arb["test_delta"]["rel"] <= arb["test_delta"]["rel_ci"][1]
    assert "up to date" in run_asrtools(args).stderr
    bad = run_asrtools(["amortized", "results", "--system", f"arbitrated:arb={root / 'arb'}", "--speed-json",
                        str(speed_dir / "encoder_speed.json"), "--out", str(out), "--out-dir",
                        str(tmp_path / "r2")], check=False)
    assert bad.returncode == 1 and "exactly one dense system" in bad.stderr


def test_bench_script_writes_its_section(recipe, tmp_path):
    root = recipe["root"]
    spec = importlib.util.spec_from_file_location("bench_amortized", REPO / "scripts" / "bench_amortized.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    doc_md = tmp_path / "benchmarks.md"
    doc_md.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    module.main(["--checkpoint", f"dense={root / 'dense' / 'averaged.pt'}",
                 "--checkpoint", f"arb={root / 'arb' / 'averaged.pt'}", "--cuts", str(recipe["corpus"]["cuts_dev"]),
                 "--num-utts", "2", "--repeats", "1", "--chunk-frames", "8", "--batch-size", "2", "--gpu", "no",
                 "--out", str(doc_md), "--json-out", str(tmp_path / "speed.json")])
    text = doc_md.read_text()
    assert "## Other\n\nkept" in text and module.SECTION in text
    assert "| arb | " in text and "offline b2, 1 thr." in text and "Commit " in text and "No CUDA GPU" in text
    # the same section from a saved measurement (the recipe's stage 5) without measuring again
    again = tmp_path / "again.md"
    module.main(["--from-json", str(tmp_path / "speed.json"), "--out", str(again)])
    def rows(markdown):
        return [line for line in markdown.split(module.SECTION)[1].splitlines() if line.startswith("| ")]

    assert rows(again.read_text()) == rows(text) and len(rows(text)) == 3
    with pytest.raises(SystemExit, match="bench_amortized: error: .*missing.json"):
        module.main(["--from-json", str(tmp_path / "missing.json"), "--out", "-"])


def _table(errors, words, speakers):
    counts = np.stack([np.asarray(words) - np.asarray(errors), np.asarray(errors), np.zeros(len(words), int),
                       np.zeros(len(words), int)], axis=1)
    ids = [f"u{i}" for i in range(len(words))]
    ops = ["C" * (w - e) + "S" * e for w, e in zip(np.asarray(words).tolist(), np.asarray(errors).tolist())]
    return UtteranceTable(ids, list(speakers), counts, [{} for _ in ids], [f"ref {i}" for i in ids], ops)


def test_paired_delta_matches_compare_and_the_operating_point_is_chosen_on_dev():
    rng = np.random.default_rng(0)
    speakers = [f"s{i % 12}" for i in range(120)]
    words = rng.integers(5, 15, size=120)
    a = _table(rng.binomial(words, 0.3), words, speakers)
    b = _table(rng.binomial(words, 0.33), words, speakers)
    delta = page.paired_delta(a, b, ("a", "b"))
    overall = compare_systems(a, b, [], page.N_BOOT, page.SEED).overall
    assert delta.p_value == pytest.approx(overall.p_bootstrap)
    assert delta.diff_ci == pytest.approx(overall.ci_diff)
    assert delta.rel == pytest.approx(overall.rel_diff)

    def row(name, kind, dev_rel, dev_compute):
        split = page.SplitResult(0.3, 100, dev_compute, dev_compute, dev_compute, {}, a)
        dev_delta = page.PairedDelta(0.3, 0.3 * (1 + dev_rel), dev_rel, (0, 0), (0, 0), 0.5, 12)
        return page.SystemRow(page.SystemSpec(name, kind, Path(name)), split, split, dev_delta, dev_delta, None, None)

    rows = [row("l1", "arbitrated", 0.01, 0.7), row("l2", "arbitrated", 0.04, 0.5),
            row("l4", "arbitrated", 0.09, 0.3), row("static", "static", 0.0, 0.4)]
    assert page.choose_operating_point(rows).spec.name == "l2"
    assert page.choose_operating_point(rows[2:]) is None


def test_bad_system_spec_is_a_config_error():
    from asrtools.errors import ConfigError

    with pytest.raises(ConfigError, match="KIND:NAME=EXP_DIR"):
        page.parse_system("fast:x=exp/x")
