"""The synthetic corpus: splits, metadata, imbalance, determinism, and bad-input errors."""
from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from asrtools.data.synth import tts
from asrtools.data.synth.config import PRESETS, SynthConfig
from asrtools.data.synth.corpus import build_corpus
from asrtools.errors import ToolError
from conftest import needs_tts, run_asrtools

pytestmark = needs_tts


def jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("asrtools: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_splits_are_speaker_disjoint_and_sentences_disjoint(tiny_corpus):
    speakers = jsonl(tiny_corpus / "synth" / "speakers.jsonl")
    utts = jsonl(tiny_corpus / "synth" / "utterances.jsonl")
    split_of = {s["id"]: s["split"] for s in speakers}
    assert all(split_of[u["speaker"]] == u["split"] for u in utts)
    pools = {split: set((tiny_corpus / "synth" / "sentences" / f"{split}.txt").read_text().splitlines())
             for split in ("train", "dev", "test")}
    assert not pools["train"] & pools["test"] and not pools["train"] & pools["dev"]
    for u in utts:
        assert u["text"] in pools[u["split"]]
    per_split = {split: {s["speaker"] for s in jsonl(tiny_corpus / "manifests" / f"supervisions_{split}.jsonl.gz")}
                 for split in ("train", "dev", "test")}
    assert not per_split["train"] & per_split["test"] and not per_split["train"] & per_split["dev"]


def test_metadata_present(tiny_corpus):
    for sup in jsonl(tiny_corpus / "manifests" / "supervisions_test.jsonl.gz"):
        assert sup["speaker"] and sup["gender"] in ("male", "female") and sup["text"]
        custom = sup["custom"]
        for field in ("accent", "region", "engine", "lat", "lon", "zip", "channel", "noise",
                      "income_band", "urbanicity", "majority_language_share"):
            assert field in custom, field
    zips = (tiny_corpus / "synth" / "zipcodes.csv").read_text().splitlines()
    assert zips[0].startswith("zip,region,lat,lon,urbanicity,income_band,majority_language_share")


def test_imbalance_as_configured(tiny_corpus):
    cfg = SynthConfig(**PRESETS["tiny"])
    speakers = jsonl(tiny_corpus / "synth" / "speakers.jsonl")
    train = Counter(s["voice"] for s in speakers if s["split"] == "train" and s["engine"] == "espeak-ng")
    assert dict(train) == cfg.train_speakers
    flite = Counter(s["split"] for s in speakers if s["engine"] == "flite")
    assert dict(flite) == cfg.flite_speakers
    test = Counter(s["voice"] for s in speakers if s["split"] == "test" and s["engine"] == "espeak-ng")
    assert set(test.values()) == {cfg.test_speakers_per_accent}
    genders = Counter(s["gender"] for s in speakers if s["split"] == "train" and s["engine"] == "espeak-ng")
    assert abs(genders["female"] - genders["male"]) <= 1


def test_default_preset_is_imbalanced_by_cohort():
    cfg = SynthConfig(**PRESETS["default"])
    counts = cfg.speaker_counts()["train"]
    assert max(counts.values()) >= 8 * min(counts.values())
    assert cfg.flite_speakers["train"] < min(cfg.speaker_counts()["test"].values())
    total = sum(counts.values()) + sum(cfg.flite_speakers.values()) + sum(cfg.speaker_counts()["dev"].values()) \
        + sum(cfg.speaker_counts()["test"].values())
    assert 230 <= total <= 280


def test_fairness_preset_has_many_evaluation_speakers_with_their_own_ids():
    from asrtools.data.synth.speakers import make_speakers, make_zip_table

    cfg = SynthConfig(**PRESETS["fairness"])
    cfg.validate()
    default = SynthConfig(**PRESETS["default"])
    assert cfg.speaker_counts()["train"] == {} and "train" not in cfg.flite_speakers
    n_test = sum(cfg.speaker_counts()["test"].values()) + cfg.flite_speakers["test"]
    assert n_test >= 150
    # same sentence split as the default corpus: no evaluation sentence is a training sentence there
    assert (cfg.seed, cfg.vocab_size, cfg.sentence_split) == (default.seed, default.vocab_size, default.sentence_split)
    zips = make_zip_table(cfg.zips_per_region, cfg.seed)
    ids = [s.id for s in make_speakers(cfg.speaker_counts(), cfg.flite_speakers, cfg.female_fraction,
                                       cfg.channel_probs, zips, cfg.seed, cfg.speaker_id_prefix)]
    assert len(ids) == len(set(ids)) == n_test + sum(cfg.speaker_counts()["dev"].values()) + cfg.flite_speakers["dev"]
    assert all(i.startswith("f") and i[1:].isdigit() for i in ids)
    with pytest.raises(ValueError, match="speaker_id_prefix"):
        SynthConfig(**{**PRESETS["fairness"], "speaker_id_prefix": "F-1"}).validate()


def test_deterministic_by_seed(tiny_corpus, tmp_path):
    run_asrtools(["data", "synth", "--preset", "tiny", "--out-dir", str(tmp_path / "again"), "-j", "1"])
    first, again = tiny_corpus / "synth", tmp_path / "again"
    assert (first / "utterances.jsonl").read_bytes() == (again / "utterances.jsonl").read_bytes()
    for wav in sorted((first / "wav").rglob("*.wav")):
        assert wav.read_bytes() == (again / wav.relative_to(first)).read_bytes(), wav.name
    cfg = SynthConfig(**{**PRESETS["tiny"], "seed": 1})
    other = tmp_path / "seed1"
    build_corpus(cfg, other, num_jobs=2)
    assert (other / "utterances.jsonl").read_bytes() != (first / "utterances.jsonl").read_bytes()


def test_speakers_sound_different(tiny_corpus):
    """Same sentence, two speakers of one accent: the audio must differ a lot (not just noise)."""
    import numpy as np

    from asrtools.data.synth.acoustics import read_wav

    speakers = [s for s in jsonl(tiny_corpus / "synth" / "speakers.jsonl") if s["voice"] == "en-us"]
    assert len(speakers) >= 2
    cfg = SynthConfig(**PRESETS["tiny"])
    from asrtools.data.synth.speakers import Speaker

    wavs = []
    for row in speakers[:2]:
        spk = Speaker(**row)
        out = tiny_corpus / f"probe-{spk.id}.wav"
        tts.synthesize(spk, "the weather is fine today", 1.0, out, tiny_corpus / "synth" / ".voices")
        wavs.append(read_wav(out))
    n = min(len(w) for w in wavs)
    corr = abs(np.corrcoef(wavs[0][:n], wavs[1][:n])[0, 1])
    assert corr < 0.5 and len(wavs[0]) != len(wavs[1])
    assert cfg.utts_per_speaker == 3


def test_missing_tts_voice_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tts, "available_voices", lambda: {"espeak-ng": {"en-us", "en-gb"}, "flite": {"slt"}})
    with pytest.raises(ToolError, match=r"speaker s\d+: TTS voice espeak-ng/en-029 is not installed"):
        build_corpus(SynthConfig(**PRESETS["tiny"]), tmp_path / "c")


