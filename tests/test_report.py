"""`asrtools report results` (stage 7's page) on tiny fake experiments; `model info` and `model rtf` stages.

Each fake experiment holds a real checkpoint of a tiny transducer, decode directories with
recogs.jsonl / ref.trn / hyp.trn / summary.json as `asrtools decode` writes them (laid out
as egs/synth/asr/run.sh does), WER directories made by the real `asrtools score wer`, and
info/info.json made by the real `asrtools model info`; rtf.json comes from `asrtools model
rtf` on the checkpoints (one short synthetic utterance). The page is built with the recipe's
own conf/report.yaml.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import yaml
from click.testing import CliRunner, Result

from asrtools.cli import cli
from asrtools.models.build import ModelConfig, build_model, model_config_to_dict
from asrtools.models.checkpoint import save_checkpoint
from asrtools.utils.paths import relative_paths

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
REPORT_CONFIG = REPO / "egs" / "synth" / "asr" / "conf" / "report.yaml"
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
SPLITS = [("dev", "greedy"), ("test", "greedy"), ("test", "modified_beam"), ("test", "streaming_greedy")]


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


def _cli(args: List[str], ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, args)
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
    provenance = {"asrtools": "0.1.0", "git_commit": "f" * 40, "git_dirty": False, "python": "3.11.7",
                  "torch": "2.9.1", "cpu": "Fake CPU", "cpu_count": 8, "gpu": "Fake GPU 80GB", "threads": 4}
    (decode / "summary.json").write_text(json.dumps({"options": options, "num_utterances": len(utts),
                                                     "provenance": provenance}))
    if method == "streaming_greedy":
        _cli(["score", "wer", "--ref", str(decode / "ref.trn"), "--hyp", str(decode / "hyp.trn"),
              "--out-dir", str(decode / "wer")])
    else:
        _cli(["score", "wer", "--ref", str(decode / "recogs.jsonl"), "--out-dir", str(decode / "wer")])
    return decode / "wer"


TRAINED_ON = {"asrtools": "0.1.0", "git_commit": "e" * 40, "git_dirty": False, "python": "3.11.7", "torch": "2.9.1",
              "cpu": "Train CPU", "cpu_count": 64, "gpu": "Train GPU 141GB", "threads": 8}


def _fake_experiment(exp: Path, name: str, weights_seed: int, noise_seed: int) -> None:
    exp.mkdir(parents=True)
    # The train stage's marker (only what `model info` reads from it): the run that trained the model.
    (exp / ".done.json").write_text(json.dumps({"stage": "train", "provenance": TRAINED_ON}))
    torch.manual_seed(weights_seed)
    model = build_model(MODELS[name], VOCAB)
    save_checkpoint(exp / "averaged.pt", {"model": model.state_dict(), "model_config": model_config_to_dict(MODELS[name]),
                                          "vocab_size": VOCAB, "epoch": 3, "step": 120,
                                          "averaged_from": ["epoch-2.pt", "epoch-3.pt"]})
    for offset, (split, method) in enumerate(SPLITS):
        _fake_decode(exp, split, method, ERROR_RATES[name], seed=noise_seed + offset)
    _cli(["model", "info", "--checkpoint", str(exp / "averaged.pt"), "--chunk-frames", str(STREAMING_CHUNK),
          "--seconds", "2", "--out-dir", str(exp / "info")])


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> Path:
    """exp/{lstm,convrnnt,convrnnt_s2}/ (checkpoint, scored decodes, info/) and exp/rtf/rtf.json."""
    root = tmp_path_factory.mktemp("results")
    _fake_experiment(root / "exp" / "lstm", "lstm", 0, 0)
    _fake_experiment(root / "exp" / "convrnnt", "convrnnt", 1, 10)
    _fake_experiment(root / "exp" / "convrnnt_s2", "convrnnt", 2, 20)  # a second seed of the same recipe
    _cli(["model", "rtf", "--checkpoint", f"lstm={root / 'exp/lstm/averaged.pt'}",
          "--checkpoint", f"convrnnt={root / 'exp/convrnnt/averaged.pt'}",
          "--num-utts", "1", "--chunk-frames", str(STREAMING_CHUNK), "--out-dir", str(root / "exp" / "rtf")])
    return root


def _report_args(root: Path, *extra: str, convrnnt: str = "exp/convrnnt") -> List[str]:
    runs = ",".join(str(root / r) for r in convrnnt.split(","))
    return ["report", "results", "--config", str(REPORT_CONFIG), "--system", f"lstm={root / 'exp/lstm'}",
            "--system", f"convrnnt={runs}", "--input", f"rtf={root / 'exp' / 'rtf' / 'rtf.json'}", *extra]


def _row(page: str, name: str) -> List[str]:
    line = next(line for line in page.splitlines() if line.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _section(document: dict, kind: str) -> dict:
    return next(s for s in document["sections"] if s["kind"] == kind)


def test_rtf_json_has_one_entry_per_model_and_its_provenance(experiments: Path) -> None:
    from asrtools.decoding.rtf import RTF_SCHEMA, RTF_SCHEMA_VERSION
    from asrtools.report.artifacts import ARTIFACT_KINDS

    doc = json.loads((experiments / "exp" / "rtf" / "rtf.json").read_text())
    assert (doc["schema"], doc["version"]) == (RTF_SCHEMA, RTF_SCHEMA_VERSION) and doc["threads"] == 1
    assert ARTIFACT_KINDS["streaming_rtf"].schema == RTF_SCHEMA and RTF_SCHEMA_VERSION in ARTIFACT_KINDS[
        "streaming_rtf"].versions
    assert doc["provenance"]["threads"] == 1 and doc["provenance"]["torch"] == torch.__version__
    assert set(doc["models"]) == {"lstm", "convrnnt"}
    for name, entry in doc["models"].items():
        assert entry["encoder"] == name and entry["weights"] == "checkpoint"
        assert entry["chunk_frames"] == STREAMING_CHUNK and entry["latency_ms"] == pytest.approx(160.0)
        assert entry["num_utterances"] == 1 and entry["rtf_mean"] > 0
        assert entry["num_chunks"] == -(-round(entry["audio_seconds"] * 100) // STREAMING_CHUNK)
    assert "Provenance: asrtools" in (experiments / "exp" / "rtf" / "rtf.md").read_text()


def test_model_info_stage_writes_info_json(experiments: Path, tmp_path: Path) -> None:
    from asrtools.models.flops import INFO_SCHEMA, INFO_SCHEMA_VERSION
    from asrtools.report.artifacts import ARTIFACT_KINDS

    assert ARTIFACT_KINDS["model_info"].schema == INFO_SCHEMA and INFO_SCHEMA_VERSION in ARTIFACT_KINDS[
        "model_info"].versions
    info_dir = experiments / "exp" / "convrnnt" / "info"
    doc = json.loads((info_dir / "info.json").read_text())
    model = build_model(MODELS["convrnnt"], VOCAB)
    assert (doc["schema"], doc["version"], doc["encoder"]) == (INFO_SCHEMA, INFO_SCHEMA_VERSION, "convrnnt")
    assert doc["params"] == sum(p.numel() for p in model.parameters()) == doc["modules"][-1]["params"]
    assert doc["flops"] == {"mode": "streaming", "chunk_frames": STREAMING_CHUNK, "seconds": 2.0, "frame_shift": 0.01,
                            "counted": "2 x multiply-adds of the encoder"}
    assert doc["source"]["training"] == {"epoch": 3, "step": 120, "averaged_from": ["epoch-2.pt", "epoch-3.pt"],
                                         "provenance": TRAINED_ON}
    assert doc["provenance"]["git_commit"] is None or len(doc["provenance"]["git_commit"]) == 40
    assert "total" in (info_dir / "info.txt").read_text()
    # The printed (no --out-dir) JSON measures the same; a config's model too, without a stage.
    printed = json.loads(_cli(["model", "info", "--checkpoint", str(experiments / "exp/convrnnt/averaged.pt"),
                               "--chunk-frames", str(STREAMING_CHUNK), "--seconds", "2", "--json"]).output)
    assert printed["gflops_per_second"] == pytest.approx(doc["gflops_per_second"])
    conf = tmp_path / "convrnnt.yaml"
    conf.write_text(yaml.safe_dump({"model": model_config_to_dict(MODELS["convrnnt"])}))
    from_config = json.loads(_cli(["model", "info", str(conf), "--vocab-size", str(VOCAB), "--chunk-frames",
                                   str(STREAMING_CHUNK), "--seconds", "2", "--json"]).output)
    assert from_config["params"] == doc["params"]
    assert from_config["gflops_per_second"] == pytest.approx(doc["gflops_per_second"])
    assert from_config["source"]["weights"] == "random"
    # A rerun is up to date; both a config and a checkpoint is an error.
    before = (info_dir / "info.json").stat().st_mtime_ns
    _cli(["model", "info", "--checkpoint", str(experiments / "exp/convrnnt/averaged.pt"), "--chunk-frames",
          str(STREAMING_CHUNK), "--seconds", "2", "--out-dir", str(info_dir)])
    assert (info_dir / "info.json").stat().st_mtime_ns == before
    both = _cli(["model", "info", str(conf), "--checkpoint", str(experiments / "exp/lstm/averaged.pt")], ok=False)
    assert both.exit_code == 1 and "either a training config CONF.yaml or --checkpoint" in both.output


def test_report_page_end_to_end(experiments: Path, tmp_path: Path, monkeypatch) -> None:
    import asrtools.decoding.recognize

    def no_model_loading(*args, **kwargs):
        raise AssertionError("the result page loaded a model")

    monkeypatch.setattr(torch, "load", no_model_loading)
    monkeypatch.setattr(asrtools.decoding.recognize, "load_model", no_model_loading)
    monkeypatch.chdir(experiments)  # the recipe directory: paths on the page are relative to it
    out, stage = tmp_path / "RESULTS.md", tmp_path / "stage"
    _cli(_report_args(experiments, "--out", str(out), "--out-dir", str(stage)))
    page = out.read_text()
    assert page == (stage / "results.md").read_text()
    assert page.startswith("# egs/synth/asr: streaming transducers on the synthetic corpus\n")
    assert re.search(r"Generated on \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert "asrtools report results --config" in page
    bench = json.loads((experiments / "exp" / "rtf" / "rtf.json").read_text())
    assert relative_paths(bench["command"]) in page and "--out-dir exp/rtf" in page
    doc = json.loads((stage / "results.json").read_text())
    assert doc["schema"] == "asrtools.report"
    metrics = {row["system"]: row for row in _section(doc, "metrics")["rows"]}
    header = [c.strip() for c in next(l for l in page.splitlines() if l.startswith("| system |")).strip("|").split("|")]
    assert header == ["system", "encoder", "params", "GFLOPs/s", "dev WER %", "test WER %", "test WER % (beam 4)",
                      "streaming test WER %", "latency ms", "RTF (1 thread)"]
    for name in MODELS:
        info = json.loads((experiments / "exp" / name / "info" / "info.json").read_text())
        cells = _row(page, name)
        assert cells[1:4] == [name, f"{info['params'] / 1e6:.2f} M", f"{info['gflops_per_second']:.3f}"]
        decodes = ("decode_dev_greedy", "decode_test_greedy", "decode_test_modified_beam", "decode_test_streaming")
        for cell, decode in zip(cells[4:8], decodes):
            total = json.loads((experiments / "exp" / name / decode / "wer" / "wer.json").read_text())["total"]
            assert cell == f"{100 * total['err'] / total['words']:.2f}"
        assert cells[8] == "160" and cells[9] == f"{bench['models'][name]['rtf_mean']:.4f}"
        assert metrics[name]["cells"]["info.params"]["values"] == [info["params"]]
    pairwise = _section(doc, "pairwise")
    assert (pairwise["a"], pairwise["b"], pairwise["answer"]) == ("lstm", "convrnnt", "yes")
    assert 0.75 <= pairwise["size"]["ratio"] <= 1.25
    for comparison in pairwise["comparisons"]:
        assert comparison["verdict"] == "better" and comparison["p_holm"] < 0.05
        low, high = comparison["ci_diff"]
        assert low <= comparison["diff"] <= high < 0
    assert "**Answer: yes**" in page and "B − A (95% CI)" in page and "p (Holm, 3 tests)" in page
    # Sources and provenance: the decodes' recorded provenance (a fake GPU machine), the scoring's and model info's.
    assert "## Sources" in page and "| exp/lstm/info/info.json |" in page
    for text in (page, json.dumps(doc)):  # no absolute machine paths (the fixture's are absolute, in a tmp dir)
        absolute = re.search(r"(?<![\w.])/(tmp|work|root|home)/", text)
        assert absolute is None, text[max(0, absolute.start() - 200):absolute.start() + 80]
    assert "Fake GPU 80GB" in page and "| Fake CPU (8 cores) |" in page
    decode_tags = {row["provenance"]["asrtools decode"] for row in doc["sources"] if row["artifact"] == "test"}
    assert len(decode_tags) == 1 and doc["provenances"][decode_tags.pop()]["gpu"] == "Fake GPU 80GB"
    info_tag = next(row["provenance"]["asrtools model info"] for row in doc["sources"] if row["artifact"] == "info")
    assert doc["provenances"][info_tag]["threads"] == torch.get_num_threads()
    train_tag = next(row["provenance"]["asrtools train"] for row in doc["sources"] if row["artifact"] == "info")
    assert doc["provenances"][train_tag] == TRAINED_ON and "| Train GPU 141GB | 8 |" in page

    marker = (stage / ".done.json").stat().st_mtime_ns
    out.unlink()
    again = _cli(_report_args(experiments, "--out", str(out), "--out-dir", str(stage)))
    assert (stage / ".done.json").stat().st_mtime_ns == marker, again.output
    assert out.read_text() == page  # republished from the stage directory


def test_pairwise_of_single_runs_equals_score_compare(experiments: Path, tmp_path: Path) -> None:
    _cli(_report_args(experiments, "--out", str(tmp_path / "R.md"), "--out-dir", str(tmp_path / "stage")))
    pairwise = _section(json.loads((tmp_path / "stage" / "results.json").read_text()), "pairwise")
    decodes = ("decode_test_greedy", "decode_test_modified_beam", "decode_test_streaming")
    assert len(pairwise["comparisons"]) == len(decodes)
    for comparison, decode in zip(pairwise["comparisons"], decodes):
        _cli(["score", "compare", "--a", str(experiments / "exp/lstm" / decode / "wer"),
              "--b", str(experiments / "exp/convrnnt" / decode / "wer"), "--out-dir", str(tmp_path / decode)])
        overall = json.loads((tmp_path / decode / "compare.json").read_text())["overall"]
        for key in ("wer_a", "wer_b", "ci_a", "ci_b", "ci_diff", "p_bootstrap"):
            assert comparison[key] == pytest.approx(overall[key]), key


def test_system_of_several_runs(experiments: Path, tmp_path: Path) -> None:
    args = _report_args(experiments, "--out", str(tmp_path / "R.md"), "--out-dir", str(tmp_path / "stage"),
                        convrnnt="exp/convrnnt,exp/convrnnt_s2")
    _cli(args)  # rtf.json has one entry per system name (not per run)
    page = (tmp_path / "R.md").read_text()
    doc = json.loads((tmp_path / "stage" / "results.json").read_text())
    runs = [json.loads((experiments / "exp" / r / "decode_test_greedy/wer/wer.json").read_text())["total"]["wer"]
            for r in ("convrnnt", "convrnnt_s2")]
    cell = _section(doc, "metrics")["rows"][1]["cells"]["test.wer"]
    assert cell["values"] == runs and cell["mean"] == pytest.approx(sum(runs) / 2)
    cells = _row(page, "convrnnt")
    assert cells[1] == "2" and cells[6] == f"{100 * cell['mean']:.2f} ± {100 * cell['sd']:.2f}"
    assert "mean ± standard deviation over its runs" in page
    comparison = _section(doc, "pairwise")["comparisons"][0]
    assert (comparison["n_runs_a"], comparison["n_runs_b"]) == (1, 2)
    assert comparison["run_wers_b"] == pytest.approx(runs)
    assert comparison["wer_b"] == pytest.approx(sum(runs) / 2)  # same words in every run
    assert "run-averaged errors per utterance" in page and "not run-to-run (seed) variation" in page


def test_missing_artifacts_name_the_file_or_show_na(experiments: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(experiments / "exp" / "convrnnt", exp / "convrnnt")
    shutil.rmtree(exp / "convrnnt" / "decode_test_streaming")
    args = ["report", "results", "--config", str(REPORT_CONFIG), "--system", f"lstm={experiments / 'exp/lstm'}",
            "--system", f"convrnnt={exp / 'convrnnt'}", "--input", f"rtf={experiments / 'exp/rtf/rtf.json'}",
            "--out", str(tmp_path / "R.md"), "--out-dir", str(tmp_path / "stage")]
    result = _cli(args, ok=False)
    missing = exp / "convrnnt" / "decode_test_streaming" / "wer" / "wer.json"
    assert result.exit_code == 1 and f"system convrnnt: test_streaming: {missing} does not exist" in result.output
    assert not (tmp_path / "R.md").exists() and not (tmp_path / "stage").exists()

    _cli(args + ["--allow-missing"])
    page = (tmp_path / "R.md").read_text()
    assert _row(page, "convrnnt")[7] == "n/a" and "## Missing inputs" in page and str(missing) in page
    pairwise = _section(json.loads((tmp_path / "stage" / "results.json").read_text()), "pairwise")
    assert [c["verdict"] for c in pairwise["comparisons"]] == ["better", "better", "not tested"]
    assert pairwise["answer"] == "not shown"

    no_rtf = _cli(args[:6] + args[10:], ok=False)  # lstm only, no --input
    assert "rtf: no --input rtf=PATH given" in no_rtf.output


def test_streaming_column_must_come_from_a_streaming_decode(experiments: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(experiments / "exp" / "lstm", exp / "lstm")
    shutil.rmtree(exp / "lstm" / "decode_test_streaming")
    shutil.copytree(exp / "lstm" / "decode_test_greedy", exp / "lstm" / "decode_test_streaming")
    args = ["report", "results", "--config", str(REPORT_CONFIG), "--system", f"lstm={exp / 'lstm'}",
            "--input", f"rtf={experiments / 'exp/rtf/rtf.json'}", "--out", str(tmp_path / "R.md"),
            "--out-dir", str(tmp_path / "stage")]
    result = _cli(args, ok=False)
    assert "system lstm: test_streaming:" in result.output
    assert "has decode_method 'greedy', the report config requires 'streaming_greedy'" in result.output


def test_pairwise_needs_similar_size_and_both_systems(experiments: Path, tmp_path: Path) -> None:
    conf = yaml.safe_load(REPORT_CONFIG.read_text())
    conf["sections"][1]["options"]["size_tolerance"] = 0.0001
    (tmp_path / "report.yaml").write_text(yaml.safe_dump(conf))
    args = _report_args(experiments, "--out", str(tmp_path / "R.md"), "--out-dir", str(tmp_path / "stage"))
    args[3] = str(tmp_path / "report.yaml")
    _cli(args)
    pairwise = _section(json.loads((tmp_path / "stage" / "results.json").read_text()), "pairwise")
    assert pairwise["answer"] == "not comparable" and "differ in size" in pairwise["text"]
    # Only one of the two systems on the page: the section says so.
    one = ["report", "results", "--config", str(REPORT_CONFIG), "--system", f"lstm={experiments / 'exp/lstm'}",
           "--input", f"rtf={experiments / 'exp/rtf/rtf.json'}", "--out", str(tmp_path / "S.md"),
           "--out-dir", str(tmp_path / "stage1")]
    _cli(one)
    assert "Not applicable: no system named 'convrnnt' on this page." in (tmp_path / "S.md").read_text()


def test_a_recipe_adds_its_own_artifact_and_section_kind(experiments: Path, tmp_path: Path) -> None:
    """Later recipes register kinds in the report layer; scoring and the stages stay untouched."""
    from asrtools.report import artifacts, sections

    @artifacts.register_kind
    class Toy(artifacts.ArtifactKind):
        name, schema, versions, made_by = "toy_gap", "test.toy_gap", (1,), "a toy stage"
        fields = {"gap": artifacts.Field("gap %", artifacts._path("gap"), artifacts.fmt_percent)}

    @dataclasses.dataclass
    class BestOptions:
        by: str

    @sections.register_section
    class Best(sections.Section):
        kind, Options = "toy_best", BestOptions

        def build(self, data):
            artifact, _, field = self.options.by.partition(".")
            best = min(data.systems, key=lambda s: s.values(artifact, field)[0])
            return sections.SectionOutput([f"Smallest {field}: {best.name}"], {"best": best.name})

    try:
        for name, gap in (("lstm", 0.3), ("convrnnt", 0.1)):
            run = tmp_path / name
            run.mkdir()
            (run / "gap.json").write_text(json.dumps({"schema": "test.toy_gap", "version": 1, "gap": gap}))
        conf = {"title": "Toy", "artifacts": {"fair": {"kind": "toy_gap", "path": "gap.json"}},
                "sections": [{"kind": "metrics", "options": {"columns": [{"value": "fair.gap"}]}},
                             {"kind": "toy_best", "title": "Best", "options": {"by": "fair.gap"}}]}
        (tmp_path / "toy.yaml").write_text(yaml.safe_dump(conf))
        _cli(["report", "results", "--config", str(tmp_path / "toy.yaml"), "--system", f"lstm={tmp_path / 'lstm'}",
              "--system", f"convrnnt={tmp_path / 'convrnnt'}", "--out", str(tmp_path / "T.md"),
              "--out-dir", str(tmp_path / "stage")])
        page = (tmp_path / "T.md").read_text()
        assert "| system | fair gap % |" in page and _row(page, "lstm")[1] == "30.00"
        assert "## Best\n\nSmallest gap: convrnnt" in page
        assert "| a toy stage: not recorded |" in page and "before asrtools recorded provenance" in page
    finally:
        artifacts.ARTIFACT_KINDS.pop("toy_gap", None)
        sections.SECTION_KINDS.pop("toy_best", None)


def test_bad_report_configs_are_one_line_errors(experiments: Path, tmp_path: Path) -> None:
    base = yaml.safe_load(REPORT_CONFIG.read_text())
    cases = [
        ({"sections": [{"kind": "nope"}]}, "sections[0]: unknown section kind 'nope'"),
        ({"sections": [{"kind": "metrics", "options": {"columns": [{"value": "test.nope"}]}}]},
         "'test.nope': artifact kind 'wer' has no field 'nope'"),
        ({"sections": [{"kind": "metrics", "options": {"columns": [{"value": "eval.wer"}]}}]},
         "'eval.wer' names no artifact of the config"),
        ({"sections": [{"kind": "metrics", "options": {"cols": []}}]}, "unknown key 'cols'"),
        ({"sections": [{"kind": "pairwise", "options": {"a": "x", "b": "x", "wers": ["test"]}}]},
         "a and b are the same system 'x'"),
        ({"sections": [{"kind": "pairwise", "options": {"a": "x", "b": "y", "wers": ["info"]}}]},
         "wers: 'info' is not a wer artifact"),
        ({"artifacts": {"test": {"kind": "wer"}}}, "path is required"),
        ({"artifacts": {"test": {"kind": "nope", "path": "x"}}}, "unknown artifact kind 'nope'"),
        ({"artifacts": {"rtf": {"kind": "streaming_rtf", "path": "rtf.json"}}}, "set shared: true"),
    ]
    for index, (change, message) in enumerate(cases):
        conf = {**base, **change}
        if "artifacts" in change:
            conf["artifacts"] = {**base["artifacts"], **change["artifacts"]}
        path = tmp_path / f"bad{index}.yaml"
        path.write_text(yaml.safe_dump(conf))
        args = _report_args(experiments, "--out", str(tmp_path / "R.md"), "--out-dir", str(tmp_path / "stage"))
        args[3] = str(path)
        result = _cli(args, ok=False)
        assert result.exit_code == 1 and message in result.output, (change, result.output)
        assert str(path) in result.output and not (tmp_path / "stage").exists()
    result = _cli(_report_args(experiments, "--input", "speed=x.json", "--out", str(tmp_path / "R.md"),
                               "--out-dir", str(tmp_path / "stage")), ok=False)
    assert "'speed' is not a shared artifact of the config (shared: rtf)" in result.output
    result = _cli(_report_args(experiments, "--system", "lstm=/nowhere", "--out", str(tmp_path / "R.md"),
                               "--out-dir", str(tmp_path / "stage")), ok=False)
    assert "--system names must be unique: lstm" in result.output


def test_rtf_stage_is_up_to_date_and_rejects_bad_input(experiments: Path, tmp_path: Path) -> None:
    lstm = f"lstm={experiments / 'exp/lstm/averaged.pt'}"
    rtf_json = experiments / "exp" / "rtf" / "rtf.json"
    before = rtf_json.stat().st_mtime_ns
    again = _cli(["model", "rtf", "--checkpoint", lstm, "--checkpoint", f"convrnnt={experiments / 'exp/convrnnt/averaged.pt'}",
                  "--num-utts", "1", "--chunk-frames", str(STREAMING_CHUNK), "--out-dir", str(experiments / "exp" / "rtf")])
    assert rtf_json.stat().st_mtime_ns == before, again.output
    cases = [
        ([], "give at least one --checkpoint or --config"),
        (["--checkpoint", lstm, "--chunk-frames", "6"], "--chunk-frames 6 must be a positive multiple of 4"),
        (["--checkpoint", lstm, "--checkpoint", lstm], "model names must be unique"),
        (["--checkpoint", f"x={tmp_path / 'missing.pt'}"], "missing.pt"),
    ]
    for index, (args, message) in enumerate(cases):
        out = tmp_path / f"rtf{index}"
        result = _cli(["model", "rtf", *args, "--num-utts", "1", "--out-dir", str(out)], ok=False)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert not (out / "rtf.json").exists() and not (out / ".inprogress.json").exists()


def test_bench_script_updates_only_its_docs_section(experiments: Path, tmp_path: Path) -> None:
    bench = _load_bench()
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## A\n\nkeep a\n\n## Streaming decoding RTF\n\nold\n\n## B\n\nkeep b\n")
    bench.main(["--checkpoint", f"lstm={experiments / 'exp/lstm/averaged.pt'}", "--num-utts", "1",
                "--out", str(page), "--json-out", str(tmp_path / "rtf.json")])
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\n## A\n\nkeep a\n\n## Streaming decoding RTF\n")
    assert text.endswith("## B\n\nkeep b\n") and "old" not in text and "| lstm | lstm |" in text
    assert "Provenance: asrtools" in text and "1 thread" in text
    assert json.loads((tmp_path / "rtf.json").read_text())["schema"] == "asrtools.streaming_rtf"


def test_paths_on_pages_are_relative(tmp_path: Path, monkeypatch) -> None:
    from asrtools.utils.paths import display_path

    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "exp" / "lstm") == "exp/lstm" and display_path("exp/x") == "exp/x"
    note = f"initialised from {tmp_path}/exp/pretrain/averaged.pt; see https://example.org/a/b; ref / hyp, km/h"
    expected = "initialised from exp/pretrain/averaged.pt; see https://example.org/a/b; ref / hyp, km/h"
    assert relative_paths(note) == expected


def test_training_time_is_the_trainers_sum_over_resumed_runs(tmp_path: Path) -> None:
    """A resumed run's marker holds only its own seconds; pages read train_summary.json's train_seconds."""
    from asrtools.scoring.multitalker_results import train_info
    from asrtools.sv.results import provenance

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / ".done.json").write_text(json.dumps({"seconds": 90.0, "params": {"config": {"num_threads": 2}}}))
    (exp / "train_summary.json").write_text(json.dumps({"steps": 258, "epochs": 3, "train_seconds": 3786.0}))
    assert train_info(exp)["seconds"] == 3786.0
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "embed.json").write_text(json.dumps({"model": "m", "checkpoint": str(exp / "averaged.pt")}))
    (tmp_path / "score").mkdir()
    (tmp_path / "score" / "score.json").write_text(json.dumps({"norm": None, "embeddings": str(tmp_path / "emb")}))
    found = provenance({"scores": str(tmp_path / "score" / "scores.txt")})
    assert found["train_seconds"] == 3786.0 and found["train_steps"] == 258


def test_relative_change_of_a_gap_near_zero_is_given_in_points() -> None:
    from asrtools.sv.results import _change

    eer = {"a": 0.10, "b": 0.092, "diff": -0.008, "relative": -0.08, "ci": [-0.012, -0.004],
           "relative_ci": [-0.12, -0.04], "p_value": 0.002, "baseline_ci": [0.085, 0.115]}
    assert _change(eer) == "-8.0% [-12.0, -4.0], p=0.002"
    gap = {"a": 0.004, "b": 0.001, "diff": -0.003, "relative": -0.741, "ci": [-0.011, 0.006],
           "relative_ci": [-0.975, 19.108], "p_value": 0.599, "baseline_ci": [0.0002, 0.012]}
    assert _change(gap) == "-0.30 pp [-1.10, +0.60] (-74%), p=0.599"  # not [-97.5, +1910.8]
