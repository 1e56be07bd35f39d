"""Conversation simulation (`asrtools data mix`) and the egs/synth/multitalker recipe end to end,
on a small corpus of generated audio (no TTS needed)."""
from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, LilcomChunkyWriter, Recording, SupervisionSegment
from lhotse.cut import MonoCut

from asrtools.data.conversations import MixConfig, plan_split
from asrtools.data.feature_config import FeatureConfig
from asrtools.data.turns import assign_channels, overlap_ratio, turns_of_cut
from asrtools.text.tokenizer import train_bpe
from tests.conftest import REPO, run_asrtools

WORDS = "THE CAT SAT ON A MAT WITH ONE DOG AND TWO BIRDS NEAR OLD TREES".split()
SPLIT_SPEAKERS = {"train": 8, "dev": 4, "test": 4}


def _write_source(root: Path, utts_per_speaker: int = 6) -> Path:
    """cuts_<split>.jsonl.gz of single-utterance cuts with generated audio, disjoint speakers per split."""
    rng = np.random.default_rng(0)
    fbank = root / "fbank"
    fbank.mkdir(parents=True)
    texts = []
    for split, count in SPLIT_SPEAKERS.items():
        cuts = []
        for s in range(count):
            speaker = f"{split}{s:02d}"
            pitch = 120 + 20 * s
            for u in range(utts_per_speaker):
                duration = float(rng.uniform(1.0, 2.0))
                t = np.arange(int(16000 * duration)) / 16000
                audio = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.1 * u) * t) + 0.02 * rng.standard_normal(t.size)
                path = root / "wav" / f"{speaker}-{u}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, audio.astype(np.float32), 16000)
                recording = Recording.from_file(path, recording_id=f"{speaker}-{u}")
                text = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5))))
                texts.append(text)
                sup = SupervisionSegment(id=recording.id, recording_id=recording.id, start=0.0,
                                         duration=recording.duration, text=text, speaker=speaker)
                cuts.append(MonoCut(id=recording.id, start=0.0, duration=recording.duration, channel=0,
                                    recording=recording, supervisions=[sup]))
        with LilcomChunkyWriter(fbank / f"feats_{split}.lca") as writer:  # for the single-talker pretraining
            cuts = [c.compute_and_store_features(FeatureConfig().extractor(), writer) for c in cuts]
        CutSet.from_cuts(cuts).to_file(fbank / f"cuts_{split}.jsonl.gz")
    (root / "lang_bpe").mkdir()
    train_bpe(texts, root / "lang_bpe" / "bpe.model", vocab_size=40)
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _write_source(tmp_path_factory.mktemp("mt_src"))


MIX_SET = ["--set", "conversations={train: 12, dev: 4, test: 5}", "--set", "shard_size=4"]


def test_plans_respect_splits_overlap_targets_and_two_talkers(source: Path):
    cfg = MixConfig(conversations={"train": 0}, min_turns=3, max_turns=5)
    cuts = CutSet.from_file(source / "fbank" / "cuts_train.jsonl.gz").to_eager()
    plans = plan_split(cuts, "train", cfg)
    assert plans == plan_split(cuts, "train", cfg)  # deterministic
    used = [t.cut_id for p in plans for t in p.turns]
    assert len(used) == len(set(used))  # every utterance at most once
    for plan in plans:
        turns = plan.as_turns()
        assert all(t.speaker.startswith("train") for t in turns)
        assert all(a.speaker != b.speaker for a, b in zip(turns, turns[1:]))
        assign_channels(turns)  # never three talkers at once
        assert overlap_ratio(turns) <= plan.target_overlap + 1e-3  # offsets are rounded to 0.1 ms
        if plan.target_overlap == 0.0:
            assert overlap_ratio(turns) == 0.0


