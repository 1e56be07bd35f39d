"""ONNX export (`asrtools export onnx`): features equal sherpa-onnx's, sherpa-onnx's own
`OnlineRecognizer` gives the PyTorch streaming hypotheses, the toolkit's onnxruntime decoder
equals PyTorch (greedy and modified beam search), the int8 copies run, and bad inputs fail
at the door with one line and nothing written.

Models: tiny seeded random transducers (tests/export_helpers.py); audio: numpy chirps and
noise bursts written as 16 kHz WAV files.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.data.feature_config import FeatureConfig
from asrtools.decoding.beam_search import modified_beam_search
from asrtools.decoding.recognize import load_model
from asrtools.decoding.streaming import streaming_greedy_search
from asrtools.export.features import compute_fbank
from asrtools.export.runtime import OnnxTransducer, decode_features
from asrtools.export.sherpa import sherpa_decode, sherpa_recognizer, tail_padding

from export_helpers import synthetic_audio, tiny_checkpoint, tiny_cuts, tiny_setup

torch.set_num_threads(1)
SHERPA_ENCODERS = {"lstm": 32, "convrnnt": 32, "conformer": 24}  # encoder -> chunk frames


def _export(tmp_path, checkpoint, bpe_model, chunk, *extra):
    out = tmp_path / "onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", "--checkpoint", str(checkpoint), "--bpe-model", str(bpe_model),
                                      "--out-dir", str(out), "--chunk-frames", str(chunk), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_toolkit_fbank_equals_kaldi_native_fbank():
    """lhotse's Fbank (the training features) and kaldi-native-fbank (sherpa-onnx's) agree."""
    config = FeatureConfig()
    signal = synthetic_audio(2.345, seed=3)
    signal[5000:9000] = 0.0  # digital silence: both floor the log at float epsilon
    ours = config.extractor().extract(signal, config.sampling_rate)
    theirs = compute_fbank(signal, config)
    assert ours.shape == theirs.shape
    # float32 rounding differs only where the energy is tiny (log near the floor)
    assert np.abs(ours - theirs).max() < 1e-2 and np.abs(ours - theirs).mean() < 1e-4
    assert np.abs(compute_fbank(signal, FeatureConfig(num_mel_bins=40)) - theirs[:, :40]).max() > 1.0


@pytest.mark.parametrize("encoder", sorted(SHERPA_ENCODERS))
def test_sherpa_onnx_equals_pytorch_streaming(encoder, tmp_path):
    setup = tiny_setup()
    chunk = SHERPA_ENCODERS[encoder]
    checkpoint = tiny_checkpoint(tmp_path / f"{encoder}.pt", setup["bpe_model"], encoder)
    out = _export(tmp_path, checkpoint, setup["bpe_model"], chunk)
    info = json.loads((out / "export.json").read_text())
    assert info["max_abs_diff"] < 1e-3 and info["encoder_metadata"]["model_type"] == "lstm"
    for name in ("encoder", "decoder", "joiner"):
        assert (out / f"{name}.onnx").is_file() and (out / f"{name}.int8.onnx").is_file()
    model, _ = load_model(checkpoint)
    onnx_model = OnnxTransducer(out)
    recognizer = sherpa_recognizer(out)
    for i in range(3):
        samples, rate = sf.read(setup[f"wav{i}"], dtype="float32")
        result = sherpa_decode(recognizer, samples, rate, chunk)
        # PyTorch on the frames sherpa-onnx decoded (the audio and its tail padding).
        feats = compute_fbank(np.concatenate([samples, tail_padding(chunk, rate)]), onnx_model.fbank)
        frames = (len(feats) - 1) // chunk * chunk
        ids = streaming_greedy_search(model, torch.from_numpy(feats[:frames])[None], torch.tensor([frames]), chunk)[0]
        assert len(ids) > 10  # many emissions: the comparison has many decisions
        assert result.text == onnx_model.text(ids)
        assert result.tokens == [onnx_model.pieces[t].replace("\u2581", " ") for t in ids]
    int8 = sherpa_decode(sherpa_recognizer(out, precision="int8"), samples, rate, chunk)
    assert len(int8.tokens) > 0


def test_onnxruntime_decoder_equals_pytorch(tmp_path):
    setup = tiny_setup()
    out = _export(tmp_path, setup["checkpoint"], setup["bpe_model"], 32)
    model, _ = load_model(setup["checkpoint"])
    onnx_model = OnnxTransducer(out)
    for i in range(3):
        samples, _ = sf.read(setup[f"wav{i}"], dtype="float32")
        feats = FeatureConfig().extractor().extract(samples, 16000)  # the training features (lhotse)
        x, lens = torch.from_numpy(feats)[None], torch.tensor([len(feats)])
        greedy = streaming_greedy_search(model, x, lens, 32)[0]
        assert decode_features(onnx_model, feats) == greedy and len(greedy) > 10
        with torch.no_grad():
            beam = modified_beam_search(model, *model.encoder(x, lens), beam=4)[0]
        assert decode_features(onnx_model, feats, "modified_beam", beam=4) == beam
    int8 = OnnxTransducer(out, "int8")
    assert len(decode_features(int8, feats)) > 0


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("asrtools: error:")]


def test_export_bad_inputs(tmp_path):
    setup = tiny_setup()
    runner = CliRunner()

    def run(checkpoint, out):
        return runner.invoke(cli, ["export", "onnx", "--checkpoint", str(checkpoint), "--bpe-model",
                                   str(setup["bpe_model"]), "--out-dir", str(out)])

    offline = tiny_checkpoint(tmp_path / "offline.pt", setup["bpe_model"], "convrnnt_offline")
    result = run(offline, tmp_path / "a")
    assert result.exit_code == 1 and "is not streaming" in result.output and "offline.pt" in result.output
    assert [p.name for p in (tmp_path / "a").iterdir()] == [".lock"]  # no marker, no output
    transformer = tiny_checkpoint(tmp_path / "transformer.pt", setup["bpe_model"], "transformer")
    result = runner.invoke(cli, ["export", "onnx", "--checkpoint", str(transformer), "--bpe-model",
                                 str(setup["bpe_model"]), "--out-dir", str(tmp_path / "t"), "--chunk-frames", "24"])
    assert result.exit_code == 1 and len(_error_lines(result)) == 1
    assert "transformer encoder's streaming step cannot be exported to ONNX by torch.onnx" in result.output
    assert [p.name for p in (tmp_path / "t").iterdir()] == [".lock"]
    speaker = tmp_path / "speaker.pt"
    torch.save({"task": "diarization", "model": {}}, speaker)
    result = run(speaker, tmp_path / "b")
    assert result.exit_code == 1 and _error_lines(result) == [_error_lines(result)[0]]
    assert "speaker.pt: model task 'diarization' is unknown" in _error_lines(result)[0]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run(setup["checkpoint"], mine)
    assert result.exit_code == 1 and len(_error_lines(result)) == 1 and "refusing to overwrite" in result.output
    assert sorted(p.name for p in mine.iterdir()) == [".lock", "notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def _decode(tmp_path, name, *args):
    setup = tiny_setup()
    cuts = setup["root"] / "cuts_test.jsonl.gz"
    if not cuts.is_file():
        tiny_cuts(setup["root"], [setup[f"wav{i}"] for i in range(3)])
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["decode", "--cuts", str(cuts), "--bpe-model", str(setup["bpe_model"]),
                                      "--out-dir", str(out), *args])
    assert result.exit_code == 0, result.output
    return {r["cut_id"]: r["hyp"] for r in map(json.loads, (out / "recogs.jsonl").read_text().splitlines())}


def test_decode_backend_onnx_equals_torch(tmp_path):
    setup = tiny_setup()
    model_dir = _export(tmp_path, setup["checkpoint"], setup["bpe_model"], 32)
    for method in ("streaming_greedy", "modified_beam"):
        torch_hyps = _decode(tmp_path, f"torch_{method}", "--checkpoint", str(setup["checkpoint"]), "--method", method,
                             "--chunk-frames", "32")
        onnx_hyps = _decode(tmp_path, f"onnx_{method}", "--backend", "onnx", "--model-dir", str(model_dir),
                            "--method", method)
        assert onnx_hyps == torch_hyps and all(len(h.split()) > 2 for h in torch_hyps.values())
    sherpa = _decode(tmp_path, "sherpa", "--backend", "sherpa-onnx", "--model-dir", str(model_dir), "--precision",
                     "int8", "--method", "streaming_greedy")
    assert sorted(sherpa) == sorted(torch_hyps) and all(sherpa.values())
    verify = tmp_path / "verify"
    result = CliRunner().invoke(cli, ["export", "verify", "--reference", str(tmp_path / "torch_streaming_greedy"),
                                      "--candidate", f"onnx={tmp_path / 'onnx_streaming_greedy'}",
                                      "--candidate", f"sherpa_int8={tmp_path / 'sherpa'}", "--out-dir", str(verify)])
    assert result.exit_code == 0, result.output
    report = json.loads((verify / "verify.json").read_text())["candidates"]
    assert report["onnx"]["identical_percent"] == 100.0 and report["onnx"]["wer_diff"] == 0.0
    assert report["onnx"]["wer_diff_ci95"] == [0.0, 0.0] and report["sherpa_int8"]["utterances"] == 3
