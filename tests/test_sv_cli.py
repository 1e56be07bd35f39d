"""`asrtools sv trials|embed|score|results` and `asrtools score sv` end to end on a tiny corpus,
and one-line errors for bad trial lists."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from asrtools.errors import DataError
from asrtools.sv.embeddings import read_embeddings
from asrtools.sv.trials import TrialPlan, make_trials, read_trials

from conftest import run_asrtools
from sv_helpers import make_sv_corpus, sv_env, sv_train_cmd, write_sv_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny corpus (12 train, 9 test speakers) and a speaker model trained on it."""
    root = tmp_path_factory.mktemp("sv")
    corpus = make_sv_corpus(root / "data", {"train": 12, "dev": 4, "test": 9}, utts=5)
    config = write_sv_config(root / "c.yaml", {"num_epochs": 3, "save_every_n_steps": 0})
    subprocess.run(sv_train_cmd(config, corpus, root / "exp"), env=sv_env(), check=True, capture_output=True)
    return root, corpus


def test_make_trials_is_balanced_seeded_and_grouped():
    utts = {f"s{s}-{u}": f"s{s}" for s in range(8) for u in range(4)}
    attrs = {f"s{s}": {"gender": "female" if s % 2 else "male", "region": "a" if s < 4 else "b"} for s in range(8)}
    plan = TrialPlan(["gender", "region"], targets_per_speaker=3, nontargets_per_speaker=4, cross_per_speaker=2)
    trials, stats = make_trials(utts, attrs, plan)
    assert make_trials(utts, attrs, plan)[0] == trials
    assert make_trials(utts, attrs, TrialPlan(**{**vars(plan), "seed": 1}))[0] != trials
    assert stats["total"]["target"] == 8 * 3
    for t in trials:
        assert (utts[t.enroll] == utts[t.test]) == (t.label == 1)
    keys = {tuple(sorted((t.enroll, t.test))) for t in trials}
    assert len(keys) == len(trials)
    assert stats["gender"]["female"]["nontarget"] > 0 and stats["gender"]["(cross)"]["nontarget"] > 0
    assert stats["gender"]["female"]["target"] == stats["gender"]["male"]["target"] == 12


@pytest.mark.parametrize("text,message", [
    ("1 a b\n0 a\n", "expected 'label enroll test'"),
    ("1 a b\n2 a c\n", "label 0 or 1"),
    ("1 a b\n0 a zz\n", "unknown utterance id 'zz'"),
    ("0 a b\n0 a c\n", "no target trials"),
    ("1 a b\n1 a c\n", "no non-target trials"),
    ("1 a b\n0 b a\n", "repeats line 1"),
    ("", "empty"),
])
def test_bad_trial_lists_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "trials.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_trials(path, {"a", "b", "c"})


