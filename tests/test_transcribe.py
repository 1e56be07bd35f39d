"""`asrtools transcribe`: a 44.1 kHz stereo WAV (downmixed, resampled, streamed with partial
results, JSON word timings) and a corrupt file (one line naming it, exit 1)."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.export.features import compute_fbank
from asrtools.export.runtime import OnnxTransducer, decode_features

from export_helpers import synthetic_audio, tiny_setup


def _model_dir(tmp_path):
    setup = tiny_setup()
    out = tmp_path / "onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", "--checkpoint", str(setup["checkpoint"]), "--bpe-model",
                                      str(setup["bpe_model"]), "--out-dir", str(out), "--no-int8"])
    assert result.exit_code == 0, result.output
    return out


def test_transcribe_stereo_44k(tmp_path):
    model_dir = _model_dir(tmp_path)
    left, right = synthetic_audio(6.0, 44100, seed=5), synthetic_audio(6.0, 44100, seed=6)
    wav = tmp_path / "meeting.wav"
    sf.write(wav, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    runner = CliRunner()
    plain = runner.invoke(cli, ["transcribe", str(wav), "--model", str(model_dir), "--partial"])
    assert plain.exit_code == 0, plain.output
    assert f"{wav}: downmixed 2 channels to mono, resampled 44100 Hz -> 16000 Hz" in plain.output  # the log
    lines = plain.output.splitlines()
    partials = [line for line in lines if line.startswith(f"{wav} (partial): ")]
    assert len(partials) >= 3 and lines[-1].startswith(f"{wav}: ")
    final = lines[-1][len(f"{wav}: "):]
    # Streaming block by block gives what decoding the whole resampled signal gives.
    stored, _ = sf.read(wav, dtype="float32")
    mono = AF.resample(torch.from_numpy(stored.mean(axis=1)), 44100, 16000).numpy()
    model = OnnxTransducer(model_dir)
    assert final == model.text(decode_features(model, compute_fbank(mono, model.fbank))) and len(final.split()) > 3

    result = runner.invoke(cli, ["transcribe", str(wav), "--model", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["text"] == final and (record["sample_rate"], record["channels"]) == (44100, 2)
    words = record["words"]
    assert " ".join(w["word"] for w in words) == final
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["start"] < w["end"] <= record["duration"] + 0.5 for w in words)


def test_transcribe_corrupt_file(tmp_path):
    model_dir = _model_dir(tmp_path)
    good = tmp_path / "good.wav"
    sf.write(good, synthetic_audio(1.0), 16000)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage that is not a wave file")
    result = CliRunner().invoke(cli, ["transcribe", str(good), str(bad), "--model", str(model_dir)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("asrtools: error:")]
    assert len(errors) == 1 and f"audio file {bad} cannot be read" in errors[0]
    assert "good.wav:" not in result.output  # every file is checked before any is decoded
