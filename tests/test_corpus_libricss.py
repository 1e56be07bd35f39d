"""LibriCSS: `asrtools data prepare libricss` (lhotse's prepare_libricss) on a fake release in the real
layout (tests/fake_corpora_libricss.py), and egs/libricss/multitalker through decoding, scoring and
the results page with a tiny two-channel model.

The model is trained for a few steps on the fake sessions themselves (it only has to exist and
be a real `task: sts` checkpoint; its WER means nothing), which also shows that the multi-talker
training reads the prepared LibriCSS conversations unchanged.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lhotse import CutSet, load_manifest

from fake_corpora_libricss import write_fake_libricss
from tests.conftest import REPO, needs_tts, run_asrtools

pytestmark = needs_tts

TINY_STS = """\
task: sts
model:
  encoder: lstm
  encoder_params: {hidden_dim: 32, num_layers: 1, proj_dim: 0, subsampling_dim: 32, subsampling_channels: 4,
                   subsampling_factor: 4, dropout: 0.0}
  feature_dim: 80
  decoder_dim: 32
  context_size: 2
  joiner_dim: 32
  num_channels: 2
  branch_layers: 1
  branch_hidden: 32
  branch_dropout: 0.0
optim: {lr: 1.0e-3, scheduler: eden, warmup_steps: 2, lr_steps: 100, lr_epochs: 2}
data: {max_duration: 60, num_buckets: 2, num_workers: 0, max_cut_duration: 60.0, spec_augment: {enabled: false}}
loss: {turn_scheme: sot_eot, fastemit_lambda: 0.01, activity_weight: 0.1, eot_latency_weight: 1.0,
       warm_steps: 2, prune_range: 5}
valid: {wer_utts: 2, max_duration: 60}
num_epochs: 1
max_steps: 3
save_every_n_steps: 0
average: last_n
average_last_n: 1
tensorboard: false
num_threads: 1
seed: 0
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("libricss")
    write_fake_libricss(root)
    return root


def test_prepare_gives_one_conversation_per_session(corpus: Path, tmp_path: Path):
    out = tmp_path / "manifests"
    run_asrtools(["data", "prepare", "libricss", "--corpus-dir", str(corpus), "--out-dir", str(out),
                  "--option", "sessions=eval"])
    recordings = load_manifest(out / "recordings_test.jsonl.gz")
    supervisions = load_manifest(out / "supervisions_test.jsonl.gz")
    assert sorted(r.id for r in recordings) == sorted(f"{c}_session1" for c in ("0L", "0S", "OV10", "OV20", "OV30", "OV40"))
    assert all(r.num_channels == 1 for r in recordings)  # sdm: channel 0 of the 7-channel recording
    by_session = {}
    for sup in supervisions:
        by_session.setdefault(sup.recording_id, []).append(sup)
        assert sup.text == sup.text.strip() and sup.text.isupper()
    assert {len(v) for v in by_session.values()} == {4}
    ov20 = by_session["OV20_session1"][0]
    assert ov20.custom["condition"] == "OV20" and ov20.custom["target_overlap"] == pytest.approx(0.2)
    assert by_session["0L_session1"][0].custom["target_overlap"] == 0.0
    # the meeting_info.txt times, as lhotse parsed them
    info = next((corpus / "for_release" / "OV20").glob("*session1*")) / "transcription" / "meeting_info.txt"
    first = info.read_text().splitlines()[1].split("\t")
    assert min(s.start for s in by_session["OV20_session1"]) == pytest.approx(float(first[0]))
    speakers = (out / "speakers.csv").read_text().splitlines()
    assert speakers[0].startswith("id,split") and len(speakers) == 1 + 4
    # the clean played-back mixture, two conditions, LibriCSS's dev sessions (session 0)
    dev = tmp_path / "manifests_dev"
    run_asrtools(["data", "prepare", "libricss", "--corpus-dir", str(corpus / "for_release"), "--out-dir", str(dev),
                  "--parts", "OV10,OV20", "--option", "type=ihm-mix", "--option", "sessions=dev"])
    recordings = load_manifest(dev / "recordings_dev.jsonl.gz")
    assert sorted(r.id for r in recordings) == ["OV10_session0", "OV20_session0"]
    assert all(r.sources[0].source.endswith("clean/mix.wav") for r in recordings)


