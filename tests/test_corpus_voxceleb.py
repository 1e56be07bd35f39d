"""VoxCeleb1: `asrtools data prepare voxceleb` (lhotse's VoxCeleb1 parser) on a fake corpus in the real
layout (tests/fake_corpora_voxceleb.py), the official trial list through `asrtools sv import-trials`,
and egs/voxceleb/sv end to end (features, a few training steps of a tiny baseline and ARW variant,
embeddings, scoring on the official trials, the results page by gender and nationality)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from lhotse import load_manifest

from fake_corpora_voxceleb import write_fake_voxceleb1
from tests.conftest import REPO, needs_tts, run_asrtools

pytestmark = needs_tts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_fake_voxceleb1(tmp_path_factory.mktemp("voxceleb"))


def _prepare(corpus: Path, out: Path, check: bool = True):
    return run_asrtools(["data", "prepare", "voxceleb", "--corpus-dir", str(corpus), "--out-dir", str(out),
                         "--option", "dev_speakers=2"], check=check)


def test_prepare_gives_splits_and_meta_attributes(corpus: Path, tmp_path: Path):
    out = tmp_path / "manifests"
    _prepare(corpus, out)
    rows = (out / "speakers.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["id", "split", "gender", "nationality"]
    table = {line.split(",")[0]: line.split(",") for line in rows[1:]}
    assert table["id10270"][1:4] == ["test", "female", "USA"]
    assert table["id10272"][1:4] == ["test", "male", "UK"]
    splits = {row[1] for row in table.values()}
    assert splits == {"train", "dev", "test"}
    assert sum(row[1] == "dev" for row in table.values()) == 2
    test = load_manifest(out / "supervisions_test.jsonl.gz")
    assert {s.speaker for s in test} == {"id10270", "id10271", "id10272", "id10273"}
    sup = next(s for s in test if s.speaker == "id10271")
    assert sup.gender == "male" and sup.custom == {"nationality": "UK"} and sup.text is None
    # recording ids are lhotse's speaker-video-utterance ids, which the trial import maps to
    first = (corpus / "veri_test2.txt").read_text().split()[1]
    assert first.replace("/", "-")[:-len(".wav")] in {s.id for s in test}
    assert "veri_test2.txt: 36 trials (24 target)" in (out / "notes.txt").read_text()
    # the toolkit's own balanced trials read the same manifests, grouped by the meta file's attributes
    run_asrtools(["sv", "trials", "--supervisions", str(out / "supervisions_test.jsonl.gz"), "--by", "gender",
                  "--by", "nationality", "--targets-per-speaker", "2", "--nontargets-per-speaker", "1",
                  "--out-dir", str(tmp_path / "trials")])
    stats = json.loads((tmp_path / "trials" / "trials.json").read_text())["stats"]
    assert set(stats["nationality"]) >= {"UK", "USA"} and stats["total"]["speakers"] == 4
    # a trial naming an utterance the manifests lack: one line with the list's line, nothing written
    bad_list = tmp_path / "bad_trials.txt"
    bad_list.write_text((corpus / "veri_test2.txt").read_text().splitlines()[0] + "\n"
                        "0 id10270/zzzzzzzzzzz/00009.wav " + first + "\n")
    proc = run_asrtools(["sv", "import-trials", "--list", str(bad_list), "--supervisions",
                         str(out / "supervisions_test.jsonl.gz"), "--out-dir", str(tmp_path / "bad")], check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"asrtools: error: {bad_list}:2: utterance id10270/zzzzzzzzzzz/00009.wav (id10270-zzzzzzzzzzz-00009) is not in")
    assert not (tmp_path / "bad" / "trials.txt").exists()


def test_recipe_trains_embeds_and_scores_on_the_official_trials(corpus: Path, tmp_path: Path):
    data, exp, results = tmp_path / "data", tmp_path / "exp", tmp_path / "RESULTS.md"
    cmd = [str(REPO / "egs" / "voxceleb" / "sv" / "run.sh"), "--corpus-dir", str(corpus), "--data", str(data),
           "--exp", str(exp), "--systems", "baseline pw", "--config-suffix", "_tiny", "--device", "cpu",
           "--dev-speakers", "2", "--nj", "1", "--bootstrap", "100", "--results-md", str(results)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    official = (corpus / "veri_test2.txt").read_text().splitlines()
    converted = (exp / "trials_veri_test2" / "trials.txt").read_text().splitlines()
    assert len(converted) == len(official) == 36
    label, enroll, test = official[0].split()
    assert converted[0] == f"{label} {enroll[:-4].replace('/', '-')} {test[:-4].replace('/', '-')}"
    for system in ("baseline", "pw"):
        summary = json.loads((exp / system / "train_summary.json").read_text())
        assert summary["steps"] == 3
        scores = (exp / system / "scores_test" / "scores.txt").read_text().splitlines()
        assert len(scores) == 36
        doc = json.loads((exp / system / "sv_test" / "sv.json").read_text())
        assert set(doc["groupings"]) == {"gender", "nationality"}
        assert set(doc["groupings"]["gender"]["groups"]) == {"female", "male"}
    # the ARW variant trained with adversarial weights from step 1: its scores differ from the baseline's
    assert (exp / "pw" / "scores_test" / "scores.txt").read_text() != \
        (exp / "baseline" / "scores_test" / "scores.txt").read_text()
    page = results.read_text()
    assert "| baseline (baseline) |" in page and "| pw |" in page
    assert "| nationality | UK |" in page and "| nationality | USA |" in page


def test_missing_trial_list_is_one_line_and_writes_nothing(corpus: Path, tmp_path: Path):
    broken = tmp_path / "VoxCeleb1"
    shutil.copytree(corpus, broken)
    (broken / "veri_test2.txt").unlink()
    out = tmp_path / "manifests"
    proc = _prepare(broken, out, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == f"asrtools: error: veri_test2.txt not found under {broken}"
    assert not out.exists() or [p.name for p in out.rglob("*") if not p.name.startswith(".lock")] == []


def test_listed_utterance_without_wav_is_one_line_and_writes_nothing(corpus: Path, tmp_path: Path):
    broken = tmp_path / "VoxCeleb1"
    shutil.copytree(corpus, broken)
    lines = (broken / "veri_test2.txt").read_text().splitlines()
    missing = lines[3].split()[2]
    (broken / "wav" / missing).unlink()
    out = tmp_path / "manifests"
    proc = _prepare(broken, out, check=False)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    first_use = next(n for n, line in enumerate(lines, 1) if missing in line.split())
    assert f"veri_test2.txt:{first_use}: utterance {missing} is not among the prepared utterances" in message
    assert not out.exists() or [p.name for p in out.rglob("*") if not p.name.startswith(".lock")] == []
