"""Common Voice through `asrtools data prepare commonvoice` (lhotse's own prepare_commonvoice) and
egs/commonvoice/fairness/run.sh stages 0-3, on a tiny release in the real layout
(tests/fake_corpora_commonvoice.py: TSVs with the current columns, 48 kHz MP3 clips of espeak-ng
speech): manifests per split, the speaker table (client ids, Common Voice's gender/age/accent
vocabulary normalised, free-text accents kept, countries placed), features, BPE and a few
training steps of a tiny transducer. Then bad inputs: each gives one `asrtools: error:` line
naming the item and leaves the output directory unwritten."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from click.testing import CliRunner
from lhotse import load_manifest

from asrtools.cli import cli

from conftest import REPO, needs_tts
from fake_corpora_commonvoice import DONORS, RELEASE, write_fake_commonvoice
from test_train_helpers import TINY_CONFIG

RUN_SH = REPO / "egs" / "commonvoice" / "fairness" / "run.sh"
pytestmark = needs_tts


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_fake_commonvoice(tmp_path_factory.mktemp("cv"))


def tiny_configs(root: Path) -> Dict[str, Path]:
    """A BPE and a training config small enough for a few CPU seconds."""
    bpe = root / "bpe_tiny.yaml"
    bpe.write_text(yaml.safe_dump({"vocab_size": 48, "model_type": "bpe"}))
    train = root / "train_tiny.yaml"
    train.write_text(yaml.safe_dump({**TINY_CONFIG, "num_epochs": 1, "max_steps": 3, "average_last_n": 1,
                                     "data": {**TINY_CONFIG["data"], "max_duration": 12.0}}))
    return {"bpe": bpe, "train": train}


@pytest.fixture(scope="module")
def recipe(release, tmp_path_factory) -> Path:
    """run.sh stages 0-3 (prepare, features, BPE, baseline training) on the fake release."""
    root = tmp_path_factory.mktemp("cv_recipe")
    conf = tiny_configs(root)
    env = dict(os.environ, OMP_NUM_THREADS="1", ASRTOOLS_RNNT_BACKEND="native")
    proc = subprocess.run(["bash", str(RUN_SH), "--corpus-dir", str(release), "--stop-stage", "3", "--nj", "1",
                           "--data", str(root / "data"), "--exp", str(root / "exp"), "--bpe-config", str(conf["bpe"]),
                           "--train-config", str(conf["train"])], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return root


def read_speakers(path: Path) -> Dict[str, Dict[str, str]]:
    with open(path, newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def test_recipe_prepares_manifests_features_bpe_and_trains(recipe):
    manifests = recipe / "data" / "manifests"
    for split in ("train", "dev", "test"):
        sups = load_manifest(manifests / f"supervisions_{split}.jsonl.gz")
        recs = load_manifest(manifests / f"recordings_{split}.jsonl.gz")
        assert len(sups) == 2 * sum(d.split == split for d in DONORS)
        rec = next(iter(recs))
        assert rec.sources[0].source.endswith(".mp3") and rec.sampling_rate == 16000  # resampled on load
        assert all(s.text and s.speaker for s in sups)
        cuts = load_manifest(recipe / "data" / "fbank" / f"cuts_{split}.jsonl.gz")
        assert len(cuts) == len(sups) and next(iter(cuts)).features.num_features == 80
    assert (recipe / "data" / "lang_bpe" / "bpe.model").is_file()
    assert (recipe / "exp" / "lstm" / "averaged.pt").is_file()
    stats = json.loads((manifests / "stats.json").read_text())
    assert stats["test"]["speakers"] == sum(d.split == "test" for d in DONORS)


def test_speaker_table_keeps_common_voice_attributes(recipe):
    table = read_speakers(recipe / "data" / "manifests" / "speakers.csv")
    assert set(table) == {d.client_id for d in DONORS}
    by_voice = {d.voice: table[d.client_id] for d in DONORS}
    us = by_voice["en-us+m3"]
    assert (us["split"], us["gender"], us["age"], us["accent"], us["country"]) == \
        ("train", "male", "twenties", "us", "United States")
    assert us["placed"] == "country" and float(us["lat"]) == pytest.approx(38.8, abs=3)
    scot = by_voice["en-gb-scotland+m1"]
    assert scot["age"] == "forties" and scot["accent"] == "scotland" and scot["place_detail"].startswith("Scotland")
    several = by_voice["en-us-nyc+m2"]  # "|"-joined accents: the raw text kept, the first predefined label coarse
    assert several["accents"] == "United States English|Southern United States" and several["accent"] == "us"
    assert several["gender"] == ""
    free = by_voice["en-gb+m2"]  # free-text accent, gender declined, no age
    assert (free["accent"], free["accents"], free["gender"], free["age"]) == \
        ("other", "a slight Midwestern twang", "do_not_wish_to_say", "")
    assert free["placed"] == "unplaced" and free["lat"] == ""
    empty = by_voice["en-gb-x-rp+f4"]
    assert empty["accent"] == "" and empty["placed"] == "unplaced"
    notes = (recipe / "data" / "manifests" / "notes.txt").read_text()
    assert "could not be placed" in notes and "gender: 1 of 12 speakers have none" in notes
    # the speaker's normalised attributes are on every supervision (what score cohorts --by reads)
    sups = load_manifest(recipe / "data" / "manifests" / "supervisions_train.jsonl.gz")
    sup = next(s for s in sups if s.speaker == DONORS[0].client_id)
    assert sup.gender == "male" and sup.custom["accent"] == "us" and sup.custom["age"] == "twenties"


def test_language_folder_or_release_folder(release):
    from asrtools.data.corpora.commonvoice import coarse_accent, language_dir

    assert language_dir(release) == release / "en"
    assert language_dir(release / "en") == release / "en"
    assert coarse_accent("England English") == ("england", "England")
    assert coarse_accent("india and south asia (india, pakistan, sri lanka)") == ("south_asia", "")
    assert coarse_accent("newzealand") == ("new_zealand", "New Zealand")  # releases <= 7: short codes
    assert coarse_accent("") == ("", "")


# ---------------------------------------------------------------- bad inputs

def spoiled(release: Path, tmp_path: Path) -> Path:
    copy = tmp_path / RELEASE
    shutil.copytree(release, copy)
    return copy


def rewrite_tsv(path: Path, edit) -> None:
    lines = path.read_text().splitlines(True)
    path.write_text("".join(edit(lines)))


def assert_one_error(args: List[str], out_dir: Path, *words: str) -> str:
    """The CLI (in-process) fails with one `asrtools: error:` line holding `words`; `out_dir` holds no file."""
    result = CliRunner().invoke(cli, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("asrtools: error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    # the stage's lock file may exist; no output, no done-marker, no temporary file
    written = sorted(p.name for p in out_dir.rglob("*") if p.is_file() and p.name != ".lock") \
        if out_dir.exists() else []
    assert written == [], written
    return errors[0]


def prepare_args(corpus: Path, out: Path, *extra: str) -> List[str]:
    return ["data", "prepare", "commonvoice", "--corpus-dir", str(corpus), "--out-dir", str(out), "--resample", "16000",
            *extra]


def test_missing_split_tsv(release, tmp_path):
    corpus = spoiled(release, tmp_path)
    (corpus / "en" / "dev.tsv").unlink()
    assert_one_error(prepare_args(corpus, tmp_path / "out"), tmp_path / "out", "en/dev.tsv not found under")


def test_tsv_line_for_a_missing_clip(release, tmp_path):
    corpus = spoiled(release, tmp_path)
    clip = (corpus / "en" / "train.tsv").read_text().splitlines()[3].split("\t")[1]
    (corpus / "en" / "clips" / clip).unlink()
    assert_one_error(prepare_args(corpus, tmp_path / "out"), tmp_path / "out", "train.tsv:4", clip, "not found")


def test_tsv_without_a_column(release, tmp_path):
    corpus = spoiled(release, tmp_path)
    rewrite_tsv(corpus / "en" / "test.tsv", lambda lines: [lines[0].replace("client_id", "contributor")] + lines[1:])
    assert_one_error(prepare_args(corpus, tmp_path / "out", "--parts", "test"), tmp_path / "out",
                     "test.tsv", "no 'client_id' column")


def drop_column(lines: List[str], name: str) -> List[str]:
    index = lines[0].rstrip("\n").split("\t").index(name)
    return ["\t".join(f for i, f in enumerate(line.rstrip("\n").split("\t")) if i != index) + "\n" for line in lines]


def test_old_release_columns(release, tmp_path):
    """A release <= 7 (`accent`, no `variant`): lhotse reads a scratch copy of the TSV; clips stay where they are."""
    corpus = spoiled(release, tmp_path)
    rewrite_tsv(corpus / "en" / "test.tsv",
                lambda lines: drop_column([lines[0].replace("accents", "accent")] + lines[1:], "variant"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, prepare_args(corpus, out, "--parts", "test"))
    assert result.exit_code == 0, result.output[-3000:]
    rec = next(iter(load_manifest(out / "recordings_test.jsonl.gz")))
    assert Path(rec.sources[0].source).parent == corpus / "en" / "clips" and rec.load_audio().shape[1] > 16000
    table = {row["id"]: row for row in csv.DictReader(open(out / "speakers.csv", newline=""))}
    irish = next(d for d in DONORS if d.accents == "Irish English")
    assert table[irish.client_id]["accent"] == "ireland"
    assert "older Common Voice release" in (out / "notes.txt").read_text()


def test_unreadable_clip(release, tmp_path):
    corpus = spoiled(release, tmp_path)
    clip = (corpus / "en" / "dev.tsv").read_text().splitlines()[1].split("\t")[1]
    (corpus / "en" / "clips" / clip).write_bytes(os.urandom(2000))
    assert_one_error(prepare_args(corpus, tmp_path / "out", "--parts", "dev"), tmp_path / "out",
                     clip, "cannot read the audio")


def test_row_with_a_wrong_number_of_fields(release, tmp_path):
    corpus = spoiled(release, tmp_path)
    rewrite_tsv(corpus / "en" / "dev.tsv", lambda lines: lines[:2] + [lines[2].rstrip("\n") + "\textra\n"] + lines[3:])
    assert_one_error(prepare_args(corpus, tmp_path / "out"), tmp_path / "out", "dev.tsv:3", "number of")


def test_unknown_part(release, tmp_path):
    assert_one_error(prepare_args(release, tmp_path / "out", "--parts", "train-clean-100"), tmp_path / "out",
                     "train-clean-100", "not a Common Voice split")
