"""Cohort discovery (asrtools.fairness): planted effects are found, nulls are not, measurement is held out.

Simulated speaker tables: speakers uniform on a 10 x 10 lat/lon square, each with a speaker
error rate ~ Beta(20, 80) (mean 0.2) plus a planted excess for some speakers (a lat/lon
rectangle, a census attribute of their zip code, or an embedding cluster), ~200 reference
words and binomial word errors. The CLI tests write a tiny decode dir (recogs.jsonl), a
speakers.csv and a zipcodes.csv in tmp_path.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from asrtools.cli import cli
from asrtools.errors import DataError
from asrtools.fairness import auto, geo, geodemographic
from asrtools.fairness.config import AutoConfig, CohortsConfig, GeoConfig, GeodemographicConfig, MeasureConfig
from asrtools.fairness.crossfit import crossfit, dev_test, permutation_orders, refit_gaps, speaker_folds
from asrtools.fairness.discovery import discovery_from_dict, summarise_cohorts
from asrtools.fairness.geo import STOP_RULES, candidates
from asrtools.fairness.partition import SideLimits, best_split, split_p_value
from asrtools.fairness.speakers import SpeakerTable, table_from_counts
from asrtools.fairness.scan import ScanDiscovery, crossfit_gaps
from asrtools.fairness.study import discover, fitter
from asrtools.scoring.disparity import Thresholds
from asrtools.scoring.simulate import GeoDesign, simulate_geo_table
from conftest import run_asrtools

URBANICITY = ("rural", "suburban", "urban")
FAST = MeasureConfig(folds=5, n_permutations=199, n_boot=100, pipeline_permutations=99)


def _zip_table(n_zips: int = 30) -> Dict[str, Dict[str, object]]:
    rng = np.random.default_rng(123)
    return {f"Z{i:03d}": {"lat": float(rng.uniform(0, 10)), "lon": float(rng.uniform(0, 10)),
                          "urbanicity": URBANICITY[i % 3], "income_band": ("low", "high")[(i // 3) % 2],
                          "median_age": float(30 + (i * 7) % 25)} for i in range(n_zips)}


def _table(seed: int, n_speakers: int = 200, excess: Optional[np.ndarray] = None,
           vectors: Optional[np.ndarray] = None) -> SpeakerTable:
    """Speakers with coordinates, zip codes (30 zips) and optional embeddings; `excess` (S,) adds to the error rate."""
    rng = np.random.default_rng(seed)
    zips = _zip_table()
    codes = sorted(zips)
    lat, lon = rng.uniform(0, 10, n_speakers), rng.uniform(0, 10, n_speakers)
    zip_of = [codes[i % len(codes)] for i in range(n_speakers)]
    rate = rng.beta(20, 80, n_speakers) + (0.0 if excess is None else excess)
    words = rng.integers(150, 250, n_speakers)
    errors = rng.binomial(words, np.minimum(rate, 1.0))
    names = [f"s{i:03d}" for i in range(n_speakers)]
    rows = {n: {"id": n, "lat": f"{a:.4f}", "lon": f"{b:.4f}", "zip": z} for n, a, b, z in zip(names, lat, lon, zip_of)}
    table = table_from_counts(names, errors, words, np.full(n_speakers, 20.0), rows, zips)
    return table if vectors is None else table.with_vectors(dict(zip(names, vectors)))


def _rectangle(table: SpeakerTable) -> np.ndarray:
    coords = table.coordinates()
    return (coords[:, 0] > 6) & (coords[:, 1] < 4)


def _iou(a: Set[str], b: Set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _speakers_of(labels: Dict[str, str], label: str) -> Set[str]:
    return {s for s, x in labels.items() if x == label}


def _planted_geo_table(seed: int = 1) -> SpeakerTable:
    base = _table(seed)
    return _table(seed, excess=np.where(_rectangle(base), 0.15, 0.0))


# ------------------------------------------------------------------------------ discovery


def test_geo_tree_recovers_planted_rectangle():
    table = _planted_geo_table()
    discovery = geo.fit(table, GeoConfig(method="tree", max_leaves=6, n_permutations=99), seed=0)
    labels = discovery.assign_table(table)
    planted = {s for s, inside in zip(table.speakers, _rectangle(table)) if inside}
    assert _iou(_speakers_of(labels, "rank1"), planted) >= 0.8
    assert discovery.nodes[0].best.p_value <= 0.01  # the root split is significant
    assert all(leaf.stop in STOP_RULES for leaf in discovery.leaves)


def test_geo_tree_null_makes_no_significant_split():
    discovery = geo.fit(_table(7), GeoConfig(method="tree", max_leaves=6, min_gain=0.0, n_permutations=99), seed=0)
    assert len(discovery.leaves) == 1
    assert discovery.nodes[0].stop == "not_significant"
    assert discovery.nodes[0].best.p_value > 0.05


def test_geo_leaf_budget_and_min_gain_are_reported():
    table = _planted_geo_table()
    budget = geo.fit(table, GeoConfig(method="tree", max_leaves=2, n_permutations=49), seed=0)
    assert len(budget.leaves) == 2 and "leaf_budget" in {leaf.stop for leaf in budget.leaves}
    gain = geo.fit(table, GeoConfig(method="tree", max_leaves=6, min_gain=0.9, n_permutations=49), seed=0)
    assert [leaf.stop for leaf in gain.leaves] == ["min_gain"]


def test_geo_split_test_is_calibrated_on_null_data():
    """200 null nodes, 39 permutations: P(p <= 0.05) is exactly 2/40 under the null; the rate must sit in a
    99.9% binomial band, while a test that ignores the search over splits falls far outside it."""
    rng = np.random.default_rng(2024)
    limits, rejected, naive, n_sets = SideLimits(5, 300), 0, 0, 200
    for _ in range(n_sets):
        coords = rng.uniform(0, 10, (40, 2))
        words = rng.integers(150, 250, 40).astype(float)
        errors = rng.binomial(words.astype(int), rng.beta(20, 80, 40)).astype(float)
        _, _, members = candidates(coords)
        split = best_split(members, errors, words, limits)
        p, _ = split_p_value(members, errors, words, limits, split.gap, 39, rng)
        rejected += p <= 0.05
        # The same best split tested as if it had been fixed in advance (only its own row permuted).
        only_chosen = members[split.index:split.index + 1]
        naive += split_p_value(only_chosen, errors, words, limits, split.gap, 39, rng)[0] <= 0.05
    low, high = stats.binom.ppf(0.0005, n_sets, 0.05), stats.binom.isf(0.0005, n_sets, 0.05)
    assert low <= rejected <= high, f"{rejected} of {n_sets} null splits rejected at 5%"
    assert naive > high, f"ignoring the search rejected only {naive} of {n_sets}: the check would not see it"


def _us_table(design: GeoDesign, seed: int) -> Tuple[SpeakerTable, Set[str]]:
    """A simulated table over the contiguous US (issue 28's design) and its planted speakers."""
    sim = simulate_geo_table(design, np.random.default_rng(seed))
    errors, words, utts = sim.speaker_sums()
    rows = {s: {"id": s, "lat": f"{a:.5f}", "lon": f"{b:.5f}"} for s, a, b in zip(sim.speakers, sim.lat, sim.lon)}
    return (table_from_counts(sim.speakers, errors, words, utts, rows),
            {s for s, inside in zip(sim.speakers, sim.inside) if inside})


def test_scan_finds_a_planted_centre_rectangle():
    """+15 points for the ~17% of 160 speakers in the middle of the map: the scan finds it (the one-threshold
    tree cannot carve out a middle region in one split)."""
    table, planted = _us_table(GeoDesign(n_speakers=160, planted_gap=0.15, place="centre"), seed=0)
    found = geo.fit(table, GeoConfig(method="scan", n_permutations=99), seed=0)
    assert isinstance(found, ScanDiscovery) and found.significant and found.result["p_value"] <= 0.02
    labels = found.assign_table(table)
    assert found.cohorts[0].key == "inside" and _iou(_speakers_of(labels, "rank1"), planted) >= 0.5
    # 20 null tables: P(p <= 0.05) = 2/50 each, so 5 or more rejections has probability 0.0006
    rejected = sum(geo.fit(_us_table(GeoDesign(n_speakers=160), seed=100 + i)[0],
                           GeoConfig(method="scan", n_permutations=49), seed=i).result["p_value"] <= 0.05
                   for i in range(20))
    assert rejected <= 4


def test_band_tree_carves_out_a_middle_region():
    table, planted = _us_table(GeoDesign(n_speakers=160, planted_gap=0.15, place="centre"), seed=0)
    tree = geo.fit(table, GeoConfig(method="band_tree", max_leaves=6, n_permutations=99), seed=0)
    assert any(n.best is not None and n.best.band_high is not None for n in tree.nodes if n.children)
    labels = tree.assign_table(table)
    assert _iou(_speakers_of(labels, "rank1"), planted) >= 0.4
    for leaf in tree.leaves:  # every speaker is placed in the leaf whose box holds it
        inside = [s for s, a in table.attribute_map().items() if tree.leaf_of(float(a["lat"]), float(a["lon"])) is leaf]
        assert leaf.n_speakers == len(inside)


def test_scan_pipeline_permutations_vectorised_equal_refits():
    """`scan.crossfit_gaps` (vectorised) gives exactly the gaps of re-running crossfit with scan refits."""
    table, _ = _us_table(GeoDesign(n_speakers=100, planted_gap=0.10, place="edge"), seed=3)
    cfg = CohortsConfig(geo=GeoConfig(method="scan", n_permutations=0), measure=FAST)
    orders = permutation_orders(len(table), 8, np.random.default_rng(1))
    fast = crossfit_gaps(table, cfg.geo, 5, cfg.seed, FAST.min_speakers, orders)
    slow = refit_gaps(table, fitter("geo", cfg, refit=True), 5, cfg.seed, FAST.min_speakers, orders)
    assert np.isfinite(fast).all() and np.array_equal(fast, slow)


def test_geodemographic_recovers_planted_attribute():
    base = _table(3)
    rural = np.asarray([base.zipcodes[z]["urbanicity"] == "rural" for z in base.zip_codes()])
    table = _table(3, excess=np.where(rural, 0.12, 0.0))
    discovery = geodemographic.fit(table, GeodemographicConfig(n_permutations=99), seed=0)
    assert (discovery.rule.attribute, discovery.rule.op, discovery.rule.value) == ("urbanicity", "==", "rural")
    assert discovery.cohorts[0].key == "urbanicity=rural"
    assert discovery.p_value <= 0.01
    assert {a.attribute for a in discovery.attributes} == {"urbanicity", "income_band", "median_age"}


def _clustered(n_per: int = 30, dim: int = 8, seed: int = 5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (4, dim)) * 4
    member = np.repeat(np.arange(4), n_per)
    return member, centres[member] + rng.normal(0, 1, (4 * n_per, dim))


def test_auto_recovers_planted_cluster():
    member, vectors = _clustered()
    table = _table(4, n_speakers=len(member), excess=np.where(member == 0, 0.15, 0.0), vectors=vectors)
    discovery = auto.fit(table, AutoConfig(k=None, k_max=6, min_cluster_speakers=20), seed=0)
    assert len(discovery.centroids) == 4  # k = 5, 6 would split a 30-speaker cluster below 20
    labels = discovery.assign_table(table)
    planted = {s for s, m in zip(table.speakers, member) if m == 0}
    assert _iou(_speakers_of(labels, "rank1"), planted) >= 0.8


def test_size_floor_flags_and_never_ranks_first():
    table = _table(6, n_speakers=40)
    keys = ["tiny" if i < 2 else ("a" if i % 2 else "b") for i in range(40)]
    table.errors[:2] = table.words[:2]  # the tiny cohort has WER 1.0
    ranked = summarise_cohorts(table, keys, {"a": "", "b": "", "tiny": ""}, Thresholds(5, 200, 20))
    assert ranked[-1].key == "tiny" and not ranked[-1].eligible and "speakers<5" in ranked[-1].flags
    assert ranked[0].eligible


# ---------------------------------------------------------------------------- measurement


def test_crossfit_discovery_and_measurement_speakers_are_disjoint():
    table = _planted_geo_table()
    seen: List[Set[str]] = []

    def fit(part: SpeakerTable):
        seen.append(set(part.speakers))
        return geo.fit(part, GeoConfig(method="tree", max_leaves=3, n_permutations=19))

    labelling = crossfit(table, fit, folds=5, seed=0)
    folds = [set(table.speakers[i] for i in idx) for idx in speaker_folds(len(table), 5, 0)]
    assert set().union(*folds) == set(table.speakers) and sum(map(len, folds)) == len(table)
    for discovered_on, held_out in zip(seen, folds):
        assert not discovered_on & held_out
        assert discovered_on | held_out == set(table.speakers)
    assert set(labelling.labels) == set(table.speakers) and labelling.disjoint
    with pytest.raises(DataError, match="in both the discovery and the measurement set"):
        dev_test(table.subset(range(0, 120)), table.subset(range(100, 200)), fit)


def test_held_out_gap_found_when_planted_and_not_when_null():
    cfg = CohortsConfig(geo=GeoConfig(max_leaves=4, n_permutations=49), measure=FAST)
    planted = discover("geo", _planted_geo_table(), cfg)
    assert planted.held_out.labelling.mode == "crossfit" and not planted.held_out.labelling.chosen_on_these_speakers
    assert planted.held_out.disparity.p_value < 0.05
    assert planted.held_out.designated["abs_gap"] > 0.05
    assert "CAUTION" in planted.in_sample.disparity.method  # in-sample is labelled as chosen on these speakers

    member, vectors = _clustered()
    null = _table(8, n_speakers=len(member), vectors=vectors)  # WER unrelated to the embeddings
    study = discover("auto", null, CohortsConfig(auto=AutoConfig(k=3), measure=FAST))
    assert study.held_out.disparity is not None and study.held_out.disparity.p_value > 0.05


def test_auto_refits_rank_the_cached_clusters_as_a_fresh_fit():
    member, vectors = _clustered()
    table = _table(4, n_speakers=len(member), excess=np.where(member == 0, 0.15, 0.0), vectors=vectors)
    cfg = CohortsConfig(auto=AutoConfig(k=None, k_max=6, min_cluster_speakers=20))
    refit = fitter("auto", cfg, refit=True)
    refit(table)  # clusters cached for these speakers
    order = np.random.default_rng(0).permutation(len(table))
    shuffled = dataclasses.replace(table, errors=table.errors[order], words=table.words[order])
    assert refit(shuffled).to_dict() == auto.fit(shuffled, cfg.auto, cfg.measure.thresholds, cfg.seed).to_dict()


def test_assign_round_trips_through_discovery_json():
    member, vectors = _clustered()
    table = _table(9, n_speakers=len(member), vectors=vectors)
    fitted = [geo.fit(_planted_geo_table(), GeoConfig(method="tree", max_leaves=4, n_permutations=19)),
              geo.fit(_planted_geo_table(), GeoConfig(method="band_tree", max_leaves=4, n_permutations=19)),
              geo.fit(_planted_geo_table(), GeoConfig(method="scan", n_permutations=19)),
              geodemographic.fit(table, GeodemographicConfig(n_permutations=19)),
              auto.fit(table, AutoConfig(k=4))]
    for discovery in fitted:
        back = discovery_from_dict(json.loads(json.dumps(discovery.to_dict())))
        assert back.to_dict() == discovery.to_dict()
        source = _planted_geo_table() if discovery.method in ("geo", "geo_scan") else table
        assert back.assign_table(source) == discovery.assign_table(source)
    with pytest.raises(DataError, match="zip 'Z999'"):
        fitted[3].assign({"new": {"zip": "Z999"}})
    with pytest.raises(DataError, match="speaker 'new'"):
        fitted[0].assign({"new": {"lat": "", "lon": "3"}})


def test_speaker_table_errors_name_the_item():
    with pytest.raises(DataError, match="speaker 'b' is not in speakers.csv"):
        table_from_counts(["a", "b"], [1, 2], [10, 10], [1, 1], {"a": {"lat": "1", "lon": "2"}})
    table = table_from_counts(["a"], [1], [10], [1], {"a": {"lat": "1", "lon": "", "zip": "Q1"}}, {"Z1": {"x": 1.0}})
    with pytest.raises(DataError, match="speaker 'a': no numeric 'lon'"):
        table.coordinates()
    with pytest.raises(DataError, match="zip 'Q1' is not in the zip-code table"):
        table.zip_codes()
    with pytest.raises(DataError, match="speaker 'a' has no embedding"):
        table.with_vectors({})


# ------------------------------------------------------------------------------------ CLI


def _write_decode(decode: Path, table: SpeakerTable, utts: int = 4) -> Path:
    """A decode dir whose recogs.jsonl has exactly the table's per-speaker counts."""
    decode.mkdir(parents=True)
    lines = []
    for speaker, errors, words in zip(table.speakers, table.errors.astype(int), table.words.astype(int)):
        for u, (n_err, n_words) in enumerate(zip(np.array_split(np.arange(errors), utts),
                                                 np.array_split(np.arange(words), utts))):
            ref = [f"w{i}" for i in range(len(n_words))]
            hyp = ["x"] * len(n_err) + ref[len(n_err):]
            lines.append(json.dumps({"id": f"{speaker}-{u}", "speaker": speaker, "ref": " ".join(ref),
                                     "hyp": " ".join(hyp)}))
    (decode / "recogs.jsonl").write_text("\n".join(lines) + "\n")
    return decode


def _write_corpus(root: Path, table: SpeakerTable, zips: Dict[str, Dict[str, object]]) -> None:
    """speakers.csv (every third speaker in split dev, the others test) and zipcodes.csv of `table`."""
    header = "id,split,lat,lon,zip"
    rows = [f"{s},{'dev' if i % 3 == 0 else 'test'},{a['lat']},{a['lon']},{a['zip']}"
            for i, (s, a) in enumerate(zip(table.speakers, table.attributes))]
    (root / "speakers.csv").write_text("\n".join([header, *rows]) + "\n")
    columns = ["zip", "lat", "lon", "urbanicity", "income_band", "median_age"]
    (root / "zipcodes.csv").write_text("\n".join([",".join(columns)] + [
        ",".join([z] + [str(zips[z][c]) for c in columns[1:]]) for z in sorted(zips)]) + "\n")


def _read_embeddings(path: Path) -> Dict[str, np.ndarray]:
    """The interface's two embedding formats (.npz speakers/vectors, JSON {speaker: [floats]}), for the test only."""
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {str(s): v for s, v in zip(data["speakers"], data["vectors"])}
    return {s: np.asarray(v) for s, v in json.loads(path.read_text()).items()}


FAST_SET = ["--set", "measure.n_permutations=99", "--set", "measure.n_boot=50", "--set", "geo.n_permutations=49",
            "--set", "measure.pipeline_permutations=19",
            "--set", "geodemographic.n_permutations=49", "--set", "geo.min_speakers=8", "--set",
            "geodemographic.min_speakers=8"]


def _invoke(args: List[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_geo_geodemographic_assign_end_to_end(tmp_path):
    table = _planted_geo_table(seed=11).subset(range(120))
    _write_corpus(tmp_path, table, _zip_table())
    decode = _write_decode(tmp_path / "decode", table)
    speakers, zipcodes = tmp_path / "speakers.csv", tmp_path / "zipcodes.csv"
    out = tmp_path / "geo"
    result = _invoke(["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers), *FAST_SET,
                      "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("discovery.json", "assignments.json", "cohorts.json", "cohorts.csv", "cohorts.md", "regions.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "cohorts.json").read_text())
    assert doc["mode"] == "crossfit" and doc["disjoint"] is True and doc["n_measurement_speakers"] == 120
    assert {"held_out", "in_sample", "designated", "bottom_share", "cohorts", "model"} <= set(doc)
    assert doc["model"]["scan"]["significant"] and doc["model"]["scan"]["p_value"] <= 0.05  # the default: scan
    assert doc["designated"]["p_value"] <= 0.05 and doc["designated"]["abs_gap_ci"][0] > 0
    assert "whole-pipeline permutation" in doc["designated"]["method"]
    assigned = json.loads((out / "assignments.json").read_text())
    assert set(assigned) == {"method", "mode", "cohorts", "ranking"} and len(assigned["cohorts"]) == 120

    applied = tmp_path / "applied.json"
    result = _invoke(["cohorts", "assign", "--discovery", str(out / "discovery.json"), "--speakers", str(speakers),
                      "--split", "dev", "--out", str(applied)])
    assert result.exit_code == 0, result.output
    doc = json.loads(applied.read_text())
    assert doc["mode"] == "applied" and len(doc["cohorts"]) == 40 and set(doc["cohorts"].values()) <= set(doc["ranking"])

    # several tables (e.g. ASR training corpus + evaluation dev speakers), one split each: their union
    with open(speakers, newline="") as f:
        rows = list(csv.DictReader(f))
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{**row, "id": "x" + row["id"]} for row in rows])
    n_test = sum(row["split"] == "test" for row in rows)
    both = _invoke(["cohorts", "assign", "--discovery", str(out / "discovery.json"), "--speakers", str(speakers),
                    "--split", "dev", "--speakers", str(other), "--split", "test", "--out", str(applied)])
    assert both.exit_code == 0, both.output
    labels = json.loads(applied.read_text())["cohorts"]
    assert len(labels) == 40 + n_test
    assert {s for s in labels if s.startswith("x")} == {"x" + row["id"] for row in rows if row["split"] == "test"}
    twice = run_asrtools(["cohorts", "assign", "--discovery", str(out / "discovery.json"), "--speakers", str(speakers),
                          "--speakers", str(speakers), "--out", str(tmp_path / "twice.json")], check=False)
    assert twice.returncode == 1 and "also in an earlier --speakers table" in twice.stderr
    assert not (tmp_path / "twice.json").exists()

    out = tmp_path / "geodemographic"
    result = _invoke(["cohorts", "geodemographic", "--recogs", str(decode), "--speakers", str(speakers),
                      "--zipcodes", str(zipcodes), *FAST_SET, "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "zip_partition.png").is_file()
    assert json.loads((out / "discovery.json").read_text())["method"] == "geodemographic"


def test_cli_auto_dev_test_mode(tmp_path, monkeypatch):
    member, vectors = _clustered(n_per=25)
    table = _table(12, n_speakers=len(member), excess=np.where(member == 0, 0.15, 0.0), vectors=vectors)
    _write_corpus(tmp_path, table, _zip_table())
    test_dir = _write_decode(tmp_path / "test", table.subset([i for i in range(len(table)) if i % 3]))
    dev_dir = _write_decode(tmp_path / "dev", table.subset(range(0, len(table), 3)))
    np.savez(tmp_path / "embeddings.npz", speakers=np.asarray(table.speakers), vectors=vectors.astype(np.float32))
    try:
        import asrtools.fairness.embeddings  # noqa: F401
    except ImportError:  # the loader of the embedding artifact is another module's; read the same formats here
        import types

        monkeypatch.setitem(__import__("sys").modules, "asrtools.fairness.embeddings",
                            types.SimpleNamespace(load_embeddings=_read_embeddings))
    out = tmp_path / "auto"
    result = _invoke(["cohorts", "auto", "--recogs", str(test_dir), "--discover-recogs", str(dev_dir),
                      "--speakers", str(tmp_path / "speakers.csv"), "--embeddings", str(tmp_path / "embeddings.npz"),
                      "--set", "auto.k=4", *FAST_SET, "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "cohorts.json").read_text())
    assert doc["mode"] == "dev-test" and doc["disjoint"] and doc["n_discovery_speakers"] == 34
    assert (out / "embedding_pca.png").is_file()


def test_cli_bad_inputs_fail_with_one_line_and_no_artifacts(tmp_path):
    table = _planted_geo_table(seed=13).subset(range(60))
    _write_corpus(tmp_path, table, _zip_table())
    decode = _write_decode(tmp_path / "decode", table)
    speakers = tmp_path / "speakers.csv"
    lines = speakers.read_text().splitlines()
    speakers.write_text("\n".join(line for line in lines if not line.startswith("s005,")) + "\n")
    out = tmp_path / "geo"
    result = CliRunner().invoke(cli, ["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers),
                                      "--out-dir", str(out)])
    assert result.exit_code == 1
    assert "speaker 's005' is not in" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (out / "discovery.json").exists() and not (out / "cohorts.json").exists()
    result = CliRunner().invoke(cli, ["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers),
                                      "--set", "geo.max_leafs=3", "--out-dir", str(out)])
    assert result.exit_code == 1 and "unknown key 'max_leafs'" in result.output
    result = CliRunner().invoke(cli, ["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers),
                                      "--set", "measure.folds=1", "--out-dir", str(out)])
    assert result.exit_code == 1 and "folds must be >= 2" in result.output
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


def test_cli_geo_unplaced_speakers_stop_or_are_left_out_and_counted(tmp_path):
    """Real corpora have speakers without a place: an error naming one by default; with
    `unplaced_speakers=exclude` they are left out and cohorts.json / cohorts.md count them."""
    table = _planted_geo_table(seed=11).subset(range(120))
    _write_corpus(tmp_path, table, _zip_table())
    speakers = tmp_path / "speakers.csv"
    lines = speakers.read_text().splitlines()
    unplaced = [line.split(",")[0] for line in lines[1:4]]
    for i in (1, 2, 3):  # blank lat/lon, as `asrtools data prepare` leaves an unplaced speaker
        fields = lines[i].split(",")
        lines[i] = ",".join(fields[:2] + ["", ""] + fields[4:])
    speakers.write_text("\n".join(lines) + "\n")
    decode = _write_decode(tmp_path / "decode", table)
    refused = run_asrtools(["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers), *FAST_SET,
                            "--out-dir", str(tmp_path / "refused")], check=False)
    assert refused.returncode == 1 and f"speaker {unplaced[0]!r}: no numeric 'lat'" in refused.stderr
    assert "unplaced_speakers=exclude" in refused.stderr and not (tmp_path / "refused" / "cohorts.json").exists()

    out = tmp_path / "geo"
    result = _invoke(["cohorts", "geo", "--recogs", str(decode), "--speakers", str(speakers), *FAST_SET,
                      "--set", "unplaced_speakers=exclude", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "cohorts.json").read_text())
    assert doc["unplaced_excluded"] == {"count": 3, "speakers": sorted(unplaced)}
    assert doc["n_measurement_speakers"] == 117
    assert "3 scored speakers could not be placed by geo" in (out / "cohorts.md").read_text()