def test_pipeline_trials_embed_score_metrics_results(trained, tmp_path):
    root, corpus = trained
    exp = tmp_path / "exp"
    sup = str(corpus["supervisions_test"])
    run_asrtools(["sv", "trials", "--supervisions", sup, "--by", "gender", "--by", "region",
                  "--targets-per-speaker", "5", "--nontargets-per-speaker", "6", "--out-dir", str(exp / "trials")])
    trials = read_trials(exp / "trials" / "trials.txt")
    assert {t.label for t in trials} == {0, 1}
    run_asrtools(["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts",
                  str(corpus["cuts_test"]), "--shard-size", "7", "--out-dir", str(exp / "embed_test")])
    run_asrtools(["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts",
                  str(corpus["cuts_train"]), "--out-dir", str(exp / "embed_train")])
    speakers = read_embeddings(exp / "embed_test")
    assert len(speakers) == 9 and all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in speakers.values())
    assert len(read_embeddings(exp / "embed_test", "utterances")) == 45
    # embeddings do not depend on the shard size (no padding: same-length batches only)
    run_asrtools(["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts",
                  str(corpus["cuts_test"]), "--shard-size", "100", "--out-dir", str(exp / "embed_test2")])
    a, b = read_embeddings(exp / "embed_test", "utterances"), read_embeddings(exp / "embed_test2", "utterances")
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)

    for name, extra in (("cos", []), ("asn", ["--norm", "asnorm", "--cohort", str(exp / "embed_train"),
                                              "--top-k", "5"])):
        run_asrtools(["sv", "score", "--embeddings", str(exp / "embed_test"), "--trials", str(exp / "trials"),
                      *extra, "--out-dir", str(exp / f"scores_{name}")])
        run_asrtools(["score", "sv", "--scores", str(exp / f"scores_{name}"), "--supervisions", sup,
                      "--by", "gender", "--by", "region", "--bootstrap", "50", "--out-dir", str(exp / f"sv_{name}")])
    doc = json.loads((exp / "sv_cos" / "sv.json").read_text())
    overall = doc["overall"]
    assert 0 <= overall["eer"]["value"] <= 0.5 and overall["eer"]["ci"][0] <= overall["eer"]["ci"][1]
    assert set(overall) >= {"mindcf_0.01", "mindcf_0.05", "trials", "speakers"}
    gender = doc["groupings"]["gender"]
    assert set(gender["groups"]) == {"female", "male"} and "gender_gap" in gender and doc["gender_gap"]
    assert abs(gender["gender_gap"]["value"] - abs(gender["groups"]["male"]["eer"]["value"]
                                                   - gender["groups"]["female"]["eer"]["value"])) < 1e-12
    assert "eer_std" in doc["groupings"]["region"]
    assert (exp / "sv_cos" / "det_gender.png").stat().st_size > 1000

    out = tmp_path / "RESULTS.md"
    run_asrtools(["sv", "results", "--system", f"base={exp / 'sv_cos'}", "--system", f"asnorm={exp / 'sv_asn'}",
                  "--baseline", "base", "--out", str(out), "--out-dir", str(exp / "results")])
    page = out.read_text()
    assert "| base (baseline) |" in page and "| asnorm |" in page and "p=" in page
    assert "at git " in page and "torch" in page
    results = json.loads((exp / "results" / "results.json").read_text())
    change = results["rows"][1]["vs_baseline"]["eer"]
    assert change["diff"] == pytest.approx(change["b"] - change["a"])


def test_cli_reports_bad_trials_in_one_line(trained, tmp_path):
    root, corpus = trained
    run_asrtools(["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts",
                  str(corpus["cuts_test"]), "--out-dir", str(tmp_path / "emb")])
    bad = tmp_path / "trials.txt"
    bad.write_text("1 test00-00 test00-01\n0 test00-00 nobody-01\n")
    proc = run_asrtools(["sv", "score", "--embeddings", str(tmp_path / "emb"), "--trials", str(bad),
                         "--out-dir", str(tmp_path / "scores")], check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("asrtools: error:") and "trials.txt:2: unknown utterance id 'nobody-01'" in last
    assert not (tmp_path / "scores" / "scores.txt").exists()
    bad.write_text("0 test00-00 test01-01\n0 test00-00 test02-01\n")
    proc = run_asrtools(["sv", "score", "--embeddings", str(tmp_path / "emb"), "--trials", str(bad),
                         "--out-dir", str(tmp_path / "scores2")], check=False)
    assert proc.returncode == 1 and "no target trials" in proc.stderr


@pytest.mark.skipif(__import__("importlib").util.find_spec("resemblyzer") is None,
                    reason="optional: package resemblyzer not installed (scripts/setup_sv_ref_env.sh)")
def test_resemblyzer_reference_embeds_corpus_audio(tiny_corpus, tmp_path):
    out = tmp_path / "emb"
    run_asrtools(["sv", "embed", "--external", "resemblyzer", "--cuts", str(tiny_corpus / "fbank" / "cuts_test.jsonl.gz"),
                  "--out-dir", str(out)])
    utts = read_embeddings(out, "utterances")
    assert utts and all(v.shape == (256,) and abs(np.linalg.norm(v) - 1) < 1e-5 for v in utts.values())
    info = json.loads((out / "embed.json").read_text())
    assert info["model"] == "resemblyzer" and info["params"] > 1_000_000


def test_embed_needs_exactly_one_model(tmp_path, trained):
    _, corpus = trained
    proc = run_asrtools(["sv", "embed", "--cuts", str(corpus["cuts_test"]), "--out-dir", str(tmp_path / "e")],
                        check=False)
    assert proc.returncode == 1 and "exactly one of --checkpoint and --external" in proc.stderr
