"""Fairness mitigations: the EWC penalty, the Fisher, the oversampler, the cohort input, the CLI."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from asrtools.cli import cli
from asrtools.data.assignments import read_assignments
from asrtools.data.cuts import cut_speaker, load_cuts
from asrtools.errors import ConfigError, DataError
from asrtools.fairness.mitigation.fisher import check_fisher_baseline, diagonal_fisher
from asrtools.models.build import ModelConfig, build_model, model_config_from_dict, model_config_to_dict
from asrtools.models.enc_cohort_input import attach_cohort_map, cohort_input_config, condition_on_speakers
from asrtools.pipeline import hash_file
from asrtools.training.data import make_sampler, oversampled_cuts, sampler_state_for_resume
from asrtools.training.regularizers import QuadraticAnchor

from streaming_helpers import assert_streaming_equals_offline
from test_train_helpers import make_corpus, write_config

torch.set_num_threads(1)


# ------------------------------------------------------------------------------ EWC penalty


def _perturbed(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("use_fisher", [True, False])
def test_ewc_penalty_is_zero_at_anchor_and_its_gradient_is_lambda_f_delta(use_fisher):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    fisher = {k: torch.rand(v.shape) for k, v in anchor.items()} if use_fisher else None
    lam = 2.5
    penalty = QuadraticAnchor(anchor, lam, fisher, "ewc" if use_fisher else "l2")
    assert penalty(model).item() == 0.0
    _perturbed(model, 1)
    value = penalty(model)
    value.backward()
    expected_value = 0.0
    for name, p in model.named_parameters():
        weight = fisher[name] if use_fisher else torch.ones_like(p)
        torch.testing.assert_close(p.grad, lam * weight * (p.detach() - anchor[name]))
        expected_value += 0.5 * lam * float((weight * (p.detach() - anchor[name]) ** 2).sum())
    assert value.item() == pytest.approx(expected_value, rel=1e-5)


def test_penalty_rejects_a_fisher_of_another_model():
    model = nn.Linear(3, 2)
    anchor = {k: v.clone() for k, v in model.named_parameters()}
    with pytest.raises(ConfigError, match="weight"):
        QuadraticAnchor(anchor, 1.0, {"weight": torch.ones(2, 4), "bias": torch.ones(2)})
    with pytest.raises(ConfigError, match="bias"):
        QuadraticAnchor(anchor, 1.0, {"weight": torch.ones(2, 3)})
    with pytest.raises(ConfigError, match="no parameter"):
        QuadraticAnchor({"other.weight": torch.ones(1)}, 1.0)(model)


# ---------------------------------------------------------------------------------- Fisher


def test_fisher_of_a_linear_model_matches_the_hand_computation():
    """Loss 0.5 (w.x + b - t)^2: d/dw = r x, d/db = r, so F_w = mean(r^2 x^2), F_b = mean(r^2)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    xs, ts = torch.randn(6, 3), torch.randn(6)
    with torch.no_grad():
        residuals = (xs @ model.weight[0] + model.bias[0] - ts)

    def losses():
        for x, t in zip(xs, ts):
            yield 0.5 * (model(x[None])[0, 0] - t) ** 2
        yield torch.tensor(float("nan"))  # a non-finite utterance is skipped

    fisher, used, skipped = diagonal_fisher(model, losses())
    assert (used, skipped) == (6, 1)
    torch.testing.assert_close(fisher["weight"][0], (residuals[:, None] ** 2 * xs ** 2).mean(0))
    torch.testing.assert_close(fisher["bias"], (residuals ** 2).mean()[None])
    with pytest.raises(DataError, match="no utterance"):
        diagonal_fisher(model, iter([torch.tensor(float("inf"))]))


def test_a_fisher_of_another_baseline_is_refused(tmp_path):
    base, other = tmp_path / "base.pt", tmp_path / "other.pt"
    base.write_bytes(b"base weights")
    other.write_bytes(b"other weights")
    info = {"baseline": str(other), "baseline_sha256": hash_file(other)}
    with pytest.raises(ConfigError, match="estimated on .*other.pt.*not on the baseline .*base.pt"):
        check_fisher_baseline(info, tmp_path / "fisher", base)
    check_fisher_baseline({"baseline_sha256": hash_file(base)}, tmp_path / "fisher", base)