def test_mix_stage_writes_conversations_and_is_deterministic(source: Path, tmp_path: Path):
    for name in ("a", "b"):
        run_asrtools(["data", "mix", "--source-dir", str(source / "fbank"), *MIX_SET, "--out-dir",
                      str(tmp_path / name), "-j", "1"])
    for split in ("train", "dev", "test"):
        a = tmp_path / "a" / f"cuts_{split}.jsonl.gz"
        plan = [json.loads(line) for line in (tmp_path / "a" / f"conversations_{split}.jsonl").read_text().splitlines()]
        assert (tmp_path / "a" / f"conversations_{split}.jsonl").read_bytes() == \
            (tmp_path / "b" / f"conversations_{split}.jsonl").read_bytes()
        cuts = CutSet.from_file(a).to_eager()
        assert [c.id for c in cuts] == [p["id"] for p in plan]
        for cut, record in zip(cuts, plan):
            turns = turns_of_cut(cut)
            assert {t.speaker for t in turns} <= {f"{split}{s:02d}" for s in range(SPLIT_SPEAKERS[split])}
            assert [round(t.start, 3) for t in turns] == [round(t["offset"], 3) for t in record["turns"]]
            assert cut.num_frames == pytest.approx(100 * record["duration"], abs=2)
            assert cut.load_features().shape == (cut.num_frames, 80)
    # the mixed features themselves are identical too
    fa = CutSet.from_file(tmp_path / "a" / "cuts_dev.jsonl.gz")[0].load_features()
    fb = CutSet.from_file(tmp_path / "b" / "cuts_dev.jsonl.gz")[0].load_features()
    assert np.array_equal(fa, fb)


def test_recipe_runs_end_to_end_and_writes_the_results_page(source: Path, tmp_path: Path):
    mix_config = tmp_path / "mix.yaml"
    mix_config.write_text("conversations: {train: 16, dev: 4, test: 10}\nshard_size: 8\n")
    results = tmp_path / "RESULTS.md"
    tiny = ("num_epochs=1 data.num_buckets=2 data.max_duration=30 valid.wer_utts=2 tensorboard=false "
            "num_threads=1 save_every_n_steps=0")
    cmd = [str(REPO / "egs/synth/multitalker/run.sh"), "--stage", "1", "--src-data", str(source),
           "--mix-config", str(mix_config), "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"),
           "--systems", "baseline sts", "--train-set", tiny, "--n-boot", "100", "--results-md", str(results)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    page = results.read_text()
    n = len((tmp_path / "data" / "mix" / "conversations_test.jsonl").read_text().splitlines())
    assert n >= 3
    assert f"| **baseline** | all | {n} |" in page and f"| **sts** | all | {n} |" in page
    assert "sts vs baseline" in page and "Against the paper" in page
    assert "## Turn counts" in page and "| sts | words |" in page and "cpWER %" not in page
    doc = json.loads((tmp_path / "exp" / "results" / "results.json").read_text())
    assert set(doc["systems"]) == {"baseline", "sts"}
    assert doc["systems"]["sts"]["train"]["turn_scheme"] == "sot_eot"
    assert doc["systems"]["baseline"]["train"]["turn_scheme"] == "speaker_change"
    # streaming decoding equals whole-conversation decoding (causal encoder and branches)
    offline = tmp_path / "offline"
    run_asrtools(["decode", "--exp-dir", str(tmp_path / "exp" / "sts"), "--cuts",
                  str(tmp_path / "data" / "mix" / "cuts_test.jsonl.gz"), "--bpe-model",
                  str(source / "lang_bpe" / "bpe.model"), "--method", "greedy", "--out-dir", str(offline)])
    streamed = [json.loads(x) for x in (tmp_path / "exp" / "sts" / "decode_test_streaming" / "turns.jsonl").open()]
    whole = [json.loads(x) for x in (offline / "turns.jsonl").open()]
    assert [r["channels"] for r in streamed] == [r["channels"] for r in whole]
    # a rerun is a no-op: every stage up to date
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "running (" not in again.stdout + again.stderr
