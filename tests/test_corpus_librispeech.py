"""LibriSpeech through `asrtools data prepare librispeech` (lhotse's prepare_librispeech) and egs/librispeech/asr.

A tiny LibriSpeech tree in the real layout (PART/SPK/CHAP/*.flac + SPK-CHAP.trans.txt +
SPEAKERS.TXT): the recipe runs stages 1-3 (manifests + speakers.csv, Fbank features, BPE),
then a few training steps of the CPU smoke config; broken trees fail with one line naming
the missing or bad item and write nothing.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lhotse import SupervisionSet

from asrtools.data.corpora import get_corpus
from asrtools.errors import ConfigError
from fake_corpora import (
    LIBRISPEECH_SPEAKERS,
    assert_one_line_error,
    read_speakers_csv,
    run_prepare,
    write_librispeech,
)
from test_train_helpers import REPO, train_env

RUN_SH = REPO / "egs" / "librispeech" / "asr" / "run.sh"


def test_recipe_stages_1_to_3_then_a_few_training_steps(tmp_path):
    corpus = write_librispeech(tmp_path / "download")
    data, exp = tmp_path / "data", tmp_path / "exp"
    bpe = tmp_path / "bpe.yaml"
    bpe.write_text("vocab_size: 40\nmodel_type: unigram\n")  # the fake transcripts hold 26 words
    common = [str(RUN_SH), "--data", str(data), "--exp", str(exp), "--bpe-config", str(bpe)]
    proc = subprocess.run([*common, "--corpus-dir", str(corpus), "--stop-stage", "3"], capture_output=True,
                          text=True, env=train_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in ("manifests/speakers.csv", "manifests/stats.json", "fbank/cuts_train.jsonl.gz",
                 "fbank/cuts_dev.jsonl.gz", "fbank/cuts_test.jsonl.gz", "lang_bpe/bpe.model"):
        assert (data / path).is_file(), path
    speakers = read_speakers_csv(data / "manifests" / "speakers.csv")
    expected = {spk: ({"train-clean-100": "train", "dev-clean": "dev", "test-clean": "test"}[part],
                      {"F": "female", "M": "male"}[sex])
                for part, rows in LIBRISPEECH_SPEAKERS.items() for spk, sex in rows}
    assert {s: (r["split"], r["gender"]) for s, r in speakers.items()} == expected  # incl. speaker 60 ('|' in name)
    test_sups = SupervisionSet.from_file(data / "manifests" / "supervisions_test.jsonl.gz")
    assert {(s.speaker, s.gender) for s in test_sups} == {("121", "female"), ("237", "male")}
    proc = subprocess.run([*common, "--stage", "4", "--stop-stage", "4", "--models", "tiny",
                           "--train-opts", "max_steps=3 num_threads=1 data.max_duration=8"], capture_output=True,
                          text=True, env=train_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (exp / "tiny" / "averaged.pt").is_file()
    assert json.loads((exp / "tiny" / "train_summary.json").read_text())["steps"] == 3
    proc = subprocess.run([*common, "--corpus-dir", str(corpus), "--stop-stage", "3"], capture_output=True,
                          text=True, env=train_env())
    assert proc.returncode == 0 and proc.stderr.count("up to date, nothing to do") == 3, proc.stderr[-3000:]


def test_parts_map_to_splits_and_train_960_expands():
    recipe = get_corpus("librispeech")
    assert recipe.resolve_parts(Path("."), []) == ("train-clean-100", "dev-clean", "test-clean")
    assert recipe.resolve_parts(Path("."), ["train-960", "dev-other"]) == (
        "train-clean-100", "train-clean-360", "train-other-500", "dev-other")
    with pytest.raises(ConfigError, match="--parts train-clean-200: not a LibriSpeech part"):
        recipe.resolve_parts(Path("."), ["train-clean-200"])


SMALL = {"dev-clean": [("84", "F"), ("174", "M")], "test-clean": [("121", "F")]}


def test_broken_trees_fail_naming_the_item(tmp_path):
    def tree(n, change):
        corpus = write_librispeech(tmp_path / f"t{n}", SMALL, utterances=2)
        change(corpus)
        return corpus

    def fails(n, change, *words, layout=True, parts="dev-clean test-clean"):
        corpus = tree(n, change)
        out = tmp_path / f"out{n}"
        return assert_one_line_error(run_prepare("librispeech", corpus, out, "--parts", parts), out, *words,
                                     layout=layout)

    import shutil
    fails(0, lambda c: shutil.rmtree(c / "test-clean"), "test-clean/ not found under")
    fails(1, lambda c: (c / "dev-clean/84/1000/84-1000-0001.flac").unlink(),
          "84-1000.trans.txt:2: utterance 84-1000-0001: audio file 84-1000-0001.flac not found")
    fails(2, lambda c: (c / "SPEAKERS.TXT").unlink(), "SPEAKERS.TXT not found under")
    fails(3, lambda c: (c / "test-clean/121/1000/121-1000-0000.flac").write_bytes(b"fLaC" + b"\0" * 100),
          "lhotse prepare_librispeech failed", "121-1000-0000.flac", layout=False)
    fails(4, lambda c: None, "--parts dev-clean-5: not a LibriSpeech part", parts="dev-clean-5")


def test_speaker_missing_from_speakers_txt_is_reported_not_pooled(tmp_path):
    corpus = write_librispeech(tmp_path / "t", SMALL, utterances=2)
    lines = (corpus / "SPEAKERS.TXT").read_text().splitlines()
    (corpus / "SPEAKERS.TXT").write_text("\n".join(l for l in lines if not l.startswith("174")) + "\n")
    out = tmp_path / "out"
    result = run_prepare("librispeech", corpus, out, "--parts", "dev-clean test-clean")
    assert result.exit_code == 0, result.output
    notes = (out / "notes.txt").read_text()
    assert "SPEAKERS.TXT lists no sex for 1 speaker(s): 174" in notes
    assert "gender: 1 of 3 speakers have none (174)" in notes
    assert read_speakers_csv(out / "speakers.csv")["174"]["gender"] == ""