# ------------------------------------------------------------------------------ oversampling


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_train=48, num_dev=8)


def _batches(sampler, epoch: int = 1) -> List[List[str]]:
    sampler.set_epoch(epoch)
    return [[c.id for c in batch] for batch in sampler]


def test_oversampler_frequencies_match_the_weights_and_it_is_deterministic_and_resumable(corpus):
    cuts = load_cuts(corpus["cuts_train"])
    weight = {"spk0": 3.0, "spk1": 2.5}

    def weight_of(cut):
        return weight.get(cut_speaker(cut), 1.0)

    sampled = oversampled_cuts(cuts, weight_of, seed=1)
    by_speaker = Counter(cut_speaker(c) for c in sampled)
    originals = Counter(cut_speaker(c) for c in cuts)
    assert by_speaker["spk0"] == 3 * originals["spk0"]
    assert by_speaker["spk2"] == originals["spk2"] and by_speaker["spk3"] == originals["spk3"]
    assert 2 * originals["spk1"] <= by_speaker["spk1"] <= 3 * originals["spk1"]
    # Over many cuts the fractional part averages to the weight.
    many = [c for i in range(40) for c in cuts.subset(first=12).modify_ids(lambda cid: f"{cid}-{i}")]
    from lhotse import CutSet
    heavy = oversampled_cuts(CutSet.from_cuts(many), lambda c: 2.5, seed=3)
    assert len(heavy) / len(many) == pytest.approx(2.5, abs=0.08)
    # One epoch of the bucketing sampler sees every copy once: cohort frequency = w n / sum(w n).
    seen = sum(_batches(make_sampler(sampled, 2.5, 2, True, 7)), [])
    per_speaker = Counter(cut_speaker(cuts[cid.split("_os")[0]]) for cid in seen)
    assert per_speaker == by_speaker and len(seen) == len(sampled)
    expected = 3 * originals["spk0"] / (3 * originals["spk0"] + by_speaker["spk1"] + originals["spk2"] + originals["spk3"])
    assert per_speaker["spk0"] / len(seen) == pytest.approx(expected)
    # Deterministic for a seed, split across DDP ranks without overlap.
    assert list(oversampled_cuts(cuts, weight_of, 1).ids) == list(sampled.ids)
    first = _batches(make_sampler(sampled, 2.5, 2, True, 7))
    assert first == _batches(make_sampler(sampled, 2.5, 2, True, 7))
    ranks = [sum(_batches(make_sampler(sampled, 2.5, 2, True, 7, world_size=2, rank=r)), []) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])
    # Resumable mid-epoch through the trainer's sampler state.
    sampler = make_sampler(sampled, 2.5, 2, True, 7)
    sampler.set_epoch(1)
    iterator = iter(sampler)
    for _ in range(3):
        next(iterator)
    state = sampler_state_for_resume(sampler, 3)
    resumed = make_sampler(sampled, 2.5, 2, True, 7)
    resumed.load_state_dict(state)
    assert [[c.id for c in b] for b in resumed] == first[3:]


def test_oversampling_weight_below_one_is_an_error(corpus):
    with pytest.raises(ConfigError, match="must be >= 1"):
        oversampled_cuts(load_cuts(corpus["cuts_dev"]), lambda c: 0.5, seed=0)


# ------------------------------------------------------------------------------ cohort input

_ENCODERS = {
    "lstm": {"hidden_dim": 16, "num_layers": 1, "subsampling_dim": 16, "subsampling_channels": 4, "dropout": 0.0},
    "conformer": {"dim": 16, "num_heads": 2, "num_layers": 1, "ffn_dim": 24, "conv_kernel_size": 3, "chunk_size": 2,
                  "left_context": 4, "subsampling_channels": 4, "dropout": 0.0},
}