def test_unknown_config_key(tmp_path):
    conf = tmp_path / "synth.yaml"
    conf.write_text("seed: 0\nnum_speakerz: 3\n")
    proc = run_asrtools(["data", "synth", "--preset", "tiny", "--config", str(conf), "--out-dir", str(tmp_path / "o")],
                        check=False)
    assert_one_line_error(proc, "unknown key 'num_speakerz'", str(conf))
    proc = run_asrtools(["data", "synth", "--preset", "tiny", "--set", "train_speakers={en-xx: 2}",
                         "--out-dir", str(tmp_path / "o")], check=False)
    assert_one_line_error(proc, "unknown accent 'en-xx'")
    assert not (tmp_path / "o").exists()


def _copy_corpus(tiny_corpus, tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus / "synth", corpus, symlinks=True)
    return corpus


def test_unreadable_wav(tiny_corpus, tmp_path):
    corpus = _copy_corpus(tiny_corpus, tmp_path)
    victim = sorted((corpus / "wav").rglob("*.wav"))[5]
    victim.write_bytes(b"RIFF\x00\x00garbage")
    proc = run_asrtools(["data", "manifests", "--corpus-dir", str(corpus), "--out-dir", str(tmp_path / "m")], check=False)
    assert_one_line_error(proc, victim.stem, "cannot read audio")
    assert not list((tmp_path / "m").glob("*.jsonl.gz"))


def test_missing_wav_and_empty_transcript(tiny_corpus, tmp_path):
    corpus = _copy_corpus(tiny_corpus, tmp_path)
    victim = sorted((corpus / "wav").rglob("*.wav"))[2]
    victim.unlink()
    proc = run_asrtools(["data", "manifests", "--corpus-dir", str(corpus), "--out-dir", str(tmp_path / "m")], check=False)
    assert_one_line_error(proc, victim.stem, "is missing")

    corpus2 = tmp_path / "c2"
    shutil.copytree(tiny_corpus / "synth", corpus2, symlinks=True)
    rows = jsonl(corpus2 / "utterances.jsonl")
    rows[3]["text"] = "  "
    (corpus2 / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_asrtools(["data", "manifests", "--corpus-dir", str(corpus2), "--out-dir", str(tmp_path / "m2")], check=False)
    assert_one_line_error(proc, rows[3]["id"], "empty transcript")


def test_validate_reports_missing_file_and_statistics(tiny_corpus, tmp_path):
    proc = run_asrtools(["data", "validate", str(tiny_corpus / "manifests")])
    assert "train" in proc.stdout and "accent:" in proc.stdout
    manifests = tmp_path / "m"
    shutil.copytree(tiny_corpus / "manifests", manifests)
    rows = jsonl(manifests / "recordings_test.jsonl.gz")
    rows[1]["sources"][0]["source"] = "/nonexistent/audio.wav"
    with gzip.open(manifests / "recordings_test.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    proc = run_asrtools(["data", "validate", str(manifests)], check=False)
    assert_one_line_error(proc, rows[1]["id"], "missing file /nonexistent/audio.wav")
    (manifests / "supervisions_train.jsonl.gz").write_bytes(b"not gzip at all")
    proc = run_asrtools(["data", "validate", str(manifests), "--no-audio-check"], check=False)
    assert proc.returncode == 1 and "asrtools: error:" in proc.stderr


def test_bpe_model_has_reserved_ids(tiny_corpus):
    from asrtools.text.tokenizer import Tokenizer

    tok = Tokenizer(tiny_corpus / "lang_bpe" / "bpe.model")
    assert tok.blank_id == 0 and tok.sp.id_to_piece(0) == "<blk>"
    assert (tok.sot_id, tok.eot_id) == (3, 4)
    text = jsonl(tiny_corpus / "manifests" / "supervisions_train.jsonl.gz")[0]["text"]
    assert tok.decode(tok.encode([text])) == [text]
