"""WER alignment: hand-checked cases, jiwer parity (levenshtein mode), normalisation, WER dirs."""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import List, Tuple

import jiwer
import numpy as np
import pytest

from asrtools.scoring.dp import align_batch
from asrtools.scoring.normalize import TextNormalizer, read_glm
from asrtools.scoring.report import read_wer_dir, write_wer_dir
from asrtools.scoring.wer import ErrorCounts, UttPair, align, align_many, score_pairs, speaker_of


def _random_pairs(rng: random.Random, n: int, vocab: List[str], max_len: int = 12) -> List[Tuple[List[str], List[str]]]:
    """Adversarial pairs: tiny vocabularies (many repeats and ties), runs of insertions/deletions."""
    pairs = []
    for _ in range(n):
        words = vocab[: rng.choice([2, 3, len(vocab)])]
        ref = [rng.choice(words) for _ in range(rng.randint(1, max_len))]
        kind = rng.random()
        if kind < 0.1:
            hyp = ref + [rng.choice(words) for _ in range(rng.randint(3, 10))]  # long insertion run
        elif kind < 0.2:
            hyp = ref[: rng.randint(0, len(ref) // 2)]  # long deletion run
        else:
            hyp = [rng.choice(words) for _ in range(rng.randint(0, max_len))]
        pairs.append((ref, hyp))
    return pairs


def test_align_hand_checked_example() -> None:
    ali = align("the cat sat on the mat".split(), "the cat sat on mat mat too".split())
    assert ali.counts.sub + ali.counts.del_ + ali.counts.ins == 2
    assert ali.ops.count("C") == 5
    columns = ali.pairs()
    assert [c[2] for c in columns].count("I") + [c[2] for c in columns].count("S") >= 1
    assert [c[0] for c in columns if c[0] is not None] == "the cat sat on the mat".split()
    assert [c[1] for c in columns if c[1] is not None] == "the cat sat on mat mat too".split()


@pytest.mark.parametrize("mode", ["levenshtein", "sclite"])
def test_empty_sides(mode: str) -> None:
    assert align([], ["a", "b"], mode).ops == "II"
    assert align(["a", "b"], [], mode).ops == "DD"
    assert align([], [], mode).ops == ""
    counts = align([], ["a"], mode).counts
    assert counts.words == 0 and counts.ins == 1 and counts.wer is None


def test_sclite_mode_prefers_trailing_match_and_weights() -> None:
    # sclite keeps the last "a" (diagonal wins the tie at the end of the backtrace)
    assert align("a a a".split(), ["a"], "sclite").ops == "DDC"
    # a substitution (4) is cheaper than deletion + insertion (6) ...
    assert align(["a"], ["b"], "sclite").ops == "S"
    # ... but two substitutions (8) lose to one deletion + one insertion when a match is gained (6)
    assert align("x a".split(), "a y".split(), "sclite").counts.corr == 1


def test_levenshtein_equals_jiwer_counts_and_alignment() -> None:
    rng = random.Random(7)
    vocab = ["a", "b", "c", "d", "éé", "日本", "x-y", "Z"]
    pairs = _random_pairs(rng, 1500, vocab)
    alignments = align_many([r for r, _ in pairs], [h for _, h in pairs], "levenshtein")
    totals = np.zeros(4, dtype=np.int64)
    for (ref, hyp), ali in zip(pairs, alignments):
        out = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
        counts = ali.counts
        assert (counts.sub, counts.del_, counts.ins, counts.corr) == (
            out.substitutions, out.deletions, out.insertions, out.hits
        ), (ref, hyp, ali.ops)
        expected_ops = "".join(
            {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}[chunk.type]
            * max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)
            for chunk in out.alignments[0]
        )
        assert ali.ops == expected_ops
        totals += (counts.corr, counts.sub, counts.del_, counts.ins)
    corpus = jiwer.process_words([" ".join(r) for r, _ in pairs], [" ".join(h) for _, h in pairs])
    assert tuple(totals) == (corpus.hits, corpus.substitutions, corpus.deletions, corpus.insertions)


def test_batched_alignment_independent_of_batch_composition() -> None:
    rng = random.Random(3)
    pairs = _random_pairs(rng, 300, ["a", "b", "c"], max_len=30)
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    together = [a.ops for a in align_many(refs, hyps, "sclite")]
    alone = [align(r, h, "sclite").ops for r, h in pairs[:40]]
    assert together[:40] == alone
    # tiny memory budget: many small batches, same answer
    vocab = {w: i for i, w in enumerate("abc")}
    flat = lambda seqs: np.array([vocab[w] for s in seqs for w in s], dtype=np.int64)  # noqa: E731
    offsets = lambda seqs: np.concatenate([[0], np.cumsum([len(s) for s in seqs])])  # noqa: E731
    small = align_batch(flat(refs), offsets(refs), flat(hyps), offsets(hyps), "sclite", max_cells=500)
    assert [o.decode() for o in small] == together


def test_speaker_of_follows_sclite_rm_rule() -> None:
    assert speaker_of("spk1-utt-3") == "spk1"
    assert speaker_of("spk2_utt3") == "spk2"
    assert speaker_of("noseparator") == "noseparator"


def test_normalizer_steps_and_glm(tmp_path: Path) -> None:
    glm = tmp_path / "rules.glm"
    glm.write_text("# comment\nGONNA => going to\nuh =>\nnew york => newyork\nnew => fresh\n")
    norm = TextNormalizer.from_options(["lower", "punct"], glm)
    assert norm("Uh, I'm GONNA see New York's new... York!") == [
        "im", "going", "to", "see", "fresh", "yorks", "newyork"
    ]
    assert norm("new york") == ["newyork"]  # longest rule first
    assert TextNormalizer()("A, b.") == ["A,", "b."]  # nothing by default
    assert TextNormalizer(punct=True)("«Ça» va-t-il ?") == ["Ça", "vatil"]
    assert read_glm(glm)[0] == (("GONNA",), ("going", "to"))


def test_normalizer_rejects_bad_input(tmp_path: Path) -> None:
    from asrtools.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="unknown normalisation 'upper'"):
        TextNormalizer.from_options(["upper"])
    bad = tmp_path / "bad.glm"
    bad.write_text("ok => fine\nno arrow here\n")
    with pytest.raises(DataError, match=r"bad.glm:2: malformed rule"):
        read_glm(bad)