def _wrapped_pair(encoder: str, combine: str):
    torch.manual_seed(0)
    config = ModelConfig(encoder=encoder, encoder_params=_ENCODERS[encoder], decoder_dim=8, joiner_dim=8)
    base = build_model(config, 12).eval()
    wrapped_config = cohort_input_config(model_config_to_dict(config), ["rank1", "rank2"], 4, combine)
    wrapped = build_model(model_config_from_dict(wrapped_config), 12).eval()
    missing = wrapped.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert all(".cohort_" in key for key in missing)
    attach_cohort_map(wrapped, {"a": "rank1", "b": "rank2"})
    return base, wrapped


@pytest.mark.parametrize("encoder", sorted(_ENCODERS))
@pytest.mark.parametrize("combine", ["add", "concat"])
def test_cohort_input_starts_as_the_baseline_offline_and_streaming(encoder, combine):
    from asrtools.decoding.greedy import greedy_search
    from asrtools.decoding.streaming import streaming_greedy_search

    base, wrapped = _wrapped_pair(encoder, combine)
    x, lens = torch.randn(3, 48, 80), torch.tensor([48, 40, 24])
    condition_on_speakers(wrapped, ["a", "b", "unknown"])
    with torch.no_grad():
        expected, expected_lens = base.encoder(x, lens)
        got, got_lens = wrapped.encoder(x, lens)
        assert torch.equal(got_lens, expected_lens)
        for b, n in enumerate(expected_lens.tolist()):
            torch.testing.assert_close(got[b, :n], expected[b, :n], rtol=0, atol=1e-6)
        chunk = 2 * wrapped.encoder.chunk_frames_multiple
        assert streaming_greedy_search(wrapped, x, lens, chunk) == greedy_search(base, expected, expected_lens)
        # A trained (non-zero) cohort input still streams exactly.
        torch.nn.init.normal_(wrapped.encoder.cohort_proj.weight)
        sizes = [chunk] * (48 // chunk)
        assert_streaming_equals_offline(wrapped.encoder, x, lens, sizes, atol=1e-4)
        changed, _ = wrapped.encoder(x, lens)
        assert not torch.allclose(changed[0], expected[0])  # the cohort now changes the output


def test_cohort_ids_come_from_the_map_and_unknown_labels_fail():
    _, wrapped = _wrapped_pair("lstm", "add")
    unknown = wrapped.encoder.unknown_id
    assert unknown == 3 and wrapped.encoder.cohort_ids_of(["b", "a", "nobody"]).tolist() == [2, 1, unknown]
    attach_cohort_map(wrapped, {"a": "rank9"})
    with pytest.raises(DataError, match="rank9"):
        wrapped.encoder.cohort_ids_of(["a"])
    with pytest.raises(ConfigError, match="no cohort input"):
        attach_cohort_map(nn.Module(), {})


def test_speakers_missing_from_the_map_get_their_own_unknown_cohort():
    """Not cohort 0 (the no-cohort input) and not a real cohort: an own row, zero at the start (so a
    fresh model gives them the baseline's input), trainable; an old table without it is refused."""
    base, wrapped = _wrapped_pair("lstm", "add")
    enc = wrapped.encoder
    assert enc.cohort_embedding.num_embeddings == 4  # no cohort, rank1, rank2, (unknown)
    assert torch.count_nonzero(enc.cohort_embedding.weight[enc.unknown_id]) == 0
    x, lens = torch.randn(4, 48, 80), torch.tensor([48, 48, 48, 48])
    with torch.no_grad():
        torch.nn.init.normal_(enc.cohort_proj.weight)
        torch.nn.init.normal_(enc.cohort_embedding.weight[enc.unknown_id])
        condition_on_speakers(wrapped, ["a", "b", "nobody"])
        outputs, _ = enc(x[:3], lens[:3])
        enc.set_cohorts(torch.tensor([0]))
        no_cohort, _ = enc(x[2:3], lens[2:3])
    assert not torch.allclose(outputs[2], no_cohort[0])  # unknown != the no-cohort input
    assert not torch.allclose(outputs[2], outputs[0]) and not torch.allclose(outputs[2], outputs[1])
    old = {k: (v[:3] if k.endswith("cohort_embedding.weight") else v) for k, v in wrapped.state_dict().items()}
    with pytest.raises(DataError, match="no row for '\\(unknown\\)'"):
        wrapped.load_state_dict(old)
    with pytest.raises(ConfigError, match="reserved"):
        config = ModelConfig(encoder="lstm", encoder_params=_ENCODERS["lstm"], decoder_dim=8, joiner_dim=8)
        build_model(model_config_from_dict(cohort_input_config(model_config_to_dict(config), ["rank1", "(unknown)"],
                                                               4, "add")), 12)


def test_cohort_input_run_counts_speakers_missing_from_the_map(corpus, tmp_path, caplog):
    """The training log and cohort_coverage.json say how many training / dev speakers got `(unknown)`,
    and the mitigation page prints it."""
    import logging

    from asrtools.config import from_dict
    from asrtools.fairness.mitigation.results import results_markdown
    from asrtools.training.distributed import setup_distributed
    from asrtools.training.task import TrainPaths
    from asrtools.training.tasks.mitigation import COVERAGE_NAME, MitigationTask, MitigationTrainConfig
    from test_train_helpers import TINY_CONFIG

    assignments = _write_assignments(tmp_path / "a.json", {"spk0": "rank1", "spk1": "rank2", "spk2": "rank1"},
                                     ["rank1", "rank2"])
    model = cohort_input_config(TINY_CONFIG["model"], ["rank1", "rank2"], 4, "add")
    config = from_dict(MitigationTrainConfig, {**TINY_CONFIG, "model": model, "task": "mitigation"})
    paths = TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], tmp_path,
                       extra_inputs={"assignments": assignments})
    task = MitigationTask(config, paths, setup_distributed("cpu"), logging.getLogger("asrtools.test"))
    with caplog.at_level(logging.INFO, logger="asrtools.test"):
        train, dev = task.load_cuts("train"), task.load_cuts("dev")
    spk3 = {split: sum(cut_speaker(c) == "spk3" for c in cuts) for split, cuts in (("train", train), ("dev", dev))}
    assert spk3["train"] > 0
    coverage = json.loads((tmp_path / COVERAGE_NAME).read_text())
    assert coverage["train"]["unknown_speakers"] == 1 and coverage["train"]["unknown_examples"] == ["spk3"]
    assert coverage["train"]["unknown_utterances"] == spk3["train"]
    assert coverage["train"]["utterances"] == len(train) and coverage["dev"]["utterances"] == len(dev)
    assert f"train: 1 of 4 speakers ({spk3['train']} of {len(train)} utterances) are not in" in caplog.text
    assert task.model.encoder.cohort_ids_of(["spk3", "spk1"]).tolist() == [3, 2]
    row = {"name": "cohort input", "overall_wer": 0.3, "worst_wer": 0.4, "worst_cohort": "rank1", "max_wer": None,
           "variance": None, "rel_gap": None, "diff_overall": None, "train_minutes": 1.0, "fisher_minutes": None,
           "cohort_coverage": coverage}
    page = results_markdown([row])
    assert (f"- cohort input: speakers missing from the cohort map get the explicit cohort `(unknown)`: dev "
            f"{coverage['dev']['unknown_speakers']} of") in page
    assert f"train 1 of 4 speakers ({spk3['train']} of {len(train)} utterances)" in page


