"""The speaker task on the shared trainer: losses, ARW weights, learning, exact resume of min-max training."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
import torch
import torch.nn.functional as F

from asrtools.errors import ConfigError
from asrtools.losses.arw import Adversary, arw_weights, weighted_loss
from asrtools.losses.metric import AAMSoftmax, AngularPrototypical, MetricTerms
from asrtools.models.checkpoint import load_checkpoint
from asrtools.models.speaker import EcapaTdnn, SpeakerModelConfig
from asrtools.training.config import load_train_config

from sv_helpers import make_sv_corpus, sv_env, sv_train_cmd, write_sv_config


def test_arw_weights_follow_the_formula_and_sum_to_2n():
    logits = torch.tensor([0.0, 1.0, -2.0, 3.0])
    s = torch.sigmoid(logits)
    lam = arw_weights(logits)
    assert torch.allclose(lam, 1 + 4 * s / s.sum())
    assert float(lam.sum()) == pytest.approx(8.0)


def test_weighted_loss_with_equal_weights_is_the_unweighted_loss():
    torch.manual_seed(0)
    head = AngularPrototypical("pairs")
    labels = torch.tensor([0, 1, 2, 2, 3])
    terms = head(torch.randn(5, 8), torch.randn(5, 8), labels)
    assert not terms.pair_mask[2, 3] and terms.pair_mask[0, 1]
    equal = torch.full((5,), 2.0)
    for variant in ("aps", "pl", "pw"):
        assert float(weighted_loss(variant, terms, equal).detach()) == pytest.approx(float(terms.mean().detach()), rel=1e-6)
    # pw: pair (i, j) gets (w_i + w_j) / 2 of the normalised weights
    w = torch.tensor([1.0, 3.0, 1.0, 1.0, 4.0])
    expected = ((w / w.mean())[:, None] + (w / w.mean())[None, :]) / 2 * terms.pair
    assert float(weighted_loss("pw", terms, w).detach()) == pytest.approx(float(expected.sum().detach() / terms.pair_mask.sum()))


def test_adversary_step_moves_weight_to_the_high_loss_samples():
    torch.manual_seed(0)
    inputs = torch.eye(4)
    terms = MetricTerms(sample=torch.tensor([0.1, 0.1, 0.1, 5.0]))
    adversary = Adversary(4, 0)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=0.1)
    before = arw_weights(adversary(inputs)).detach()
    for _ in range(20):
        optimizer.zero_grad()
        (-weighted_loss("pl", terms, arw_weights(adversary(inputs)))).backward()
        optimizer.step()
    after = arw_weights(adversary(inputs)).detach()
    assert after[3] > before[3] and after[3] == after.max()


def test_aam_softmax_with_zero_margin_is_scaled_cosine_softmax():
    torch.manual_seed(0)
    head = AAMSoftmax(8, 5, margin=0.0, scale=10.0)
    emb, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    cos = F.linear(F.normalize(emb), F.normalize(head.weight))
    expected = F.cross_entropy(10.0 * cos, labels, reduction="none")
    assert torch.allclose(head(emb, labels).sample, expected, atol=1e-5)
    assert (head(emb, labels, margin=0.3).sample > expected).all()


def test_ap_softmax_form_is_chungs_loss():
    torch.manual_seed(0)
    head = AngularPrototypical("softmax", 10.0, -5.0)
    a, p, labels = torch.randn(4, 8), torch.randn(4, 8), torch.arange(4)
    logits = F.linear(F.normalize(a), F.normalize(p)) * 10.0 - 5.0
    assert torch.allclose(head(a, p, labels).sample, F.cross_entropy(logits, torch.arange(4), reduction="none"))


def test_ecapa_pooling_ignores_padding_and_sizes_match_the_configs():
    from asrtools.models.speaker import AttentiveStatsPool

    torch.manual_seed(0)
    pool = AttentiveStatsPool(6, 4).eval()
    x = torch.randn(1, 6, 30)
    padded = torch.cat([x, torch.randn(1, 6, 20) * 100], dim=2)
    mask = (torch.arange(50) < 30).float()[None, None]
    assert torch.allclose(pool(x, torch.ones(1, 1, 30)), pool(padded, mask), atol=1e-5)
    model = EcapaTdnn(SpeakerModelConfig(channels=16, num_blocks=2, res2_scale=4, se_channels=8,
                                         attention_channels=8, embed_dim=12)).eval()
    assert model(torch.randn(2, 40, 80), torch.tensor([40, 31])).shape == (2, 12)
    cpu = sum(p.numel() for p in EcapaTdnn(SpeakerModelConfig(channels=192, se_channels=96,
                                                                attention_channels=96)).parameters())
    gpu = sum(p.numel() for p in EcapaTdnn(SpeakerModelConfig(channels=1024, attention_channels=128)).parameters())
    assert 1e6 <= cpu <= 3e6 and gpu > 14e6


def test_pair_variants_need_the_pair_form_of_the_loss(tmp_path):
    config = write_sv_config(tmp_path / "c.yaml", {"loss": {"type": "aam"}, "arw": {"variant": "pw"}})
    with pytest.raises(ConfigError, match="needs loss.type ap"):
        load_train_config(config)
    load_train_config(write_sv_config(tmp_path / "d.yaml", {"loss": {"type": "aam"}, "arw": {"variant": "pl"}}))
    with pytest.raises(ConfigError, match="best_k_by_dev_wer"):
        load_train_config(write_sv_config(tmp_path / "e.yaml", {"average": "best_k_by_dev_wer"}))


def test_tiny_speaker_model_learns_and_selects_by_dev_eer(tmp_path):
    """AAM-softmax separates the training speakers (dev = the training cuts: 8 speakers are too few
    to generalise to new ones), and `best_k_by_dev_eer` averages the two best epochs."""
    corpus = make_sv_corpus(tmp_path / "data", {"train": 8})
    corpus["cuts_dev"] = corpus["cuts_train"]
    config = write_sv_config(tmp_path / "c.yaml", {"num_epochs": 8, "loss": {"type": "aam"},
                                                   "optim": {"lr": 1.0e-2}, "average": "best_k_by_dev_eer",
                                                   "average_last_n": 2})
    exp = tmp_path / "exp"
    subprocess.run(sv_train_cmd(config, corpus, exp), env=sv_env(), check=True, capture_output=True)
    import json

    summary = json.loads((exp / "train_summary.json").read_text())
    eers = {int(e): m["eer"] for e, m in summary["valid_history"].items()}
    assert eers[1] > 0.1 and min(eers.values()) < 0.06, eers
    best = sorted(eers, key=lambda e: (eers[e], -e))[:2]
    assert summary["selection"]["chosen"] == [f"epoch-{e}.pt" for e in sorted(best)]


@pytest.mark.parametrize("variant", ["pw", "pl"])
def test_exact_resume_of_min_max_training_after_sigkill(tmp_path, variant):
    corpus = make_sv_corpus(tmp_path / "data", {"train": 8, "dev": 4})
    config = write_sv_config(tmp_path / "c.yaml", {
        "num_epochs": 3, "arw": {"variant": variant, "warmup_steps": 2, "num_clusters": 3, "kmeans_buffer": 32,
                                 "kmeans_every": 3, "hidden_dim": 8}})
    straight = tmp_path / "straight"
    subprocess.run(sv_train_cmd(config, corpus, straight), env=sv_env(), check=True, capture_output=True)

    seed = int(os.environ.get("ASRTOOLS_TEST_SEED", "2026"))
    kill_after = random.Random(seed).choice([4, 6, 8])
    exp = tmp_path / "killed"
    proc = subprocess.Popen(sv_train_cmd(config, corpus, exp), env=sv_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (exp / f"checkpoint-{kill_after}.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    still_running = proc.poll() is None and not (exp / "final.pt").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running, f"training finished before it could be killed (ASRTOOLS_TEST_SEED={seed})"

    resumed = subprocess.run(sv_train_cmd(config, corpus, exp), env=sv_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint-" in resumed.stderr

    for name in ("final.pt", "averaged.pt"):
        a, b = load_checkpoint(straight / name)["model"], load_checkpoint(exp / name)["model"]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    last = "epoch-3.pt"
    ta, tb = load_checkpoint(straight / last)["task_state"], load_checkpoint(exp / last)["task_state"]
    for key, value in ta["adversary"].items():
        assert torch.equal(value, tb["adversary"][key]), key
    assert ta["adversary_optimizer"]["state"].keys() == tb["adversary_optimizer"]["state"].keys()
    for k, state in ta["adversary_optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], tb["adversary_optimizer"]["state"][k]["exp_avg"])
    assert torch.equal(ta["labeler"]["centroids"], tb["labeler"]["centroids"])
    # the summary says how many ARW steps and k-means fits each epoch checkpoint had seen, resumed or not
    import json

    history = [json.loads((d / "train_summary.json").read_text())["valid_history"] for d in (straight, exp)]
    assert history[0] == history[1]
    steps = [history[0][str(e)]["arw_steps"] for e in (1, 2, 3)]
    assert 0 < steps[0] < steps[1] < steps[2] == ta["arw_steps"], steps
    assert history[0]["3"]["pseudo_label_refits"] == ta["labeler"]["refits"] >= 2


def test_torchrun_two_processes_train_the_adversary_in_step(tmp_path):
    import sys

    corpus = make_sv_corpus(tmp_path / "data", {"train": 8, "dev": 4})
    config = write_sv_config(tmp_path / "c.yaml", {
        "num_epochs": 1, "save_every_n_steps": 0,
        "arw": {"variant": "pw", "warmup_steps": 0, "num_clusters": 2, "kmeans_buffer": 16, "hidden_dim": 4}})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
           *sv_train_cmd(config, corpus, tmp_path / "exp")]
    result = subprocess.run(cmd, env=sv_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "exp" / "epoch-1.pt")
    assert len(ckpt["rank_states"]) == 2 and ckpt["step"] >= 2
    assert ckpt["task_state"]["adversary_optimizer"]["state"], "the adversary was never updated"
    assert "eer" in ckpt["valid"]


def test_bpe_model_is_optional_except_for_the_transducer(tmp_path):
    from conftest import run_asrtools

    corpus = make_sv_corpus(tmp_path / "data", {"train": 2, "dev": 2}, utts=2)
    proc = run_asrtools(["train", "--cuts-train", str(corpus["cuts_train"]), "--cuts-dev", str(corpus["cuts_dev"]),
                         "--exp-dir", str(tmp_path / "exp")], check=False)
    assert proc.returncode == 1 and "needs a BPE model (--bpe-model)" in proc.stderr
    assert not (tmp_path / "exp").exists()


def _blobs(seed: int, per_cluster: int = 40, k: int = 5, dim: int = 8, spread: float = 0.15) -> torch.Tensor:
    """(k * per_cluster, dim) points around k random unit directions."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, dim, generator=g), dim=1)
    return torch.cat([c + spread * torch.randn(per_cluster, dim, generator=g) for c in centres])


