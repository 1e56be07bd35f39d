"""VCTK through `asrtools data prepare vctk` (lhotse's own prepare_vctk) and egs/vctk/fairness/run.sh
stages 0-5, on a tiny corpus in the real layouts (tests/fake_corpora_vctk.py: release 0.92's
wav48_silence_trimmed/*_mic{1,2}.flac and release 0.80's wav48/*.wav, txt/, speaker-info.txt with
real VCTK rows, espeak-ng speech): speaker-disjoint accent-stratified splits, the speaker table
with regions geocoded to real places (or the accent's country, said in `placed`), features, BPE,
a few training steps, decoding and WER by accent/age/gender/country; the geographic discovery
run unchanged on the geocoded speakers.csv; then bad inputs, each one `asrtools: error:` line
naming the item with nothing written."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from click.testing import CliRunner
from lhotse import load_manifest

from asrtools.cli import cli
from conftest import REPO, needs_tts
from fake_corpora_vctk import SPEAKERS, write_fake_vctk
from test_corpus_commonvoice import assert_one_error, tiny_configs

RUN_SH = REPO / "egs" / "vctk" / "fairness" / "run.sh"
pytestmark = needs_tts
USABLE = [s for s in SPEAKERS if s.has_text]  # p315 has no transcripts, as in the real corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_fake_vctk(tmp_path_factory.mktemp("vctk"))


@pytest.fixture(scope="module")
def recipe(corpus, tmp_path_factory) -> Path:
    """run.sh stages 0-5 on the fake 0.92 corpus with a tiny BPE and transducer."""
    root = tmp_path_factory.mktemp("vctk_recipe")
    conf = tiny_configs(root)
    env = dict(os.environ, OMP_NUM_THREADS="1", ASRTOOLS_RNNT_BACKEND="native")
    proc = subprocess.run(["bash", str(RUN_SH), "--corpus-dir", str(corpus), "--stop-stage", "5", "--nj", "1",
                           "--data", str(root / "data"), "--exp", str(root / "exp"), "--bpe-config", str(conf["bpe"]),
                           "--train-config", str(conf["train"])], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return root


def read_speakers(path: Path) -> Dict[str, Dict[str, str]]:
    with open(path, newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def test_recipe_prepares_trains_decodes_and_scores_by_cohort(recipe):
    manifests = recipe / "data" / "manifests"
    table = read_speakers(manifests / "speakers.csv")
    assert set(table) == {s.id for s in USABLE}
    seen = set()
    for split in ("train", "dev", "test"):
        sups = load_manifest(manifests / f"supervisions_{split}.jsonl.gz")
        speakers = {s.speaker for s in sups}
        assert speakers == {sid for sid, row in table.items() if row["split"] == split} and not speakers & seen
        seen |= speakers
        assert all(s.recording_id.endswith("_mic2") for s in sups)  # lhotse's default microphone
        rec = next(iter(load_manifest(manifests / f"recordings_{split}.jsonl.gz")))
        assert rec.sources[0].source.endswith("_mic2.flac") and rec.sampling_rate == 16000
        assert len(load_manifest(recipe / "data" / "fbank" / f"cuts_{split}.jsonl.gz")) == len(sups)
    counts = {split: sum(r["split"] == split for r in table.values()) for split in ("train", "dev", "test")}
    assert counts == {"train": 10, "dev": 3, "test": 3}
    assert (recipe / "exp" / "lstm" / "averaged.pt").is_file()
    decode = recipe / "exp" / "lstm" / "decode_test_greedy"
    assert json.loads((decode / "wer" / "wer.json").read_text())["total"]["words"] > 0
    cohorts = json.loads((decode / "cohorts" / "cohorts.json").read_text())
    text = json.dumps(cohorts)
    for field in ("accent", "age_group", "gender", "country"):
        assert f'"{field}"' in text, field


def test_speaker_table_places_real_regions(recipe):
    table = read_speakers(recipe / "data" / "manifests" / "speakers.csv")
    belfast = table["p238"]
    assert (belfast["gender"], belfast["age"], belfast["age_group"], belfast["accent"], belfast["region"]) == \
        ("female", "22", "twenties", "NorthernIrish", "Belfast")
    assert belfast["placed"] == "city" and float(belfast["lat"]) == pytest.approx(54.6, abs=0.1)
    # "Hamilton" of a Canadian speaker is Hamilton, Ontario (the accent's country picks the city)
    assert table["p317"]["placed"] == "city" and float(table["p317"]["lon"]) == pytest.approx(-79.8, abs=0.2)
    assert table["p301"]["placed"] == "state" and table["p301"]["place_detail"].startswith("North Carolina")
    # a region that is no known place, or none at all: the accent's country, said so
    assert table["p225"]["region"] == "Southern England" and table["p225"]["placed"] == "country"
    assert table["p248"]["region"] == "" and table["p248"]["country"] == "India" and table["p248"]["placed"] == "country"
    notes = (recipe / "data" / "manifests" / "notes.txt").read_text()
    assert "p315" in notes and "speaker split: train 10, dev 3, test 3" in notes
    sup = next(iter(load_manifest(recipe / "data" / "manifests" / "supervisions_train.jsonl.gz")))
    assert {"accent", "age_group", "region", "country", "lat", "lon"} <= set(sup.custom)


def test_geographic_discovery_runs_on_the_geocoded_speaker_table(recipe, tmp_path):
    """`asrtools cohorts geo` unchanged on speakers.csv: recognitions with more errors in the Americas."""
    table = read_speakers(recipe / "data" / "manifests" / "speakers.csv")
    rng = np.random.default_rng(0)
    recogs = []
    for sid, row in sorted(table.items()):
        west = float(row["lon"]) < -30
        for u in range(6):
            words = ["the", "rainbow", "is", "a", "division", "of", "white", "light"] * 5
            hyp = [("x" if rng.random() < (0.5 if west else 0.1) else w) for w in words]
            recogs.append({"id": f"{sid}_{u}", "utt_id": f"{sid}_{u}", "cut_id": f"{sid}_{u}", "speaker": sid,
                           "ref": " ".join(words), "hyp": " ".join(hyp)})
    path = tmp_path / "recogs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recogs))
    config = tmp_path / "cohorts.yaml"
    config.write_text("seed: 0\nmeasure: {folds: 2, n_permutations: 49, n_boot: 49, min_speakers: 3, min_words: 50}\n")
    out = tmp_path / "geo"
    result = CliRunner().invoke(cli, ["cohorts", "geo", "--recogs", str(path), "--speakers",
                                      str(recipe / "data" / "manifests" / "speakers.csv"), "--config", str(config),
                                      "--out-dir", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    cohorts = json.loads((out / "cohorts.json").read_text())
    assert cohorts["mode"] == "crossfit" and cohorts["disjoint"] is True


def test_release_080_layout(tmp_path):
    """Release 0.80: bare numeric ids in speaker-info.txt, wav48/*.wav; split fractions as options."""
    corpus = write_fake_vctk(tmp_path, release="0.80", utts_per_speaker=1, speakers=SPEAKERS[:6])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["data", "prepare", "vctk", "--corpus-dir", str(corpus), "--out-dir", str(out),
                                      "--resample", "16000", "--parts", "dev test", "--option", "train_fraction=0",
                                      "--option", "dev_fraction=0.5", "--option", "test_fraction=0.5"])
    assert result.exit_code == 0, result.output[-3000:]
    table = read_speakers(out / "speakers.csv")
    assert sorted(table) == [s.id for s in SPEAKERS[:6]] and {r["split"] for r in table.values()} == {"dev", "test"}
    assert table["p226"]["gender"] == "male" and table["p226"]["region"] == "Surrey"
    assert not (out / "recordings_train.jsonl.gz").exists()
    rec = next(iter(load_manifest(out / "recordings_dev.jsonl.gz")))
    assert rec.sources[0].source.endswith(".wav")


def test_split_is_stratified_by_accent_and_deterministic():
    from asrtools.data.corpora.vctk import assign_splits

    accents = {f"p{i}": ("English" if i < 10 else "Scottish") for i in range(20)}
    fractions = {"train": 0.6, "dev": 0.2, "test": 0.2}
    split = assign_splits(accents, fractions, "0")
    assert split == assign_splits(accents, fractions, "0") and split != assign_splits(accents, fractions, "1")
    for accent in ("English", "Scottish"):
        members = [split[s] for s, a in accents.items() if a == accent]
        assert members.count("train") == 6 and members.count("dev") == 2 and members.count("test") == 2


# ---------------------------------------------------------------- bad inputs

@pytest.fixture()
def spoiled(corpus, tmp_path) -> Path:
    copy = tmp_path / corpus.name
    shutil.copytree(corpus, copy)
    return copy


def prepare_args(corpus: Path, out: Path, *extra: str) -> List[str]:
    return ["data", "prepare", "vctk", "--corpus-dir", str(corpus), "--out-dir", str(out), "--resample", "16000", *extra]


def test_missing_speaker_info(spoiled, tmp_path):
    (spoiled / "speaker-info.txt").unlink()
    assert_one_error(prepare_args(spoiled, tmp_path / "out"), tmp_path / "out", "speaker-info.txt not found under")


def test_missing_audio_folder(spoiled, tmp_path):
    shutil.rmtree(spoiled / "wav48_silence_trimmed")
    assert_one_error(prepare_args(spoiled, tmp_path / "out"), tmp_path / "out", "wav48_silence_trimmed/", "wav48/")


def test_transcript_for_a_missing_file(spoiled, tmp_path):
    (spoiled / "wav48_silence_trimmed" / "p253" / "p253_002_mic1.flac").unlink()
    assert_one_error(prepare_args(spoiled, tmp_path / "out", "--option", "mic=mic1"), tmp_path / "out",
                     "txt/p253/p253_002.txt", "p253_002_mic1.flac")


def test_malformed_speaker_info_line(spoiled, tmp_path):
    info = spoiled / "speaker-info.txt"
    lines = info.read_text().splitlines(True)
    lines[5] = "p234  twenty  F  Scottish  Fife\n"
    info.write_text("".join(lines))
    assert_one_error(prepare_args(spoiled, tmp_path / "out"), tmp_path / "out", "speaker-info.txt:6", "twenty")


def test_unreadable_audio(spoiled, tmp_path):
    bad = spoiled / "wav48_silence_trimmed" / "p245" / "p245_001_mic2.flac"
    bad.write_bytes(os.urandom(1500))
    assert_one_error(prepare_args(spoiled, tmp_path / "out"), tmp_path / "out", "p245_001_mic2.flac",
                     "cannot read the audio")


def test_bad_options(corpus, tmp_path):
    assert_one_error(prepare_args(corpus, tmp_path / "out", "--option", "mic=mic3"), tmp_path / "out", "mic=mic3")
    assert_one_error(prepare_args(corpus, tmp_path / "out", "--option", "dev_fraction=0.9"), tmp_path / "out",
                     "must sum to 1")
