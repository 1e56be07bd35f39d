"""egs/synth/fairness/run.sh stages 5-9 on fabricated inputs (seconds): a user's embedding file,
the three discoveries cross-fitted and dev-test on fabricated decodes with a planted high-WER
region, and RESULTS.md built from their artifacts. Stages 0-4 are the corpus and the ASR
baseline's commands (tested with their own recipes); the TTS corpus preset is too large and the
tiny one too small (no dev speakers, 9 test speakers) for a discovery to mean anything."""
from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
from lhotse import CutSet, MonoCut, SupervisionSegment

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "synth" / "fairness"
REGIONS = ["north", "south", "east", "west"]


def _speaker_rows(rng: np.random.Generator):
    rows = []
    for i in range(90):
        split = "dev" if i < 30 else "test"
        region = REGIONS[i % 4]
        lat, lon = rng.uniform(0, 10), rng.uniform(0, 10)
        rows.append({"id": f"f{i:04d}", "split": split, "engine": "espeak-ng", "voice": "en", "accent": region,
                     "region": region, "gender": "female" if i % 2 else "male", "lat": f"{lat:.4f}",
                     "lon": f"{lon:.4f}", "zip": f"Z{i % 12:02d}", "channel": "close"})
    return rows


def fabricate(root: Path) -> dict:
    """speakers.csv, zipcodes.csv, cut manifests, greedy decodes (dev, test) and an embedding file."""
    rng = np.random.default_rng(0)
    synth, fbank = root / "data" / "synth", root / "data" / "fbank"
    synth.mkdir(parents=True)
    fbank.mkdir(parents=True)
    rows = _speaker_rows(rng)
    with open(synth / "speakers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(synth / "zipcodes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["zip", "region", "lat", "lon", "urbanicity", "income_band", "majority_language_share",
                         "median_age", "population"])
        for z in range(12):
            writer.writerow([f"Z{z:02d}", REGIONS[z % 4], 5.0, 5.0, "rural" if z % 3 else "urban", "middle",
                             0.5 + z / 30, 30 + z, 1000 * (z + 1)])
    embeddings = {}
    for split in ("dev", "test"):
        cuts, recogs = [], []
        for row in (r for r in rows if r["split"] == split):
            hot = float(row["lat"]) > 6 and float(row["lon"]) > 6  # the planted high-WER region
            embeddings[row["id"]] = (rng.normal(size=8) + (4.0 if hot else 0.0)).tolist()
            for u in range(8):
                utt = f"{row['id']}-{u:03d}"
                words = ["W"] * 20
                hyp = [("X" if rng.random() < (0.45 if hot else 0.1) else w) for w in words]
                recogs.append({"id": utt, "utt_id": utt, "cut_id": utt, "speaker": row["id"], "ref": " ".join(words),
                               "hyp": " ".join(hyp), "gender": row["gender"],
                               "custom": {"accent": row["accent"], "region": row["region"]}})
                cuts.append(MonoCut(id=utt, start=0.0, duration=1.0, channel=0, supervisions=[
                    SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=1.0, text=" ".join(words),
                                       speaker=row["id"])]))
        CutSet.from_cuts(cuts).to_file(fbank / f"cuts_{split}.jsonl.gz")
        decode = root / "exp" / "lstm" / f"decode_{split}_greedy"
        decode.mkdir(parents=True)
        (decode / "recogs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recogs))
    (root / "embeddings.json").write_text(json.dumps(embeddings))
    (root / "cohorts.yaml").write_text("seed: 0\nmeasure: {folds: 3, n_permutations: 99, n_boot: 99}\n")
    return {"data": root / "data", "exp": root / "exp"}


def test_recipe_stages_5_to_9_build_the_page_from_discovery_artifacts(tmp_path):
    paths = fabricate(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--stage", "5", "--stop-stage", "9", "--data", str(paths["data"]),
         "--exp", str(paths["exp"]), "--asr-exp", str(tmp_path / "asr" / "lstm"), "--encoder",
         f"file:{tmp_path / 'embeddings.json'}", "--whisper", "false", "--mitigate", "false", "--cohorts-config", str(tmp_path / "cohorts.yaml"),
         "--results-md", str(results)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads((paths["exp"] / "embed_file" / "info.json").read_text())["speakers"] == 90
    for method in ("geo", "geodemographic", "auto"):
        for suffix, mode in (("", "crossfit"), ("_devtest", "dev-test")):
            cohorts = json.loads((paths["exp"] / "lstm" / f"cohorts_{method}{suffix}" / "cohorts.json").read_text())
            assert cohorts["mode"] == mode and cohorts["disjoint"] is True
    page = results.read_text()
    assert page.count("| lstm | crossfit: 60 spk") == 3 and page.count("| lstm | dev-test: 60 spk (discovery 30") == 3
    assert "## Comparison with the paper" in page and "## Provenance" in page
