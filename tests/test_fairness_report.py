"""The fairness results page (`asrtools.report.fairness`, `asrtools report fairness`) on fabricated
cohorts.json artifacts: the table's numbers, flags, in-sample columns, the paper comparison's
verdicts, provenance, and one-line errors for unusable artifacts."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from asrtools.errors import ConfigError, DataError
from asrtools.report.fairness import build_fairness_page, parse_run, read_run

from conftest import run_asrtools

PROVENANCE = {"asrtools": "0.1", "git_commit": "abcdef1234567890", "git_dirty": False, "python": "3.11.7",
              "torch": "2.9.1", "cpu": "Test CPU", "cpu_count": 2, "gpu": None, "threads": 1}


def _cohort(label: str, speakers: int, wer: float, flags: Optional[List[str]] = None) -> Dict[str, Any]:
    return {"label": label, "description": f"{label} region", "n_speakers": speakers, "n_utts": 32 * speakers,
            "n_words": 300 * speakers, "n_errors": int(300 * speakers * wer), "wer": wer, "wer_ci": [wer - 0.02, wer + 0.02],
            "flags": flags or [], "share_speakers": 0.0, "share_utts": 0.0, "share_errors": 0.0}


def _designated(rel_gap: float, ci, p: float) -> Dict[str, Any]:
    """The signed designated comparison as `SignedGap.to_dict()` writes it (a negative rel_gap: reversed)."""
    wer_top = 0.3 / (1 + rel_gap)
    gap = 0.3 - wer_top
    return {"bottom": "rank1", "top": "best", "n_speakers_bottom": 20, "n_speakers_top": 60, "wer_bottom": 0.3,
            "wer_top": wer_top, "abs_gap": gap, "abs_gap_ci": [gap - 0.05, gap + 0.05], "rel_gap": rel_gap,
            "rel_gap_ci": list(ci), "p_value": p, "alternative": "greater (bottom worse)", "level": 0.95}


def write_run(directory: Path, method: str, *, rel_gap: float = 0.5, ci=(0.3, 0.7), p: float = 0.001,
              share=(0.13, 0.13, 0.2), mode: str = "crossfit",
              drop: Optional[str] = None) -> Path:
    """A cohorts.json in the form `asrtools cohorts METHOD` writes, plus a done-marker with provenance."""
    directory.mkdir(parents=True)
    cohorts = [_cohort("rank1", 20, 0.3), _cohort("rank2", 130, 0.2), _cohort("rank3", 4, 0.1, ["speakers<5"])]
    document = {
        "method": method, "mode": mode, "params": {}, "cohorts": cohorts, "held_out": {},
        "designated": _designated(rel_gap, ci, p),
        "bottom_share": dict(zip(("speakers", "utterances", "errors"), share)),
        "in_sample": {}, "in_sample_cohorts": cohorts[:2],
        "in_sample_designated": _designated(rel_gap * 2, (rel_gap, rel_gap * 3), 0.0001),
        "in_sample_bottom_share": {"speakers": 0.05, "utterances": 0.05, "errors": 0.09},
        "disjoint": mode != "in-sample", "n_discovery_speakers": 154 if mode == "crossfit" else 52,
        "n_measurement_speakers": 154,
    }
    if drop:
        document.pop(drop)
    (directory / "cohorts.json").write_text(json.dumps(document))
    (directory / ".done.json").write_text(json.dumps({"provenance": PROVENANCE}))
    return directory


def _page(tmp_path: Path, **runs: Dict[str, Any]):
    specs = []
    for name, options in runs.items():
        method, system = name.split("_")
        specs.append(parse_run(f"{method}:{system}={write_run(tmp_path / name, method, **options)}"))
    return build_fairness_page([read_run(s) for s in specs], title="T", paper_system="lstm", command="cmd",
                               generated="2026-01-01 00:00 UTC")


def _row(page: str, start: str) -> List[str]:
    line = next(x for x in page.splitlines() if x.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_table_shows_held_out_and_in_sample_figures_sizes_and_flags(tmp_path):
    page, doc = _page(tmp_path, geo_lstm={"rel_gap": 0.25, "ci": (0.1, 0.4), "p": 0.004},
                      auto_whisper={"rel_gap": 0.05, "ci": (0.0, 0.2), "p": 0.3})
    geo = _row(page, "| geo | lstm |")
    assert geo[2] == "crossfit: 154 spk (discovery 154, disjoint)"
    assert geo[3] == "3: rank1 20, rank2 130, rank3 4†"
    assert geo[4:7] == ["25.0 [10.0, 40.0]", "0.004 *", "13.0 / 13.0 / 20.0"]
    assert geo[7:] == ["2: rank1 20, rank2 130", "50.0 [25.0, 75.0]", "< 0.001 *", "5.0 / 5.0 / 9.0"]
    auto = _row(page, "| auto | whisper |")
    assert auto[4:6] == ["5.0 [0.0, 20.0]", "0.300"]  # not significant: no star
    assert "| geo | lstm | crossfit | rank3 | rank3 region | 4 | 128 | 1200 | 120 | 10.00 | speakers<5 |" in page
    assert "in-sample" in page and "inflated by selection" in page
    assert "- asrtools 0.1 at git abcdef1" in page and "geo:lstm (crossfit), auto:whisper (crossfit)" in page
    assert doc["runs"][0]["held_out"]["significant"] and not doc["runs"][1]["held_out"]["significant"]
    assert doc["runs"][0]["held_out"]["share"] == {"speakers": 0.13, "utterances": 0.13, "errors": 0.2}


def test_a_reversed_held_out_comparison_shows_its_signed_interval(tmp_path):
    page, doc = _page(tmp_path, geodemographic_lstm={"rel_gap": -0.1, "ci": (-0.3, 0.05), "p": 0.9})
    row = _row(page, "| geodemographic | lstm |")
    assert row[4:6] == ["-10.0 [-30.0, 5.0] (reversed: top worse)", "0.900"]
    assert doc["runs"][0]["held_out"]["reversed"] and not doc["runs"][0]["held_out"]["significant"]
    assert doc["runs"][0]["held_out"]["abs_gap_ci"][0] < 0


def test_an_old_unsigned_designated_comparison_is_an_error(tmp_path):
    directory = write_run(tmp_path / "old", "geo")
    document = json.loads((directory / "cohorts.json").read_text())
    document["designated"] = {"abs_gap": 0.1, "disparity": {"p_value": 0.01, "rel_gap_ci": [0.0, 0.3]}}
    (directory / "cohorts.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="no signed interval / one-sided p-value"):
        read_run(parse_run(f"geo:lstm={directory}"))


def test_paper_comparison_verdicts_follow_the_intervals(tmp_path):
    # auto: the paper's 65.0% inside [40, 80]; geodemographic: 41.7% outside [5, 20]; CIs do not overlap
    page, _ = _page(tmp_path, auto_lstm={"rel_gap": 0.6, "ci": (0.4, 0.8), "p": 0.001, "share": (0.1, 0.1, 0.2)},
                    geodemographic_lstm={"rel_gap": 0.1, "ci": (0.05, 0.2), "p": 0.04, "share": (0.3, 0.3, 0.35)})
    section = page.split("## Comparison with the paper")[1].split("## Sources")[0]
    assert "| automatic (embedding cohorts) | 65.0 | 10.0 | 60.0 [40.0, 80.0] | 0.001 * | 10.0 / 10.0 |" in section
    assert "| geodemographic | 41.7 | 0.8 | 10.0 [5.0, 20.0] | 0.040 * | 30.0 / 30.0 |" in section
    assert "the paper's 65.0% is inside our 95% CI: consistent with it" in section
    assert "the paper's 41.7% is outside our 95% CI: our gap differs from it significantly" in section
    assert "the 95% CIs do not overlap: the gaps differ significantly" in section
    assert "here 60.0% vs 10.0%" in section


def test_paper_comparison_with_overlapping_intervals_claims_no_difference(tmp_path):
    page, _ = _page(tmp_path, auto_lstm={"rel_gap": 0.3, "ci": (0.1, 0.5)},
                    geodemographic_lstm={"rel_gap": 0.2, "ci": (0.0, 0.4), "p": 0.2})
    assert "the 95% CIs overlap, so this check does not show the gaps differ" in page
    assert "our held-out gap is 20.0% (not significant at 0.05)" in page


def test_paper_comparison_uses_only_crossfit_runs_of_the_paper_system(tmp_path):
    page, _ = _page(tmp_path, auto_whisper={}, geo_lstm={})
    assert "No crossfit auto or geodemographic run of system 'lstm'" in page


@pytest.mark.parametrize("spec,message", [
    ("auto=exp/x", "expected METHOD:SYSTEM=DIR"),
    ("auto:lstm", "expected METHOD:SYSTEM=DIR"),
    ("kmeans:lstm=exp/x", "unknown method 'kmeans'"),
])
def test_bad_run_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_run(spec)


def test_unusable_artifacts_are_errors_naming_the_file(tmp_path):
    write_run(tmp_path / "a", "auto", drop="in_sample_designated")
    with pytest.raises(DataError, match=r"a/cohorts.json: no field 'in_sample_designated'"):
        read_run(parse_run(f"auto:lstm={tmp_path / 'a'}"))
    write_run(tmp_path / "g", "geo")
    with pytest.raises(DataError, match="made by `cohorts geo`, but given as auto:lstm"):
        read_run(parse_run(f"auto:lstm={tmp_path / 'g'}"))
    with pytest.raises(DataError, match="cannot read"):
        read_run(parse_run(f"auto:lstm={tmp_path / 'none'}"))


def test_cli_writes_the_page_as_a_stage(tmp_path):
    auto = write_run(tmp_path / "auto", "auto", rel_gap=0.6, ci=(0.4, 0.8))
    devtest = write_run(tmp_path / "auto_dt", "auto", mode="dev-test", rel_gap=0.2, ci=(-0.1, 0.5), p=0.2)
    out = tmp_path / "RESULTS.md"
    args = ["report", "fairness", "--run", f"auto:lstm={auto}", "--run", f"auto:lstm={devtest}",
            "--out", str(out), "--out-dir", str(tmp_path / "results")]
    run_asrtools(args)
    page = out.read_text()
    assert page == (tmp_path / "results" / "results.md").read_text()
    assert "dev-test: 154 spk (discovery 52, disjoint)" in page and "60.0 [40.0, 80.0]" in page
    assert json.loads((tmp_path / "results" / "results.json").read_text())["runs"][1]["mode"] == "dev-test"
    assert "up to date" in run_asrtools(args).stderr
    proc = run_asrtools(["report", "fairness", "--run", f"auto:lstm={tmp_path / 'missing'}", "--out", str(out),
                         "--out-dir", str(tmp_path / "r2")], check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("asrtools: error:")


def test_paper_comparison_of_a_reversed_gap_uses_its_signed_interval(tmp_path):
    page, _ = _page(tmp_path, geodemographic_lstm={"rel_gap": -0.1, "ci": (-0.3, 0.05), "p": 0.9})
    assert "the paper's 41.7% is outside our 95% CI: our gap differs from it significantly" in page


def _mitigation_row(name: str, overall: float, worst: float) -> Dict[str, Any]:
    return {"name": name, "method": name, "overall_wer": overall, "overall_ci": [overall - 0.01, overall + 0.01],
            "worst_cohort": "rank1", "worst_wer": worst, "max_wer": worst, "max_cohort": "rank1",
            "mean_wer": overall, "variance": 0.001, "rel_gap": 0.5, "rel_gap_ci": [0.2, 0.8], "gap_p": 0.001,
            "diff_overall": overall - 0.30, "p_overall": 0.2, "diff_worst": worst - 0.45, "p_worst_holm": 0.04,
            "changed_cohorts": [], "train_minutes": 2.5, "fisher_minutes": None, "steps": 250}


def test_mitigation_tables_come_from_results_json(tmp_path):
    from asrtools.report.fairness import read_mitigations

    directory = tmp_path / "results_geo"
    directory.mkdir()
    rows = [_mitigation_row("baseline", 0.30, 0.45), _mitigation_row("ewc_1000", 0.295, 0.41)]
    (directory / "results.json").write_text(json.dumps({"rows": rows}))
    spec = parse_run(f"geo:lstm={write_run(tmp_path / 'geo', 'geo')}")
    page, document = build_fairness_page([read_run(spec)], title="T", paper_system="lstm", command="cmd",
                                         generated="now", mitigations=[read_mitigations("geo", directory)])
    assert "## Mitigations, measured by geo cohorts" in page
    row = _row(page, "| ewc_1000 ")
    assert row[1] == "29.50" and row[2].startswith("41.00")
    assert document["mitigations"][0]["rows"] == rows
    with pytest.raises(DataError, match="no mitigation results"):
        read_mitigations("auto", tmp_path / "absent")


def test_page_shows_no_machine_paths(tmp_path, monkeypatch):
    """Run and mitigation directories given as absolute paths appear relative to the working directory
    (the recipe directory), in the page and its JSON twin, command line included."""
    from asrtools.report.fairness import read_mitigations

    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "exp" / "results_geo"
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps({"rows": [_mitigation_row("baseline", 0.30, 0.45)]}))
    run_dir = write_run(tmp_path / "exp" / "cohorts_geo", "geo")
    command = f"asrtools report fairness --run geo:lstm={run_dir} --out {tmp_path / 'RESULTS.md'}"
    page, document = build_fairness_page([read_run(parse_run(f"geo:lstm={run_dir}"))], title="T",
                                         paper_system="lstm", command=command, generated="now",
                                         mitigations=[read_mitigations("geo", directory)])
    for text in (page, json.dumps(document)):
        assert str(tmp_path) not in text and re.search(r"(?<![\w.])/(tmp|work|root|home)/", text) is None
    assert "- geo:lstm (crossfit): exp/cohorts_geo/cohorts.json" in page
    assert "--run geo:lstm=exp/cohorts_geo --out RESULTS.md" in page