def test_recipe_decodes_and_scores_the_prepared_sessions(corpus: Path, tmp_path: Path):
    recipe = REPO / "egs" / "libricss" / "multitalker" / "run.sh"
    data, exp = tmp_path / "data", tmp_path / "exp"
    common = ["--corpus-dir", str(corpus), "--data", str(data), "--exp", str(exp), "--sessions", "eval"]
    proc = subprocess.run([str(recipe), *common, "--stop-stage", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    cuts = CutSet.from_file(data / "fbank" / "cuts_test.jsonl.gz").to_eager()
    assert len(cuts) == 6 and all(len(c.supervisions) == 4 for c in cuts)

    # a tiny model: BPE on the transcripts, a few training steps on the same conversations (but the
    # three-talker one: training refuses a conversation its two channels cannot hold)
    train_cuts = tmp_path / "cuts_train.jsonl.gz"
    cuts.filter(lambda c: c.id != "OV40_session1").to_file(train_cuts)
    run_asrtools(["bpe", "train", "--supervisions", str(data / "manifests" / "supervisions_test.jsonl.gz"),
                  "--set", "vocab_size=40", "--out-dir", str(tmp_path / "lang_bpe")])
    config = tmp_path / "train_tiny.yaml"
    config.write_text(TINY_STS)
    model = tmp_path / "model_sts"
    run_asrtools(["train", "--config", str(config), "--cuts-train", str(train_cuts), "--cuts-dev", str(train_cuts),
                  "--bpe-model",
                  str(tmp_path / "lang_bpe" / "bpe.model"), "--exp-dir", str(model)])

    results = tmp_path / "RESULTS.md"
    proc = subprocess.run([str(recipe), *common, "--stage", "2", "--systems", f"sts={model}",
                           "--bpe-model", str(tmp_path / "lang_bpe" / "bpe.model"), "--n-boot", "100",
                           "--results-md", str(results)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    decode = model / "decode_libricss_sdm_eval_streaming"
    records = [json.loads(line) for line in (decode / "turns.jsonl").read_text().splitlines()]
    assert sorted(r["cut_id"] for r in records) == sorted(c.id for c in cuts)
    targets = {r["cut_id"]: r["target_overlap"] for r in records}
    assert targets["OV30_session1"] == pytest.approx(0.3) and targets["0S_session1"] == 0.0
    # the fake OV40 session has three talkers at once, as real LibriCSS sometimes does
    three = next(r for r in records if r["cut_id"] == "OV40_session1")
    assert len(three["ref"]) == 4
    metrics = json.loads((decode / "score" / "metrics.json").read_text())
    assert metrics["all"]["conversations"] == 6
    assert set(metrics) >= {"all", "0.00", "0.10", "0.20", "0.30", "0.40"}
    page = results.read_text()
    assert "| **sts** | all | 6 |" in page


def test_missing_transcription_is_one_line_and_writes_nothing(corpus: Path, tmp_path: Path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    session = next((broken / "for_release" / "OV10").glob("*session1*"))
    (session / "transcription" / "meeting_info.txt").unlink()
    out = tmp_path / "manifests"
    proc = run_asrtools(["data", "prepare", "libricss", "--corpus-dir", str(broken), "--out-dir", str(out)],
                        check=False)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert f"OV10/{session.name}/transcription/meeting_info.txt not found" in message
    assert not out.exists() or [p.name for p in out.rglob("*") if not p.name.startswith(".lock")] == []
