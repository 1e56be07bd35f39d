"""What a user scoring their own (Kaldi-style) data meets: speaker maps, utt2spk, case, size floor.

- `--cohort-map` is repeatable: `spk2<field>` files name their field, CSV speaker tables with a
  header give every column; speakers without a value are reported (log, cohorts.json/md), and
  their `(missing)` cohort is not tested.
- `--utt2spk` sets the speakers of trn/text inputs (instead of the id-prefix rule).
- An upper-case hypothesis against lower-case references gets one warning line with counts.
- Issue 28 item 9: cohorts of one speaker get no interval, no p-value and no verdict in
  `score compare` and `score cohorts`, and Holm counts only the cohorts tested.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Dict, List

import pytest
from click.testing import CliRunner, Result

from asrtools.cli import cli

VOCAB = [f"w{i}" for i in range(300)]


def _run(args: List[str], ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, ["score", *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _kaldi_pair(root: Path, speakers: Dict[str, float], seed: int, utts: int = 8, upper_hyp: bool = False) -> None:
    """`text` (references) and `hyp` (Kaldi text) with Kaldi ids `<spk>_u<k>`, plus `utt2spk`.

    Ids start with the speaker and an underscore, so the id-prefix rule would find the speaker
    too; the speakers here contain a `-` (`a-1`), which the prefix rule cuts (`a`).
    """
    root.mkdir(parents=True, exist_ok=True)
    noise = random.Random(seed)
    text, hyp, utt2spk = [], [], []
    for spk, rate in speakers.items():
        words = random.Random(spk)
        for u in range(utts):
            utt = f"{spk}_u{u}"
            ref = [words.choice(VOCAB) for _ in range(10)]
            out = [noise.choice(VOCAB) if noise.random() < rate else w for w in ref]
            text.append(f"{utt} {' '.join(ref)}")
            hyp.append(f"{utt} {' '.join(out).upper() if upper_hyp else ' '.join(out)}")
            utt2spk.append(f"{utt} {spk}")
    (root / "text").write_text("\n".join(text) + "\n")
    (root / "hyp").write_text("\n".join(hyp) + "\n")
    (root / "utt2spk").write_text("\n".join(utt2spk) + "\n")


def test_utt2spk_sets_speakers_and_case_mismatch_warns(tmp_path: Path) -> None:
    _kaldi_pair(tmp_path / "d", {"a-1": 0.1, "a-2": 0.1, "b-1": 0.2}, seed=0, upper_hyp=True)
    d = tmp_path / "d"
    result = _run(["wer", "--ref", str(d / "text"), "--hyp", str(d / "hyp"), "--utt2spk", str(d / "utt2spk"),
                   "--out-dir", str(tmp_path / "wer")])
    doc = json.loads((tmp_path / "wer" / "wer.json").read_text())
    assert sorted(doc["speakers"]) == ["a-1", "a-2", "b-1"]  # not "a", "b" from the id prefix
    total = doc["total"]
    assert total["wer"] == 1.0 and total["sub"] == 240  # every word differs, most only in case
    warnings = [line for line in result.output.splitlines() if "letter case" in line]
    assert len(warnings) == 1 and "--normalize lower" in warnings[0]
    case_only = 240 - sum(1 for ref, hyp in zip((d / "text").read_text().split(), (d / "hyp").read_text().split())
                          if ref.casefold() != hyp.casefold())
    assert f"{case_only} of 240 word errors" in warnings[0] and case_only > 150

    lower = _run(["wer", "--ref", str(d / "text"), "--hyp", str(d / "hyp"), "--utt2spk", str(d / "utt2spk"),
                  "--normalize", "lower", "--out-dir", str(tmp_path / "wer_lower")])
    total = json.loads((tmp_path / "wer_lower" / "wer.json").read_text())["total"]
    assert total["err"] == 240 - case_only and "letter case" not in lower.output

    # An utterance missing from utt2spk is named; no WER directory is left behind.
    lines = (d / "utt2spk").read_text().splitlines()
    (d / "utt2spk_short").write_text("\n".join(lines[1:]) + "\n")
    bad = _run(["wer", "--ref", str(d / "text"), "--hyp", str(d / "hyp"), "--utt2spk", str(d / "utt2spk_short"),
                "--out-dir", str(tmp_path / "wer_bad")], ok=False)
    assert bad.exit_code != 0 and "no speaker for scored utterance 'a-1_u0'" in bad.output
    assert not (tmp_path / "wer_bad" / "wer.json").exists()


def _recogs(path: Path, speakers: Dict[str, float], seed: int, utts: int = 10) -> Path:
    noise = random.Random(seed)
    lines = []
    for spk, rate in speakers.items():
        words = random.Random(spk)
        for u in range(utts):
            ref = [words.choice(VOCAB) for _ in range(12)]
            hyp = [noise.choice(VOCAB) if noise.random() < rate else w for w in ref]
            lines.append(json.dumps({"id": f"{spk}-u{u}", "speaker": spk, "ref": " ".join(ref),
                                     "hyp": " ".join(hyp)}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_several_cohort_maps_and_missing_attributes_are_reported(tmp_path: Path) -> None:
    speakers = {f"s{i:02d}": 0.05 + 0.02 * (i % 3) for i in range(12)}
    recogs = _recogs(tmp_path / "recogs.jsonl", speakers, seed=3)
    # Kaldi spk2accent: two speakers have none. CSV speaker table with a header: gender, age.
    (tmp_path / "spk2accent").write_text("".join(f"s{i:02d} {'north' if i % 2 else 'south'}\n" for i in range(10)))
    table = ["speaker,gender,age"] + [f"s{i:02d},{'f' if i < 6 else 'm'},{20 + i}" for i in range(12)]
    (tmp_path / "speakers.csv").write_text("\n".join(table) + "\n")
    out = tmp_path / "cohorts"
    result = _run(["cohorts", "--recogs", str(recogs), "--cohort-map", str(tmp_path / "spk2accent"),
                   "--cohort-map", str(tmp_path / "speakers.csv"), "--by", "accent", "--by", "gender",
                   "--bootstrap", "50", "--permutations", "50", "--min-words", "10", "--out-dir", str(out)])
    doc = json.loads((out / "cohorts.json").read_text())
    by = {g["by"][0]: g for g in doc["groupings"]}
    assert by["accent"]["missing_attributes"] == {"accent": {"count": 2, "speakers": ["s10", "s11"]}}
    assert by["gender"]["missing_attributes"] == {}
    accent = {c["cohort"]: c for c in by["accent"]["cohorts"]}
    assert set(accent) == {"north", "south", "(missing)"}
    assert accent["(missing)"]["n_speakers"] == 2 and accent["(missing)"]["not_tested"] == "too few speakers (2 < 5)"
    assert sorted(by["accent"]["disparity"]["cohorts"]) == ["north", "south"]  # (missing) never tested
    page = (out / "cohorts.md").read_text()
    assert "accent: 2 of 12 speakers have no value (s10, s11)" in page
    assert "by accent: accent: 2 of 12 speakers have no value (s10, s11)" in result.output
    csv_rows = (out / "cohorts.csv").read_text().splitlines()
    assert any(row.startswith("accent,(missing),") and "attribute missing" in row for row in csv_rows)

    # Without --by, each spk2* map is a grouping; two maps giving one field is an error.
    _run(["cohorts", "--recogs", str(recogs), "--cohort-map", str(tmp_path / "spk2accent"), "--bootstrap", "0",
          "--permutations", "0", "--out-dir", str(tmp_path / "auto")])
    assert [g["by"] for g in json.loads((tmp_path / "auto" / "cohorts.json").read_text())["groupings"]] == [["accent"]]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "spk2accent").write_text((tmp_path / "spk2accent").read_text())
    clash = _run(["cohorts", "--recogs", str(recogs), "--cohort-map", str(tmp_path / "spk2accent"),
                  "--cohort-map", str(tmp_path / "other" / "spk2accent"), "--out-dir", str(tmp_path / "clash")],
                 ok=False)
    assert clash.exit_code != 0 and "both give the field 'accent'" in clash.output


def test_one_speaker_cohorts_get_no_interval_p_value_or_verdict(tmp_path: Path) -> None:
    """Issue 28 item 9: two systems over cohorts of one speaker each, through the CLI."""
    speakers_a = {f"s{i}": 0.10 for i in range(6)}
    speakers_b = {f"s{i}": 0.10 + (0.08 if i % 2 else -0.04) for i in range(6)}
    a = _recogs(tmp_path / "a.jsonl", speakers_a, seed=1, utts=20)
    b = _recogs(tmp_path / "b.jsonl", speakers_b, seed=2, utts=20)
    (tmp_path / "spk2cohort").write_text("".join(f"s{i} c{i}\n" for i in range(6)))
    out = tmp_path / "compare"
    _run(["compare", "--a", str(a), "--b", str(b), "--cohort-map", str(tmp_path / "spk2cohort"),
          "--bootstrap", "200", "--out-dir", str(out)])
    doc = json.loads((out / "compare.json").read_text())
    grouping = doc["groupings"][0]
    assert grouping["by"] == ["cohort"] and len(grouping["cohorts"]) == 6
    assert grouping["n_tests"] == 0 and grouping["changed"] == []
    for cohort in grouping["cohorts"]:
        assert cohort["n_speakers"] == 1 and cohort["tested"] is False
        assert cohort["ci_diff"] == [None, None] and cohort["ci_a"] == [None, None]
        assert cohort["p_bootstrap"] is None and cohort["p_bootstrap_holm"] is None and cohort["tests"] is None
        assert cohort["verdict"] == "too few speakers (1 < 5)" and not cohort["significant"]
        assert cohort["diff"] is not None  # the difference itself is still shown
    overall = doc["overall"]  # six speakers: tested
    assert overall["tested"] and overall["p_bootstrap"] is not None and overall["ci_diff"][0] is not None
    page = (out / "compare.md").read_text()
    assert "too few speakers (1 < 5)" in page and "(0 cohort(s) tested, Holm over these)" in page
    assert "Not tested (fewer speakers than the size floor): c0, c1, c2, c3, c4, c5." in page

    # --min-speakers 1 does not bring them back: the floor never goes below 2 speakers.
    _run(["compare", "--a", str(a), "--b", str(b), "--cohort-map", str(tmp_path / "spk2cohort"), "--bootstrap",
          "200", "--min-speakers", "1", "--out-dir", str(tmp_path / "floor1")])
    floor1 = json.loads((tmp_path / "floor1" / "compare.json").read_text())["groupings"][0]
    assert floor1["n_tests"] == 0 and floor1["cohorts"][0]["verdict"] == "too few speakers (1 < 2)"

    # score cohorts on the same one-speaker cohorts: no intervals, no gap test.
    _run(["cohorts", "--recogs", str(a), "--cohort-map", str(tmp_path / "spk2cohort"), "--bootstrap", "100",
          "--permutations", "100", "--out-dir", str(tmp_path / "cohorts")])
    cohorts = json.loads((tmp_path / "cohorts" / "cohorts.json").read_text())["groupings"][0]
    assert all(c["ci_speaker"] == [None, None] and c["not_tested"] == "too few speakers (1 < 5)"
               for c in cohorts["cohorts"])
    assert cohorts["disparity"] is None
    assert "No gap test" in (tmp_path / "cohorts" / "cohorts.md").read_text()


def test_holm_counts_only_tested_cohorts(tmp_path: Path) -> None:
    """Two cohorts of 6 speakers and one of 1: Holm adjusts over two tests, not three."""
    names = [f"s{i:02d}" for i in range(13)]
    a = _recogs(tmp_path / "a.jsonl", {s: 0.10 for s in names}, seed=1, utts=12)
    b = _recogs(tmp_path / "b.jsonl", {s: (0.02 if i < 6 else 0.10) for i, s in enumerate(names)}, seed=2, utts=12)
    (tmp_path / "spk2group").write_text("".join(f"{s} {'x' if i < 6 else 'y' if i < 12 else 'z'}\n"
                                                for i, s in enumerate(names)))
    out = tmp_path / "compare"
    _run(["compare", "--a", str(a), "--b", str(b), "--cohort-map", str(tmp_path / "spk2group"),
          "--bootstrap", "300", "--out-dir", str(out)])
    cohorts = {c["cohort"]: c for c in json.loads((out / "compare.json").read_text())["groupings"][0]["cohorts"]}
    assert cohorts["z"]["tested"] is False and cohorts["z"]["p_bootstrap_holm"] is None
    p = sorted((cohorts[k]["p_bootstrap"], k) for k in ("x", "y"))
    assert cohorts[p[0][1]]["p_bootstrap_holm"] == pytest.approx(min(1.0, 2 * p[0][0]))  # 2 tests, not 3
    assert cohorts["x"]["verdict"] == "better"


def test_speaker_tables_and_utt2spk_errors_name_the_line(tmp_path: Path) -> None:
    from asrtools.errors import DataError
    from asrtools.scoring.io import read_speaker_attributes, read_utt2spk
    from asrtools.scoring.report import load_report

    (tmp_path / "speakers.tsv").write_text("region\tid\tage\nnorth\ts1\t30\n\ts2\t41\n")
    assert read_speaker_attributes(tmp_path / "speakers.tsv") == {"s1": {"region": "north", "age": "30"},
                                                                   "s2": {"age": "41"}}  # empty cell: unset
    (tmp_path / "bad.csv").write_text("id,gender\ns1,f\ns2,m,extra\n")
    with pytest.raises(DataError, match=r"bad.csv:3: 3 columns, the header has 2"):
        read_speaker_attributes(tmp_path / "bad.csv")
    (tmp_path / "spk2age.txt").write_text("s1 30\ns1 31\n")
    with pytest.raises(DataError, match=r"spk2age.txt:2: speaker 's1' mapped to '31' but to '30' on line 1"):
        read_speaker_attributes(tmp_path / "spk2age.txt")
    (tmp_path / "utt2spk").write_text("u1 s1\nu1 s2\n")
    with pytest.raises(DataError, match=r"utt2spk:2: duplicate utterance id 'u1'"):
        read_utt2spk(tmp_path / "utt2spk")

    # utt2spk overrides the speakers recogs.jsonl and WER directories carry.
    recogs = _recogs(tmp_path / "recogs.jsonl", {"x": 0.1, "y": 0.1}, seed=0, utts=2)
    (tmp_path / "utt2spk").write_text("x-u0 A\nx-u1 A\ny-u0 B\ny-u1 A\n")
    report = load_report(recogs, utt2spk=tmp_path / "utt2spk")
    assert [u.speaker for u in report.utterances] == ["A", "A", "B", "A"]
    _run(["wer", "--ref", str(recogs), "--out-dir", str(tmp_path / "wer")])
    again = load_report(tmp_path / "wer", utt2spk=tmp_path / "utt2spk")
    assert [u.speaker for u in again.utterances] == ["A", "A", "B", "A"]