def _fitted(points: torch.Tensor, seed: int, k: int = 5):
    from asrtools.losses.arw import PseudoLabeler

    labeler = PseudoLabeler(points.shape[1], k, len(points), seed)
    labeler.add(points)
    assert labeler.fit(step=0)
    return labeler


def test_pseudo_labels_keep_their_identity_across_refits():
    """A refit on the same embeddings returns the same labels; one on perturbed embeddings keeps
    each cluster's index. A fresh k-means (what every refit used to be) renumbers the clusters,
    which is what scrambled the PL adversary's targets."""
    points = _blobs(0)
    labeler = _fitted(points, seed=3)
    first = labeler.assign(points)
    for step in (100, 200, 300):  # later refits use other k-means seeds: only warm start + matching keep the ids
        assert labeler.fit(step)
        assert torch.equal(labeler.assign(points), first), step
        assert labeler.last_changed == 0.0
    assert labeler.refits == 4

    fresh = _fitted(points, seed=11).assign(points)
    same_partition = {(int(a), int(b)) for a, b in zip(first, fresh)}
    assert len(same_partition) == 5, "the blobs are separable: both fits find the same 5 regions"
    assert not torch.equal(fresh, first), "a fresh k-means numbers the regions differently"

    moved = points + 0.03 * torch.randn(points.shape, generator=torch.Generator().manual_seed(1))
    labeler.add(moved)
    assert labeler.fit(400)
    agree = float((labeler.assign(moved) == first).float().mean())
    assert agree > 0.97 and labeler.last_changed < 0.03, agree


