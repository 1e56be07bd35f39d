"""End-to-end `asrtools score wer|cohorts|compare` on a small generated recogs.jsonl."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import List

import numpy as np
import pytest
from click.testing import CliRunner, Result

from asrtools.cli import cli
from asrtools.scoring.simulate import SimulationDesign, simulate_set

REGIONS = {"north": 0.08, "south": 0.12, "east": 0.25, "west": 0.10}


def _recogs(path: Path, seed: int, east_factor: float = 1.0, null_hyp: bool = False) -> Path:
    """24 speakers (4 regions x 2 genders x 3), 6 utterances each; east has the most errors.

    References depend only on the speaker and utterance (so two systems share them); the
    hypotheses' errors are drawn with `seed`.
    """
    vocab = [f"w{i}" for i in range(200)]
    noise = random.Random(seed)
    lines = []
    for s in range(24):
        region, gender = list(REGIONS)[s % 4], ("female", "male")[(s // 4) % 2]
        rate = REGIONS[region] * (east_factor if region == "east" else 1.0)
        words = random.Random(s)
        for u in range(6):
            ref = [words.choice(vocab) for _ in range(words.randint(6, 14))]
            hyp = []
            for word in ref:
                draw = noise.random()
                if draw < rate * 0.6:
                    hyp.append(noise.choice(vocab))
                elif draw >= rate:
                    hyp.append(word)
            record = {"id": f"spk{s:02d}-utt{u}", "speaker": f"spk{s:02d}", "ref": " ".join(ref),
                      "hyp": " ".join(hyp), "custom": {"region": region, "gender": gender, "lat": 50.0 + s}}
            if null_hyp and s == 0 and u == 0:
                record["hyp"] = None
            lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(args: List[str], ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, ["score", *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_wer_cohorts_compare_end_to_end(tmp_path: Path) -> None:
    rec_a = _recogs(tmp_path / "a.jsonl", seed=1)
    rec_b = _recogs(tmp_path / "b.jsonl", seed=2, east_factor=0.3)

    wer_dir = tmp_path / "exp" / "wer_a"
    _run(["wer", "--ref", str(rec_a), "--mode", "sclite", "--out-dir", str(wer_dir)])
    doc = json.loads((wer_dir / "wer.json").read_text())
    utts = [json.loads(line) for line in (wer_dir / "utts.jsonl").read_text().splitlines()]
    assert len(utts) == 144 and len(doc["speakers"]) == 24
    assert doc["total"]["err"] == sum(u["err"] for u in utts) > 0
    assert utts[0]["custom"]["region"] == "north"
    for name in ("errs.txt", "wer.sys", "ref.trn", "hyp.trn"):
        assert (wer_dir / name).stat().st_size > 0
    marker = (wer_dir / ".done.json").stat().st_mtime_ns
    again = _run(["wer", "--ref", str(rec_a), "--mode", "sclite", "--out-dir", str(wer_dir)])
    assert again.stdout.startswith("%WER ") and (wer_dir / ".done.json").stat().st_mtime_ns == marker  # up to date

    common = ["--by", "region", "--by", "gender", "--by", "region,gender", "--bootstrap", "200", "--seed", "3"]
    c1, c2 = tmp_path / "exp" / "cohorts1", tmp_path / "exp" / "cohorts2"
    _run(["cohorts", "--recogs", str(wer_dir), *common, "--out-dir", str(c1)])
    _run(["cohorts", "--recogs", str(rec_a), "--mode", "sclite", *common, "--out-dir", str(c2)])
    for name in ("cohorts.csv", "cohorts.md", "wer_by_region.png", "wer_by_region+gender.png"):
        assert (c1 / name).read_bytes() == (c2 / name).read_bytes(), name  # same seed, same numbers
    report = json.loads((c1 / "cohorts.json").read_text())
    scored_directly = json.loads((c2 / "cohorts.json").read_text())
    assert report.pop("params")["mode"] == "levenshtein" and scored_directly.pop("params")["mode"] == "sclite"
    assert report == scored_directly
    assert report["schema"] == "asrtools.cohorts" and report["version"] == 2
    region = report["groupings"][0]
    assert region["by"] == ["region"] and region["cohorts"][0]["cohort"] == "east"
    assert region["disparity"]["worst"] == "east"
    low, high = region["cohorts"][0]["ci_speaker"]
    assert low < region["cohorts"][0]["wer"] < high
    joint = report["groupings"][2]["cohorts"]
    assert all(c["flags"] for c in joint)  # 3 speakers each < --min-speakers 5
    rows = list(csv.DictReader((c1 / "cohorts.csv").open()))
    assert rows[0]["cohort"] == "all" and len(rows) == 1 + 4 + 2 + 8
    assert (c1 / "wer_by_gender.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## By region,gender" in (c1 / "cohorts.md").read_text()

    cmp_dir = tmp_path / "exp" / "compare"
    _run(["compare", "--a", str(wer_dir), "--b", str(rec_b), "--mode", "sclite", "--name-a", "base",
          "--name-b", "fixed", "--by", "region", "--bootstrap", "300", "--out-dir", str(cmp_dir)])
    comparison = json.loads((cmp_dir / "compare.json").read_text())
    assert comparison["schema"] == "asrtools.compare" and comparison["systems"] == {"a": "base", "b": "fixed"}
    east = next(c for c in comparison["groupings"][0]["cohorts"] if c["cohort"] == "east")
    assert east["diff"] < 0 and east["significant"] and east["verdict"] == "better"
    assert "east" in comparison["groupings"][0]["changed"]
    assert (cmp_dir / "compare_by_region.png").stat().st_size > 0
    assert "Changed significantly:" in (cmp_dir / "compare.md").read_text()


def test_cohort_map_and_missing_policy(tmp_path: Path) -> None:
    recogs = _recogs(tmp_path / "r.jsonl", seed=4, null_hyp=True)
    out = tmp_path / "wer"
    failed = _run(["wer", "--ref", str(recogs), "--out-dir", str(out)], ok=False)
    assert failed.exit_code == 1 and "r.jsonl:1: utterance 'spk00-utt0' has no 'hyp'" in failed.output
    _run(["wer", "--ref", str(recogs), "--allow-missing", "--out-dir", str(out)])
    doc = json.loads((out / "wer.json").read_text())
    assert doc["missing_hyp"] == {"count": 1, "ids": ["spk00-utt0"]}

    mapping = tmp_path / "map.txt"
    mapping.write_text("".join(f"spk{s:02d} {'early' if s < 12 else 'late'}\n" for s in range(24)))
    cohorts = tmp_path / "cohorts"
    _run(["cohorts", "--recogs", str(out), "--cohort-map", str(mapping), "--bootstrap", "50",
          "--out-dir", str(cohorts)])
    labels = {c["cohort"] for c in json.loads((cohorts / "cohorts.json").read_text())["groupings"][0]["cohorts"]}
    assert labels == {"early", "late"}
    missing_by = _run(["cohorts", "--recogs", str(out), "--out-dir", str(tmp_path / "x")], ok=False)
    assert missing_by.exit_code == 1 and "give at least one --by field" in missing_by.output


@pytest.mark.parametrize("command", ["wer", "cohorts", "compare"])
def test_help_has_example(command: str) -> None:
    assert "Example: asrtools score " + command in _run([command, "--help"]).output


def test_cohort_map_with_other_speaker_ids_is_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim = simulate_set(SimulationDesign(n_cohorts=2, speakers_per_cohort=6, utterances_per_speaker=3),
                       np.random.default_rng(0))
    recogs = tmp_path / "recogs.jsonl"
    recogs.write_text("\n".join(sim.recogs_lines()) + "\n")
    pairs = sim.speaker_cohorts()  # speaker ids like c0-spk0
    underscored = tmp_path / "underscored.txt"
    underscored.write_text("".join(f"{spk.replace('-', '_')} {cohort}\n" for spk, cohort in pairs))
    out = tmp_path / "cohorts"
    failed = _run(["cohorts", "--recogs", str(recogs), "--cohort-map", str(underscored), "--bootstrap", "0",
                   "--permutations", "0", "--out-dir", str(out)], ok=False)
    assert failed.exit_code == 1
    message = failed.output.strip().splitlines()[-1]
    assert message.startswith("asrtools: error: ") and "covers 0 of 12 scored speakers" in message
    assert "c0-spk0" in message and "c0_spk0" in message and "'-', '_' and '.' are ignored" in message
    assert not (out / "cohorts.json").exists()

    partial = tmp_path / "partial.txt"  # 9 of 12 speakers: scored, with the others named in a warning
    partial.write_text("".join(f"{spk} {cohort}\n" for spk, cohort in pairs[:9]))
    done = _run(["cohorts", "--recogs", str(recogs), "--cohort-map", str(partial), "--bootstrap", "0",
                 "--permutations", "0", "--out-dir", str(tmp_path / "partial")])
    assert done.exit_code == 0 and "3 scored speaker(s) are not in" in caplog.text and "c1-spk3" in caplog.text
    labels = {c["cohort"] for c in json.loads((tmp_path / "partial" / "cohorts.json").read_text())["groupings"][0]["cohorts"]}
    assert labels == {"c0", "c1", "(missing)"}