# ----------------------------------------------------------------------------- assignments


def _write_assignments(path: Path, cohorts: Dict[str, str], ranking: List[str], mode: str = "applied") -> Path:
    path.write_text(json.dumps({"method": "geo", "mode": mode, "cohorts": cohorts, "ranking": ranking}))
    return path


def test_assignments_are_checked(tmp_path):
    good = read_assignments(_write_assignments(tmp_path / "a.json", {"s1": "rank2", "s2": "rank1"}, ["rank1", "rank2"]))
    assert good.worst(1) == ["rank1"] and good.speakers_in(["rank1"]) == {"s2"}
    with pytest.raises(DataError, match="worst_k 3"):
        good.worst(3)
    with pytest.raises(DataError, match="speaker s1's cohort 'x' is not in the ranking"):
        read_assignments(_write_assignments(tmp_path / "b.json", {"s1": "x"}, ["rank1"]))
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(DataError, match="cohorts"):
        read_assignments(tmp_path / "c.json")


# -------------------------------------------------------------------------------- CLI smoke


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory) -> Path:
    """A tiny transducer trained for two epochs (the 'baseline')."""
    from asrtools.training.config import load_train_config
    from asrtools.training.distributed import setup_distributed
    from asrtools.training.trainer import Trainer, TrainPaths

    root = tmp_path_factory.mktemp("baseline")
    config = load_train_config(write_config(root / "c.yaml", {"num_epochs": 2}))
    (root / "exp").mkdir()
    Trainer(config, TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], root / "exp"),
            setup_distributed("cpu")).run()
    return root / "exp" / "final.pt"


