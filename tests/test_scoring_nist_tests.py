"""NIST's paired tests (MAPSSWE, sign, Wilcoxon, McNemar) against the real `sctk sc_stats`.

Generated system pairs are written as trn files, aligned by `sctk sclite` (SGML) and
compared by `sctk sc_stats -t std4` (details with -v, p-values with -u); the same files go
through `asrtools score`'s path (sclite-mode alignment, `compare_systems`). Everything
sc_stats prints must agree to its printed precision: segment counts, words and errors,
mean / SD / Z of the matched-pairs test, sign counts, Wilcoxon rank sums and Z, the McNemar
table, and every p-value. The one exception is documented in asrtools.scoring.significance:
for more than 20 discordant utterances sctk 2.4.10's McNemar p is wrong, and asrtools keeps
the exact binomial; there only the table is compared.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from asrtools.scoring.cohorts import UtteranceTable
from asrtools.scoring.disparity import Thresholds
from asrtools.scoring.compare import NistTests, compare_systems
from asrtools.scoring.io import load_pairs
from asrtools.scoring.wer import score_pairs

pytestmark = pytest.mark.skipif(
    shutil.which("sctk") is None, reason="NIST sctk not installed (Debian package 'sctk' provides sc_stats)"
)

VOCAB = "a b c d e f g h i j k l".split()


def _corrupt(rng: random.Random, words: List[str], rate: float) -> List[str]:
    out = []
    for word in words:
        draw = rng.random()
        if draw < rate * 0.5:
            out.append(rng.choice(VOCAB))  # substitution
        elif draw < rate * 0.75:
            continue  # deletion
        elif draw < rate:
            out += [word, rng.choice(VOCAB)]  # insertion after the word
        else:
            out.append(word)
    if rng.random() < 0.06:
        out.append(rng.choice(VOCAB))  # trailing insertion
    if rng.random() < 0.06:
        out.insert(0, rng.choice(VOCAB))  # leading insertion
    return out


def _system_pair(seed: int, n_speakers: int, n_utts: int, rate_a: float, rate_b: float,
                 p_same: float) -> Tuple[List, List, List]:
    """Reference and two hypotheses; speaker 0's hypotheses are identical in A and B (ties)."""
    rng = random.Random(seed)
    names = [f"{chr(ord('z') - s)}spk{s}" for s in range(n_speakers)]  # not in sorted order
    ref, hyp_a, hyp_b = [], [], []
    for u in range(n_utts):
        speaker = u % n_speakers
        utt = f"{names[speaker]}-{u:04d}"
        words = [] if rng.random() < 0.04 else [rng.choice(VOCAB) for _ in range(rng.randint(1, 12))]
        a = _corrupt(rng, words, rate_a)
        b = a if speaker == 0 or rng.random() < p_same else _corrupt(rng, words, rate_b)
        ref.append((utt, words))
        hyp_a.append((utt, a))
        hyp_b.append((utt, b))
    return ref, hyp_a, hyp_b


def _write_trn(path: Path, rows: List[Tuple[str, List[str]]]) -> None:
    path.write_text("".join(f"{' '.join(words)} ({utt})\n" for utt, words in rows))


def _run_sc_stats(work: Path) -> Dict[str, str]:
    sgml = ""
    for name in ("A", "B"):
        subprocess.run(["sctk", "sclite", "-r", str(work / "ref.trn"), "trn", "-h", str(work / f"{name}.trn"), "trn",
                        "-i", "rm", "-n", name, "-o", "sgml", "-O", str(work)], check=True, capture_output=True)
        sgml += (work / f"{name}.sgml").read_text()
    for flag in ("-v", "-u"):
        subprocess.run(["sctk", "sc_stats", "-p", "-t", "std4", flag, "-n", "result", "-O", str(work)],
                       input=sgml, text=True, check=True, capture_output=True)
    reports = {ext: (work / f"result.stats.{ext}").read_text() for ext in ("mapsswe", "sign", "wilc", "mcn", "unified")}
    return reports


def _unified_p(text: str) -> Dict[str, str]:
    """`{MP|SI|WI|MN: printed p}` from the composite report (row of the first system)."""
    found: Dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\|\s+(MP|SI|WI|MN)\s+\|\|.*?(<0\.001|\d\.\d{3})", line)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2)
    return found


def _printed_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ours(work: Path) -> NistTests:
    tables = [UtteranceTable.from_report(score_pairs(load_pairs(work / "ref.trn", work / f"{name}.trn"), "sclite"))
              for name in ("A", "B")]
    # sc_stats tests any number of speakers; the size floor is lowered to its minimum (2) to compare.
    return compare_systems(tables[0], tables[1], [], n_boot=0, thresholds=Thresholds(min_speakers=2)).overall.tests