def test_refit_matching_undoes_a_permutation_of_the_centroids():
    from asrtools.losses.arw import match_clusters

    previous = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    permutation = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = previous[permutation] + 0.01
    order = torch.from_numpy(match_clusters(F.normalize(shuffled, dim=1), previous))
    assert torch.equal(permutation[order], torch.arange(6))


def test_checkpoint_selection_reports_the_epochs_and_their_arw_steps():
    from asrtools.scoring.sv_report import checkpoint_selection, selection_lines

    summary = {"epochs": 4, "selection": {"chosen": ["epoch-2.pt", "epoch-4.pt"]},
               "valid_history": {str(e): {"eer": 0.1, "arw_steps": 10.0 * e, "pseudo_label_refits": e}
                                 for e in range(1, 5)}}
    sel = checkpoint_selection(summary)
    assert sel == {"epochs_trained": 4, "selected_epochs": [2, 4], "arw_steps": [20, 40],
                   "pseudo_label_refits": [2, 4]}
    plain = checkpoint_selection({"epochs": 3, "selection": {"chosen": ["epoch-3.pt"]},
                                  "valid_history": {"3": {"eer": 0.2}}})
    assert plain["selected_epochs"] == [3] and plain["arw_steps"] is None
    assert checkpoint_selection({"epochs": 1, "selection": {"chosen": ["final.pt"]}})["selected_epochs"] is None
    table = "\n".join(selection_lines([{"name": "pl", "provenance": {"selection": sel}},
                                       {"name": "base", "provenance": {"selection": plain}}]))
    assert "| pl | 2, 4 (of 4) | 20, 40 | 2, 4 |" in table and "| base | 3 (of 3) | – | – |" in table