def _mitigation_conf(path: Path) -> Path:
    import yaml
    from test_train_helpers import TINY_CONFIG

    conf = {k: v for k, v in TINY_CONFIG.items() if k != "model"}
    conf.update({"max_steps": 3, "num_epochs": 50, "loss": {"warm_steps": 0, "prune_range": 4},
                 "valid": {"wer_utts": 0}, "mitigation": {"worst_k": 1, "fisher_utts": 6}})
    path.write_text(yaml.safe_dump(conf))
    return path


def _invoke(args: List[str], ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_mitigate_cli_end_to_end(corpus, baseline, tmp_path, monkeypatch):
    monkeypatch.setenv("ASRTOOLS_RNNT_BACKEND", "native")
    conf = _mitigation_conf(tmp_path / "mitigate.yaml")
    train = _write_assignments(tmp_path / "train.json", {"spk0": "rank1", "spk1": "rank1", "spk2": "rank2",
                                                         "spk3": "rank2"}, ["rank1", "rank2"])
    common = ["--config", conf, "--baseline", baseline, "--cuts-train", corpus["cuts_train"], "--cuts-dev",
              corpus["cuts_dev"], "--bpe-model", corpus["bpe_model"], "--assignments", train]
    _invoke(["mitigate", "fisher", "--config", conf, "--baseline", baseline, "--cuts-train", corpus["cuts_train"],
             "--bpe-model", corpus["bpe_model"], "--out-dir", tmp_path / "fisher"])
    info = json.loads((tmp_path / "fisher" / "fisher.json").read_text())
    assert info["num_utterances"] == 6 and info["baseline_sha256"] == hash_file(baseline)
    fisher = torch.load(tmp_path / "fisher" / "fisher.pt", weights_only=True)
    assert set(fisher) == {n for n, _ in build_model_from(baseline).named_parameters()}

    exp = tmp_path / "exp"
    _invoke(["mitigate", "finetune", *common, "--penalty", "ewc", "--lambda", "10", "--fisher", tmp_path / "fisher",
             "--exp-dir", exp / "ewc"])
    _invoke(["mitigate", "oversample", *common, "--factor", "3", "--exp-dir", exp / "oversample"])
    _invoke(["mitigate", "cohort-input", *common, "--dim", "4", "--exp-dir", exp / "cohort"])
    marker = json.loads((exp / "ewc" / ".done.json").read_text())
    assert marker["params"]["regularizers"] == {"ewc": {"kind": "ewc", "lambda": 10.0, "fisher": True}}
    assert marker["params"]["config"]["mitigation"]["data"] == "cohorts"
    assert json.loads((exp / "ewc" / "train_summary.json").read_text())["steps"] == 3
    before = (exp / "ewc" / ".done.json").read_bytes()
    _invoke(["mitigate", "ewc", *common, "--lambda", "10", "--fisher", tmp_path / "fisher", "--exp-dir", exp / "ewc"])
    assert (exp / "ewc" / ".done.json").read_bytes() == before  # `mitigate ewc` is the same stage: up to date

    # A Fisher of another baseline is refused at the door, before the stage directory exists.
    other = tmp_path / "other.pt"
    torch.save({**torch.load(baseline, weights_only=True), "step": -1}, other)
    bad = _invoke(["mitigate", "finetune", *[other if a == baseline else a for a in common], "--penalty", "ewc",
                   "--lambda", "1", "--fisher", tmp_path / "fisher", "--exp-dir", exp / "bad"], ok=False)
    assert bad.exit_code == 1 and "the Fisher was estimated on" in bad.output
    assert not (exp / "bad").exists()

    # Decode (the cohort model needs --cohort-map), evaluate against the baseline, build the table.
    heldout = _write_assignments(tmp_path / "heldout.json", {"spk0": "rank1", "spk1": "rank2", "spk2": "rank1",
                                                             "spk3": "rank2"}, ["rank1", "rank2"], "crossfit")
    decode = ["decode", "--cuts", corpus["cuts_dev"], "--bpe-model", corpus["bpe_model"]]
    _invoke([*decode, "--exp-dir", baseline.parent, "--checkpoint", baseline.name, "--out-dir", tmp_path / "d_base"])
    missing = _invoke([*decode, "--exp-dir", exp / "cohort", "--checkpoint", "final.pt", "--out-dir",
                       tmp_path / "d_cohort"], ok=False)
    assert "--cohort-map" in missing.output
    for name, extra in (("cohort", ["--cohort-map", heldout, "--method", "streaming_greedy", "--chunk-frames", "8"]),
                        ("ewc", [])):
        _invoke([*decode, "--exp-dir", exp / name, "--checkpoint", "final.pt", "--out-dir", tmp_path / f"d_{name}",
                 *extra])
    fast = ["--n-boot", "50", "--n-permutations", "50", "--assignments", heldout]
    _invoke(["mitigate", "evaluate", "--decode", tmp_path / "d_base", "--name", "baseline", *fast,
             "--out-dir", tmp_path / "e_base"])
    for name in ("ewc", "cohort"):
        fisher_opt = ["--fisher-dir", tmp_path / "fisher"] if name == "ewc" else []
        _invoke(["mitigate", "evaluate", "--decode", tmp_path / f"d_{name}", "--baseline-decode", tmp_path / "d_base",
                 "--name", name, "--train-dir", exp / name, *fisher_opt, *fast, "--out-dir", tmp_path / f"e_{name}"])
    doc = json.loads((tmp_path / "e_ewc" / "evaluation.json").read_text())
    assert doc["cost"]["method"]["penalty"] == "ewc" and doc["cost"]["fisher_minutes"] is not None
    summary = json.loads((exp / "ewc" / "train_summary.json").read_text())
    assert doc["cost"]["train_minutes"] == pytest.approx(summary["train_seconds"] / 60.0)  # the trainer's own sum
    assert doc["worst_ranked"]["cohort"] == "rank1"
    assert {c["cohort"] for c in doc["vs_baseline"]["cohorts"]} == {"rank1", "rank2"}
    for cohort in doc["vs_baseline"]["cohorts"]:  # tested only at or above the size floor (5 speakers)
        tested = cohort["n_speakers"] >= 5
        assert (cohort["p_bootstrap_holm"] is not None) == tested and cohort["tested"] == tested
        assert tested or cohort["verdict"] == f"too few speakers ({cohort['n_speakers']} < 5)"
    coverage = json.loads((tmp_path / "e_cohort" / "evaluation.json").read_text())["cost"]["cohort_coverage"]
    assert coverage["train"]["unknown_speakers"] == 0 and coverage["train"]["speakers"] == 4
    _invoke(["mitigate", "results", "--eval", tmp_path / "e_base", "--eval", tmp_path / "e_ewc", "--eval",
             f"cohort input={tmp_path / 'e_cohort'}", "--out-dir", tmp_path / "results"])
    table = (tmp_path / "results" / "results.md").read_text()
    assert table.splitlines()[0].startswith("| method | overall WER | worst-region WER | max | variance")
    assert "| cohort input |" in table and "(+" in table  # EWC shows its Fisher minutes
    assert (tmp_path / "results" / "tradeoff.png").stat().st_size > 1000


def build_model_from(checkpoint: Path) -> nn.Module:
    from asrtools.decoding.recognize import load_model

    return load_model(checkpoint)[0]


def test_held_out_speakers_without_cohort_are_an_error(corpus, baseline, tmp_path):
    from asrtools.fairness.mitigation.evaluate import EvalOptions, evaluation
    from asrtools.scoring.report import load_report

    _invoke(["decode", "--cuts", corpus["cuts_dev"], "--bpe-model", corpus["bpe_model"], "--exp-dir",
             baseline.parent, "--checkpoint", baseline.name, "--out-dir", tmp_path / "d"])
    partial = read_assignments(_write_assignments(tmp_path / "a.json", {"spk0": "rank1"}, ["rank1"]))
    with pytest.raises(DataError, match="has no cohort in"):
        evaluation("x", load_report(tmp_path / "d"), None, partial, {}, EvalOptions(0, 0), {"decode": "d"})


@pytest.mark.parametrize("data", ["general", "cohorts", "pooled"])
def test_mitigation_task_chooses_the_worst_cohorts_cuts(corpus, tmp_path, data):
    import logging

    from asrtools.training.distributed import setup_distributed
    from asrtools.training.task import TrainPaths
    from asrtools.config import from_dict
    from asrtools.training.tasks.mitigation import MitigationTask, MitigationTrainConfig
    from test_train_helpers import TINY_CONFIG

    assignments = _write_assignments(tmp_path / "a.json", {"spk0": "rank1", "spk1": "rank2", "spk2": "rank3",
                                                           "spk3": "rank3"}, ["rank2", "rank1", "rank3"])
    config = from_dict(MitigationTrainConfig, {**TINY_CONFIG, "task": "mitigation",
                                               "mitigation": {"data": data, "worst_k": 2, "dev_utts": 3}})
    paths = TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], tmp_path,
                       extra_inputs={"assignments": assignments})
    task = MitigationTask(config, paths, setup_distributed("cpu"), logging.getLogger("test"))
    train = Counter(cut_speaker(c) for c in task.load_cuts("train"))
    everything = Counter(cut_speaker(c) for c in load_cuts(corpus["cuts_train"]))
    bottom = everything["spk0"] + everything["spk1"]
    if data == "general":
        assert train == everything
    elif data == "cohorts":
        assert train == Counter({"spk0": everything["spk0"], "spk1": everything["spk1"]})
    else:
        assert train["spk0"] + train["spk1"] == bottom and train["spk2"] + train["spk3"] == bottom
    assert len(task.load_cuts("dev")) == 3
    no_cohorts = TrainPaths(corpus["cuts_train"], corpus["cuts_dev"], corpus["bpe_model"], tmp_path)
    if data == "general":  # the continue-training control needs no cohorts
        MitigationTask(config, no_cohorts, setup_distributed("cpu"), logging.getLogger("test"))
    else:
        with pytest.raises(ConfigError, match="assignments"):
            MitigationTask(config, no_cohorts, setup_distributed("cpu"), logging.getLogger("test"))


def test_the_recipe_config_loads_and_a_model_section_is_refused(tmp_path):
    from asrtools.fairness.mitigation.finetune import mitigation_config

    model = model_config_to_dict(ModelConfig())
    repo = Path(__file__).resolve().parents[1]
    config = mitigation_config(repo / "egs/synth/fairness/conf/mitigate.yaml", [], model, {"mitigation": {"data": "pooled"}})
    assert config.max_steps > 0 and config.mitigation.data == "pooled" and config.loss.warm_steps == 0
    with pytest.raises(ConfigError, match="the model comes from --baseline"):
        mitigation_config(None, ["model.decoder_dim=8"], model, {})