CASES = [
    # seed, speakers, utterances, WER of A, WER of B, share of B's hypotheses copied from A
    (1, 6, 120, 0.15, 0.25, 0.0),
    (2, 9, 90, 0.20, 0.21, 0.3),
    (3, 12, 60, 0.10, 0.12, 0.5),
    (4, 5, 40, 0.30, 0.30, 0.7),
    (5, 8, 30, 0.20, 0.28, 0.6),
    (6, 15, 150, 0.25, 0.22, 0.2),
    (7, 4, 24, 0.15, 0.15, 0.8),
]


@pytest.mark.parametrize("seed,n_speakers,n_utts,rate_a,rate_b,p_same", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_nist_tests_equal_sc_stats(tmp_path: Path, seed: int, n_speakers: int, n_utts: int, rate_a: float,
                                   rate_b: float, p_same: float) -> None:
    ref, hyp_a, hyp_b = _system_pair(seed, n_speakers, n_utts, rate_a, rate_b, p_same)
    _write_trn(tmp_path / "ref.trn", ref)
    _write_trn(tmp_path / "A.trn", hyp_a)
    _write_trn(tmp_path / "B.trn", hyp_b)
    theirs = _run_sc_stats(tmp_path)
    ours = _ours(tmp_path)
    printed = _unified_p(theirs["unified"])

    mp = ours.mapsswe
    line = re.search(r"\(# segs: (\d+)\).*\(mean: (\S+)\) \(std dev: (\S+)\) \(Z Stat: (\S+)\)", theirs["mapsswe"])
    assert line is not None, theirs["mapsswe"][:2000]
    assert int(line.group(1)) == mp.n_segments
    assert (line.group(2), line.group(3), line.group(4)) == (f"{mp.mean:5.3f}", f"{mp.std:5.3f}", f"{mp.z:5.3f}")
    totals = re.search(r"Totals\s+(\d+)\s+(\d+)\s+(\d+)", theirs["mapsswe"])
    assert totals is not None and tuple(int(x) for x in totals.groups()) == (mp.ref_words, mp.errors_a, mp.errors_b)
    assert printed["MP"] == _printed_p(mp.p_value)

    si = ours.sign
    counts = {k: int(v) for k, v in re.findall(r"N\(([+\-0])\) = +(\d+)", theirs["sign"])}
    assert sorted((counts["+"], counts["-"])) == sorted((si.n_plus, si.n_minus)) and counts["0"] == si.n_ties
    assert si.n_plus + si.n_minus + si.n_ties <= 20  # sc_stats' binomial is right up to 20 speakers
    assert printed["SI"] == _printed_p(si.p_value)

    wi = ours.wilcoxon
    sums = sorted((int(n), float(s)) for n, s in re.findall(r"Sum of +(\d+) \w+ ranks = +([0-9.]+)", theirs["wilc"]))
    assert sums == sorted([(wi.n_plus, round(wi.rank_sum_plus, 1)), (wi.n_minus, round(wi.rank_sum_minus, 1))])
    z = re.search(r"Z statistic = +(-?[0-9.]+)", theirs["wilc"])
    assert z is not None and z.group(1) == f"{wi.z:4.2f}"
    assert printed["WI"] == _printed_p(wi.p_value)

    mn = ours.mcnemar
    table = re.search(r"corr +(\d+) +(\d+)\s+incorr +(\d+) +(\d+)", theirs["mcn"])
    assert table is not None
    assert tuple(int(x) for x in table.groups()) == (mn.both_right, mn.only_b_wrong, mn.only_a_wrong, mn.both_wrong)
    if mn.only_a_wrong + mn.only_b_wrong <= 20:
        assert printed["MN"] == _printed_p(mn.p_value)


def test_cases_exercise_what_matters() -> None:
    """The generated pairs include non-significant and significant results and small McNemar tables."""
    seen = {"moderate_mp": False, "small_mcnemar": False, "ties": False}
    for seed, n_speakers, n_utts, rate_a, rate_b, p_same in CASES:
        ref, hyp_a, hyp_b = _system_pair(seed, n_speakers, n_utts, rate_a, rate_b, p_same)
        discordant = sum((a != r) != (b != r) for (_, r), (_, a), (_, b) in zip(ref, hyp_a, hyp_b))
        seen["small_mcnemar"] |= 0 < discordant <= 20
        seen["ties"] |= p_same > 0.5
        seen["moderate_mp"] |= abs(rate_a - rate_b) < 0.02
    assert all(seen.values()), seen
