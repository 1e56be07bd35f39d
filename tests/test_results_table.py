"""`asrtools score results` on tiny fake experiment dirs; `asrtools model rtf` and scripts/bench_streaming.py.

Each fake experiment holds a real checkpoint of a tiny transducer, decode directories with
recogs.jsonl / ref.trn / hyp.trn / summary.json as `asrtools decode` writes them (laid out
as egs/synth/asr/run.sh does), and WER directories made by the real `asrtools score wer`;
the RTF JSON comes from running `asrtools model rtf` on the two checkpoints (one short
synthetic utterance).
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import yaml
from click.testing import CliRunner, Result

from asrtools.cli import cli
from asrtools.models.build import ModelConfig, build_model, model_config_to_dict
from asrtools.scoring.results import SIZE_TOLERANCE, SystemResult, _verdict
from asrtools.models.checkpoint import save_checkpoint

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
VOCAB = 20
FEATURES = 20
MODELS: Dict[str, ModelConfig] = {
    "lstm": ModelConfig(
        encoder="lstm",
        encoder_params={"hidden_dim": 24, "num_layers": 1, "subsampling_dim": 24, "subsampling_channels": 4,
                        "subsampling_factor": 4, "dropout": 0.0},
        feature_dim=FEATURES, decoder_dim=16, context_size=2, joiner_dim=16,
    ),
    "convrnnt": ModelConfig(
        encoder="convrnnt",
        encoder_params={"local_channels": [4, 4], "local_kernel_sizes": [3, 3], "local_time_strides": [2, 2],
                        "local_freq_strides": [2, 2], "global_channels": 8, "global_hidden_channels": 8,
                        "global_dilations": [1, 2], "se_bottleneck": 4, "frontend_dim": 16, "hidden_dim": 24,
                        "num_layers": 1, "dropout": 0.0},
        feature_dim=FEATURES, decoder_dim=16, context_size=2, joiner_dim=16,
    ),
}
#: Word error rate of each system's hypotheses (ConvRNN-T clearly better).
ERROR_RATES = {"lstm": 0.30, "convrnnt": 0.05}
STREAMING_CHUNK = 16


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_streaming", REPO / "scripts" / "bench_streaming.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


def _utterances(split: str, error_rate: float, seed: int) -> List[Dict[str, str]]:
    """12 speakers x 4 utterances of 8 words; references depend only on the split."""
    vocab = [f"w{i}" for i in range(50)]
    noise = random.Random(seed)
    utts = []
    for s in range(12):
        words = random.Random(f"{split}-{s}")
        for u in range(4):
            ref = [words.choice(vocab) for _ in range(8)]
            hyp = [noise.choice(vocab) if noise.random() < error_rate else w for w in ref]
            utts.append({"cut_id": f"s{s:02d}-{split}{u}", "utt_id": f"spk{s:02d}-{split}{u}",
                         "speaker": f"spk{s:02d}", "ref": " ".join(ref), "hyp": " ".join(hyp)})
    return utts


def _score(args: List[str], ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, ["score", *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _fake_decode(exp: Path, split: str, method: str, error_rate: float, seed: int) -> Path:
    """A decode dir as `asrtools decode` leaves it, scored into `<decode>/wer` by `asrtools score wer`.

    Offline decodes are scored from recogs.jsonl (as egs/synth/asr/run.sh does), the
    streaming one from its trn files.
    """
    decode = exp / (f"decode_{split}_streaming" if method == "streaming_greedy" else f"decode_{split}_{method}")
    decode.mkdir(parents=True)
    utts = _utterances(split, error_rate, seed)
    (decode / "recogs.jsonl").write_text("".join(json.dumps(u) + "\n" for u in utts))
    (decode / "ref.trn").write_text("".join(f"{u['ref']} ({u['utt_id']})\n" for u in utts))
    (decode / "hyp.trn").write_text("".join(f"{u['hyp']} ({u['utt_id']})\n" for u in utts))
    options = {"method": method, "beam": 4, "max_sym_per_frame": 1, "chunk_frames": STREAMING_CHUNK,
               "length_norm": True, "max_duration": 0.0, "shard_size": 200}
    (decode / "summary.json").write_text(json.dumps({"options": options, "num_utterances": len(utts)}))
    if method == "streaming_greedy":
        _score(["wer", "--ref", str(decode / "ref.trn"), "--hyp", str(decode / "hyp.trn"),
                "--out-dir", str(decode / "wer")])
    else:
        _score(["wer", "--ref", str(decode / "recogs.jsonl"), "--out-dir", str(decode / "wer")])
    return decode / "wer"


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> Path:
    """exp/<name>/ with averaged.pt and the three scored decodes, plus exp/rtf/rtf.json."""
    root = tmp_path_factory.mktemp("results")
    for index, (name, config) in enumerate(MODELS.items()):
        exp = root / "exp" / name
        exp.mkdir(parents=True)
        torch.manual_seed(index)
        model = build_model(config, VOCAB)
        save_checkpoint(exp / "averaged.pt", {"model": model.state_dict(), "model_config": model_config_to_dict(config),
                                              "vocab_size": VOCAB, "epoch": 3, "step": 120,
                                              "averaged_from": ["epoch-2.pt", "epoch-3.pt"]})
        for seed, (split, method) in enumerate([("dev", "greedy"), ("test", "greedy"), ("test", "streaming_greedy")]):
            _fake_decode(exp, split, method, ERROR_RATES[name], seed=10 * index + seed)
    result = CliRunner().invoke(cli, ["model", "rtf", "--checkpoint", f"lstm={root / 'exp/lstm/averaged.pt'}",
                                      "--checkpoint", f"convrnnt={root / 'exp/convrnnt/averaged.pt'}",
                                      "--num-utts", "1", "--chunk-frames", str(STREAMING_CHUNK),
                                      "--out-dir", str(root / "exp" / "rtf")])
    assert result.exit_code == 0, result.output
    return root


def _results_args(root: Path, *extra: str) -> List[str]:
    return ["results", "--exp", f"lstm={root / 'exp/lstm'}", "--exp", f"convrnnt={root / 'exp/convrnnt'}",
            "--rtf-json", str(root / "exp" / "rtf" / "rtf.json"), *extra]


def _model_info(tmp: Path, config: ModelConfig, chunk: int) -> dict:
    conf = tmp / f"{config.encoder}.yaml"
    conf.write_text(yaml.safe_dump({"model": model_config_to_dict(config)}))
    result = CliRunner().invoke(cli, ["model", "info", str(conf), "--vocab-size", str(VOCAB), "--json",
                                      "--chunk-frames", str(chunk)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_rtf_json_has_one_entry_per_model(experiments: Path) -> None:
    doc = json.loads((experiments / "exp" / "rtf" / "rtf.json").read_text())
    assert doc["schema"] == "asrtools.streaming_rtf" and doc["threads"] == 1
    assert set(doc["models"]) == {"lstm", "convrnnt"}
    for name, entry in doc["models"].items():
        assert entry["encoder"] == name and entry["weights"] == "checkpoint"
        assert entry["chunk_frames"] == STREAMING_CHUNK and entry["latency_ms"] == pytest.approx(160.0)
        assert entry["num_utterances"] == 1 and entry["rtf_mean"] > 0
        assert entry["num_chunks"] == -(-round(entry["audio_seconds"] * 100) // STREAMING_CHUNK)


def test_results_table_end_to_end(experiments: Path, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    result = _score(_results_args(experiments, "--out", str(out), "--out-dir", str(tmp_path / "stage")))
    page = out.read_text()
    assert page == (tmp_path / "stage" / "results.md").read_text()
    assert "asrtools score results --exp lstm=" in page
    assert re.search(r"Generated on \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    bench = json.loads((experiments / "exp" / "rtf" / "rtf.json").read_text())
    assert bench["command"] in page
    doc = json.loads((tmp_path / "stage" / "results.json").read_text())
    systems = {s["name"]: s for s in doc["systems"]}
    for name, config in MODELS.items():
        system = systems[name]
        info = _model_info(tmp_path, config, STREAMING_CHUNK)
        assert system["encoder"] == name
        assert system["params"] == info["modules"][-1]["params"]
        assert system["gflops_per_second"] * 1e9 == pytest.approx(info["encoder_flops_per_second"])
        assert system["flops_chunk_frames"] == STREAMING_CHUNK
        row = next(line for line in page.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        for key, cell in zip(("dev", "test", "test_streaming"), cells[4:7]):
            wer = json.loads(Path(system["wer"][key]["path"]).read_text())["total"]
            assert cell == f"{100 * wer['err'] / wer['words']:.2f}"
        assert system["wer"]["test_streaming"]["method"] == "streaming_greedy"
        assert cells[7] == "160" and cells[8] == f"{bench['models'][name]['rtf_mean']:.4f}"
    verdict = doc["convrnnt_vs_lstm"][0]
    assert (verdict["convrnnt"], verdict["lstm"], verdict["answer"]) == ("convrnnt", "lstm", "yes")
    assert abs(verdict["params_ratio"] - 1) <= SIZE_TOLERANCE
    assert [c["verdict"] for c in verdict["comparisons"]] == ["better", "better"]
    assert "yes, ConvRNN-T beats the LSTM RNN-T" in page

    marker = (tmp_path / "stage" / ".done.json").stat().st_mtime_ns
    out.unlink()
    again = _score(_results_args(experiments, "--out", str(out), "--out-dir", str(tmp_path / "stage")))
    assert "up to date" in again.output or (tmp_path / "stage" / ".done.json").stat().st_mtime_ns == marker
    assert out.read_text() == page  # republished from the stage directory


def test_missing_input_names_the_file_or_shows_na(experiments: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "wer.json"
    args = _results_args(experiments, "--wer", f"convrnnt:test_streaming={missing}", "--out", str(tmp_path / "R.md"))
    result = _score(args, ok=False)
    assert result.exit_code == 1
    assert f"convrnnt: test_streaming WER: {missing} does not exist" in result.output
    assert not (tmp_path / "R.md").exists()

    _score(args + ["--allow-missing"])
    page = (tmp_path / "R.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| convrnnt |"))
    assert [c.strip() for c in row.strip("|").split("|")][6] == "n/a"
    assert "Missing inputs (shown as n/a)" in page and str(missing) in page

    result = _score(_results_args(experiments, "--checkpoint", "lstm=final.pt", "--out", str(tmp_path / "S.md")),
                    ok=False)
    assert f"lstm: checkpoint {experiments / 'exp/lstm/final.pt'} does not exist" in result.output

    no_rtf = ["results", "--exp", f"lstm={experiments / 'exp/lstm'}", "--out", str(tmp_path / "S.md")]
    result = _score(no_rtf, ok=False)
    assert "lstm: streaming RTF: no --rtf-json given" in result.output


def test_explicit_wer_dir_and_wrong_decode_method(experiments: Path, tmp_path: Path) -> None:
    # An offline decode given as the streaming column is refused, naming the files.
    offline = experiments / "exp" / "lstm" / "decode_test_greedy" / "wer"
    result = _score(_results_args(experiments, "--wer", f"lstm:test_streaming={offline}",
                                  "--out", str(tmp_path / "R.md")), ok=False)
    assert "lstm: test_streaming WER" in result.output and "expected streaming_greedy" in result.output
    # Explicit WER directories elsewhere are read (here: the dev WER also as test WER).
    dev = experiments / "exp" / "lstm" / "decode_dev_greedy" / "wer"
    _score(_results_args(experiments, "--wer", f"lstm:test={dev}", "--out", str(tmp_path / "R.md"),
                         "--out-dir", str(tmp_path / "stage")))
    doc = json.loads((tmp_path / "stage" / "results.json").read_text())
    lstm = next(s for s in doc["systems"] if s["name"] == "lstm")
    assert lstm["wer"]["test"]["path"] == str(dev / "wer.json")
    assert lstm["wer"]["test"]["wer"] == lstm["wer"]["dev"]["wer"]
    # Different utterances cannot be paired: that comparison is reported as not tested.
    first = doc["convrnnt_vs_lstm"][0]["comparisons"][0]
    assert first["key"] == "test" and first["verdict"] == "not tested" and "'s00-dev0' is in" in first["note"]


def test_bad_options_are_one_line_errors(experiments: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "R.md")]
    assert "--exp 'lstm': expected NAME=VALUE" in _score(["results", "--exp", "lstm", *out], ok=False).output
    result = _score(_results_args(experiments, "--wer", f"lstm:eval={tmp_path}", *out), ok=False)
    assert "unknown WER key 'eval'" in result.output
    (tmp_path / "bad.json").write_text(json.dumps({"models": {}}))
    result = _score(_results_args(experiments, "--rtf-json", str(tmp_path / "bad.json"), *out), ok=False)
    assert f"{tmp_path / 'bad.json'}: not a asrtools.streaming_rtf file" in result.output


def test_verdict_needs_similar_size() -> None:
    conv = SystemResult("big", encoder="convrnnt", params=3_000_000)
    lstm = SystemResult("small", encoder="lstm", params=1_000_000)
    verdict = _verdict(conv, lstm, 3.0, False, [])
    assert verdict.answer == "not comparable" and "not similar in size" in verdict.text


def test_rtf_stage_is_up_to_date_and_rejects_bad_input(experiments: Path, tmp_path: Path) -> None:
    lstm = f"lstm={experiments / 'exp/lstm/averaged.pt'}"
    rtf_json = experiments / "exp" / "rtf" / "rtf.json"
    before = rtf_json.stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["model", "rtf", "--checkpoint", lstm,
                                     "--checkpoint", f"convrnnt={experiments / 'exp/convrnnt/averaged.pt'}",
                                     "--num-utts", "1", "--chunk-frames", str(STREAMING_CHUNK),
                                     "--out-dir", str(experiments / "exp" / "rtf")])
    assert again.exit_code == 0 and rtf_json.stat().st_mtime_ns == before, again.output
    cases = [
        ([], "give at least one --checkpoint or --config"),
        (["--checkpoint", lstm, "--chunk-frames", "6"], "--chunk-frames 6 must be a positive multiple of 4"),
        (["--checkpoint", lstm, "--checkpoint", lstm], "model names must be unique"),
        (["--checkpoint", f"x={tmp_path / 'missing.pt'}"], "missing.pt"),
    ]
    for index, (args, message) in enumerate(cases):
        out = tmp_path / f"rtf{index}"
        result = CliRunner().invoke(cli, ["model", "rtf", *args, "--num-utts", "1", "--out-dir", str(out)])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert not (out / "rtf.json").exists()


def test_bench_script_updates_only_its_docs_section(experiments: Path, tmp_path: Path) -> None:
    bench = _load_bench()
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## A\n\nkeep a\n\n## Streaming decoding RTF\n\nold\n\n## B\n\nkeep b\n")
    bench.main(["--checkpoint", f"lstm={experiments / 'exp/lstm/averaged.pt'}", "--num-utts", "1",
                "--out", str(page), "--json-out", str(tmp_path / "rtf.json")])
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\n## A\n\nkeep a\n\n## Streaming decoding RTF\n")
    assert text.endswith("## B\n\nkeep b\n") and "old" not in text and "| lstm | lstm |" in text
    assert json.loads((tmp_path / "rtf.json").read_text())["schema"] == "asrtools.streaming_rtf"