def test_report_counts_and_round_trip(tmp_path: Path) -> None:
    pairs = [
        UttPair("s1-a", "s1", "a b c d", "a x c", {"region": "north"}),
        UttPair("s1-b", "s1", "a a a", "a"),
        UttPair("s2-a", "s2", "x y z", "", missing_hyp=True),
        UttPair("s2-b", "s2", "", "p q"),
    ]
    report = score_pairs(pairs, "sclite")
    assert report.total == ErrorCounts(sents=4, words=10, hyp_words=6, corr=3, sub=1, del_=6, ins=2, sent_err=4)
    assert report.by_speaker()["s2"].to_dict()["err"] == 5
    assert report.missing_hyp == ["s2-a"]
    doc = write_wer_dir(report, tmp_path, {"ref": "r", "hyp": None})
    assert doc["schema"] == "asrtools.wer" and doc["version"] == 1
    assert doc["total"]["wer"] == pytest.approx(0.9)
    assert doc["top_errors"]["deletions"][0] == ["a", 2]
    again = read_wer_dir(tmp_path)
    assert again.total == report.total
    assert [u.alignment for u in again.utterances] == [u.alignment for u in report.utterances]
    assert again.utterances[0].custom == {"region": "north"}
    assert again.missing_hyp == ["s2-a"]
    errs = (tmp_path / "errs.txt").read_text()
    assert "REF:  A A a".lower() in errs.lower() and "HYP:  * * a" in errs
    assert "b ==> x" in errs
    sys_lines = (tmp_path / "wer.sys").read_text().splitlines()
    assert any(line.startswith("| Sum/Avg|") and " 90.0 " in line for line in sys_lines)
    assert (tmp_path / "hyp.trn").read_text().splitlines()[2] == " (s2-a)"


def test_very_long_utterances_follow_rapidfuzz_hirschberg(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(8)
    ref = [rng.choice("ab") for _ in range(2146)]
    hyp = [rng.choice("ab") for _ in range(2237)]  # > 2**22 cells: rapidfuzz splits (Hirschberg)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    counts = align(ref, hyp).counts
    assert (counts.sub, counts.del_, counts.ins) == (out.substitutions, out.deletions, out.insertions)
    monkeypatch.setitem(sys.modules, "rapidfuzz.distance", None)  # rapidfuzz unavailable
    fallback = align(ref, hyp).counts
    assert fallback.err == counts.err  # our own DP: the same minimum ...
    assert fallback.sub != counts.sub  # ... but here another split than Hirschberg's
