"""sclite parity: our `sclite` mode against the real NIST sclite (`sctk sclite`) on generated cases.

Per utterance (#C #S #D #I from sclite's pralign), per speaker and Sum (raw counts from
rsum), and the `.sys` percentage tables (Sum/Avg, Mean, S.D., Median) must agree.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from asrtools.scoring.io import load_pairs
from asrtools.scoring.normalize import TextNormalizer
from asrtools.scoring.report import write_wer_dir
from asrtools.scoring.wer import WerReport, score_pairs

pytestmark = pytest.mark.skipif(
    shutil.which("sctk") is None, reason="NIST sclite not installed (Debian package 'sctk' provides `sctk sclite`)"
)

# sclite gives meaning to '(', ')', '@', ';', '{', '}', '/' and a trailing '*': keep them out.
ASCII_VOCAB = ["a", "b", "c", "the", "cat", "sat", "on", "mat", "x-ray", "it's"]
UNICODE_VOCAB = ["é", "École", "日本", "語", "naïve", "Straße", "ünï"]


def _case(rng: random.Random) -> Tuple[List[str], List[str]]:
    vocab = rng.choice([ASCII_VOCAB[:2], ASCII_VOCAB[:3], ASCII_VOCAB, UNICODE_VOCAB, ASCII_VOCAB + UNICODE_VOCAB])
    ref = [rng.choice(vocab) for _ in range(rng.randint(0, 14))]
    kind = rng.random()
    if kind < 0.08:
        hyp: List[str] = []  # empty hypothesis
    elif kind < 0.16:
        hyp = ref + [rng.choice(vocab) for _ in range(rng.randint(4, 12))]  # long insertion run
    elif kind < 0.24:
        hyp = ref[rng.randint(0, len(ref)) :]  # long deletion run at the start
    elif kind < 0.3:
        hyp = [w.upper() if rng.random() < 0.5 else w for w in ref]  # case differences
    else:
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 14))]
    if rng.random() < 0.05:
        ref = []  # empty reference
    return ref, hyp


def _write_trn(path: Path, rows: List[Tuple[str, List[str]]]) -> None:
    path.write_text("".join(f"{' '.join(words)} ({utt})\n" for utt, words in rows), encoding="utf-8")


def _run_sclite(ref: Path, hyp: Path, out: Path, case_sensitive: bool) -> None:
    out.mkdir()
    cmd = ["sctk", "sclite", "-r", str(ref), "trn", "-h", str(hyp), "trn", "-i", "rm",
           "-o", "sum", "rsum", "pralign", "-O", str(out), "-f", "0"]
    if case_sensitive:
        cmd.append("-s")
    subprocess.run(cmd, check=True, capture_output=True)


def _parse_table(path: Path) -> Dict[str, List[float]]:
    """`{row label: [snt, wrd, corr, sub, del, ins, err, serr]}` of an sclite-style summary table."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        cells = (parts[2] + " " + parts[3]).replace("*", " ").replace("+", " ").split()
        try:
            values = [float(c) for c in cells]
        except ValueError:
            continue  # header
        if len(values) == 8:
            rows[parts[1].strip()] = values
    return rows


def _parse_pralign(path: Path) -> Dict[str, Tuple[int, ...]]:
    scores = {}
    utt = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"id: \((.*)\)$", line)
        if match:
            utt = match.group(1)
        match = re.match(r"Scores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)", line)
        if match:
            scores[utt] = tuple(int(x) for x in match.groups())
    return scores


def _compare(report: WerReport, sclite_dir: Path, ours_dir: Path, lowercase_ids: bool) -> None:
    key = str.lower if lowercase_ids else str
    theirs = _parse_pralign(sclite_dir / "hyp.trn.pra")
    assert len(theirs) == len(report.utterances)
    counts = report.counts_array()
    for utt, row in zip(report.utterances, counts.tolist()):
        assert theirs[key(utt.id)] == tuple(row), (utt.id, utt.alignment)
    raw = _parse_table(sclite_dir / "hyp.trn.raw")
    for speaker, c in report.by_speaker().items():
        assert raw[key(speaker)] == [c.sents, c.words, c.corr, c.sub, c.del_, c.ins, c.err, c.sent_err], speaker
    t = report.total
    assert raw["Sum"] == [t.sents, t.words, t.corr, t.sub, t.del_, t.ins, t.err, t.sent_err]
    write_wer_dir(report, ours_dir, {})
    ours_sys = _parse_table(ours_dir / "wer.sys")
    their_sys = _parse_table(sclite_dir / "hyp.trn.sys")
    for label in ("Sum/Avg", "Mean", "S.D.", "Median"):
        assert ours_sys[label] == pytest.approx(their_sys[label], abs=0.051), label


def test_sclite_mode_matches_sclite_exactly(tmp_path: Path) -> None:
    rng = random.Random(2024)
    refs, hyps = [], []
    for n in range(1200):
        speaker = f"spk{n % 13}" if n % 97 else "solo"
        ref, hyp = _case(rng)
        refs.append((f"{speaker}-utt{n:05d}", ref))
        hyps.append((f"{speaker}-utt{n:05d}", hyp))
    hyps.reverse()  # sclite matches by id, so order must not matter
    _write_trn(tmp_path / "ref.trn", refs)
    _write_trn(tmp_path / "hyp.trn", hyps)
    _run_sclite(tmp_path / "ref.trn", tmp_path / "hyp.trn", tmp_path / "sclite", case_sensitive=True)
    report = score_pairs(load_pairs(tmp_path / "ref.trn", tmp_path / "hyp.trn"), "sclite")
    _compare(report, tmp_path / "sclite", tmp_path / "ours", lowercase_ids=False)


def test_sclite_default_case_folding_equals_lower_normalisation(tmp_path: Path) -> None:
    rng = random.Random(5)
    vocab = ["a", "A", "b", "B", "Cat", "cAT", "dog"]
    rows = [(f"S{n % 4}-u{n}", [rng.choice(vocab) for _ in range(rng.randint(0, 10))]) for n in range(300)]
    hyps = [(utt, [rng.choice(vocab) for _ in range(rng.randint(0, 10))]) for utt, _ in rows]
    _write_trn(tmp_path / "ref.trn", rows)
    _write_trn(tmp_path / "hyp.trn", hyps)
    _run_sclite(tmp_path / "ref.trn", tmp_path / "hyp.trn", tmp_path / "sclite", case_sensitive=False)
    pairs = load_pairs(tmp_path / "ref.trn", tmp_path / "hyp.trn")
    report = score_pairs(pairs, "sclite", TextNormalizer(lower=True))
    _compare(report, tmp_path / "sclite", tmp_path / "ours", lowercase_ids=True)
