"""egs/synth/sv/run.sh end to end on a tiny corpus: trials -> baseline and an ARW variant ->
embeddings -> scores -> metrics -> RESULTS.md, then a rerun that does nothing."""
from __future__ import annotations

import json
import subprocess

from conftest import REPO, needs_tts, run_asrtools

RUN_SH = REPO / "egs" / "synth" / "sv" / "run.sh"


@needs_tts
def test_sv_recipe_runs_end_to_end_and_is_up_to_date_on_rerun(tmp_path):
    data, exp = tmp_path / "data", tmp_path / "exp"
    # The tiny preset has one dev speaker; a dev EER needs two.
    run_asrtools(["data", "synth", "--preset", "tiny", "--set", "dev_speakers_per_accent=1",
                  "--set", "test_speakers_per_accent=2", "--out-dir", str(data / "synth"), "-j", "2"])
    run_asrtools(["data", "manifests", "--corpus-dir", str(data / "synth"), "--out-dir", str(data / "manifests")])
    run_asrtools(["data", "features", "--manifest-dir", str(data / "manifests"), "--out-dir", str(data / "fbank")])
    args = [str(RUN_SH), "--stage", "3", "--data", str(data), "--exp", str(exp), "--systems", "baseline pw",
            "--train-set", "num_epochs=1 crop.batch_size=6 arw.warmup_steps=1 arw.num_clusters=2 "
                           "arw.kmeans_buffer=16 tensorboard=false",
            "--bootstrap", "20", "--reference", "none",
            "--results-md", str(exp / "RESULTS.md")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (exp / "RESULTS.md").read_text()
    assert "| baseline (baseline) |" in page and "| pw |" in page and "Relative change vs `baseline`" in page
    results = json.loads((exp / "results" / "results.json").read_text())
    assert [r["name"] for r in results["rows"]] == ["baseline", "pw"]
    assert results["rows"][1]["provenance"]["arw"] == "pw"
    # which epoch the averaged model came from and how many ARW steps it had seen
    selection = results["rows"][1]["provenance"]["selection"]
    assert selection["selected_epochs"] == [1] and selection["arw_steps"][0] > 0
    assert results["rows"][0]["provenance"]["selection"]["arw_steps"] is None
    assert "## Checkpoint selection" in page and f"| pw | 1 (of 1) | {selection['arw_steps'][0]} |" in page
    for row in results["rows"]:  # metric names with a dot (mindcf_0.01) are found too
        overall = json.loads((exp / row["name"] / "sv_test" / "sv.json").read_text())["overall"]
        assert row["metrics"]["mindcf"]["value"] == overall["mindcf_0.01"]["value"]
        assert row["metrics"]["mindcf"]["ci"] == overall["mindcf_0.01"]["ci"]
    for system in ("baseline", "pw"):
        assert (exp / system / "sv_test" / "det_gender.png").is_file()
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "running" not in rerun.stderr and rerun.stderr.count("up to date") >= 8
