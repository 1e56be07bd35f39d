"""The STS loss terms: the <eot> latency penalty touches only late <eot> arcs; FastEmit scales
symbol-arc gradients by 1 + lambda and leaves the loss value alone; the model's loss runs."""
from __future__ import annotations

import math

import pytest
import torch

from asrtools.losses import rnnt
from asrtools.losses.turn_penalties import eot_deadlines, eot_lateness, eot_latency_penalty, fast_emit
from asrtools.models.sts import StsModelConfig, build_sts_model

EOT = 4


def _lattice(seed: int = 0, B: int = 2, S: int = 5, T: int = 7):
    g = torch.Generator().manual_seed(seed)
    lm = torch.randn(B, S + 1, 9, generator=g, dtype=torch.float64)
    am = torch.randn(B, T, 9, generator=g, dtype=torch.float64)
    symbols = torch.tensor([[3, 5, 6, EOT, 7], [3, 8, EOT, 3, EOT]])
    boundary = torch.tensor([[0, 0, S, T], [0, 0, S, T - 2]])
    px, py = rnnt.get_rnnt_logprobs_smoothed(lm, am, symbols, 0, 0.25, 0.0, boundary, backend="native")
    return px, py, symbols, boundary


def test_deadlines_sit_on_eot_positions_only():
    _, _, symbols, _ = _lattice()
    deadlines = eot_deadlines(symbols, EOT, [[(3, 0.1)], [(2, 0.08), (4, 0.2)]])
    assert torch.isinf(deadlines[symbols != EOT]).all()
    assert deadlines[0, 3] == pytest.approx(0.1) and deadlines[1, 2] == pytest.approx(0.08)
    with pytest.raises(ValueError, match="not <eot>"):
        eot_deadlines(symbols, EOT, [[(0, 1.0)], []])


def test_latency_penalty_changes_only_late_eot_arcs_by_weight_times_lateness():
    px, _, symbols, _ = _lattice()
    deadlines = eot_deadlines(symbols, EOT, [[(3, 0.1)], [(2, 0.08), (4, 0.2)]])
    penalised = eot_latency_penalty(px, deadlines, frame_seconds=0.04, weight=2.0)
    diff = penalised - px
    finite = torch.isfinite(px)
    late = eot_lateness(deadlines, px.shape[2], 0.04)
    # emission on frame t is stamped (t + 1) * 0.04: an <eot> due at 0.1 s is late from frame 2 (0.12 s)
    assert late[0, 3, :3].tolist() == pytest.approx([0.0, 0.0, 0.02])
    changed = (diff != 0) & finite
    assert changed.any()
    assert (symbols.unsqueeze(2).expand_as(px)[changed] == EOT).all()  # only <eot> rows move
    assert torch.allclose(diff[finite], (-2.0 * late.to(px.dtype))[finite])
    assert (diff[finite & (late == 0)] == 0).all()  # on-time <eot> arcs untouched


def test_latency_penalty_gradient_is_zero_off_the_late_eot_arcs():
    px, py, symbols, boundary = _lattice()
    deadlines = eot_deadlines(symbols, EOT, [[(3, 0.1)], [(2, 0.08), (4, 0.2)]])
    weight = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    penalised = eot_latency_penalty(px.detach(), deadlines, 0.04, weight)
    # d(penalised arcs)/d(weight), arc by arc: -lateness on late <eot> arcs, 0 everywhere else
    jac = torch.stack([torch.autograd.grad(penalised[idx], weight, retain_graph=True)[0]
                       for idx in zip(*[i.flatten() for i in torch.meshgrid(
                           *[torch.arange(n) for n in px.shape], indexing="ij")])]).view(px.shape)
    late = eot_lateness(deadlines, px.shape[2], 0.04).to(px.dtype)
    finite = torch.isfinite(px)
    assert torch.allclose(jac[finite], -late[finite])
    assert (jac[symbols.unsqueeze(2).expand_as(px) != EOT] == 0).all()
    # through the lattice: d loss / d weight = sum over late <eot> arcs of occupation * lateness
    px_arcs = px.detach().requires_grad_(True)
    loss = -rnnt.mutual_information_recursion(eot_latency_penalty(px_arcs, deadlines, 0.04, weight), py, boundary,
                                              backend="native").sum()
    g_weight, g_px = torch.autograd.grad(loss, [weight, px_arcs])
    occupation = -g_px
    assert g_weight.item() == pytest.approx((occupation * late)[finite].sum().item(), rel=1e-9)
    assert g_weight.item() > 0


def test_zero_weight_returns_the_arcs_unchanged():
    px, _, symbols, _ = _lattice()
    deadlines = eot_deadlines(symbols, EOT, [[(3, 0.0)], []])
    assert eot_latency_penalty(px, deadlines, 0.04, 0.0) is px


def test_fast_emit_scales_symbol_arc_gradients_and_keeps_the_value():
    px, py, _, boundary = _lattice(seed=3)
    lam = 0.3

    def grads(with_fast_emit: bool):
        a = px.detach().requires_grad_(True)
        b = py.detach().requires_grad_(True)
        totals, (occ, _) = rnnt.mutual_information_recursion(a, b, boundary, return_grad=True, backend="native")
        loss = -totals.sum()
        if with_fast_emit:
            loss = loss + fast_emit(a, occ, lam)
        return (loss.item(), *torch.autograd.grad(loss, [a, b]))

    value, gx, gy = grads(False)
    value_fe, gx_fe, gy_fe = grads(True)
    assert value_fe == pytest.approx(value, rel=0, abs=1e-12)
    assert torch.allclose(gx_fe, (1 + lam) * gx)
    assert torch.allclose(gy_fe, gy)


def test_sts_model_loss_is_finite_and_penalty_raises_it_for_late_eot():
    torch.manual_seed(0)
    config = StsModelConfig(encoder="lstm", encoder_params={"hidden_dim": 16, "num_layers": 1, "subsampling_dim": 16,
                                                            "subsampling_channels": 4},
                            feature_dim=20, decoder_dim=16, joiner_dim=16, branch_hidden=8)
    model = build_sts_model(config, vocab_size=12).double()
    x = torch.randn(2, 80, 20, dtype=torch.float64)
    x_lens = torch.tensor([80, 64])
    # channel-major targets: rows 0-1 channel 0, rows 2-3 channel 1 (row 3 silent)
    y = torch.tensor([[3, 6, 7, EOT], [3, 8, EOT, 0], [3, 9, EOT, 0], [0, 0, 0, 0]])
    y_lens = torch.tensor([4, 3, 3, 0])
    early = eot_deadlines(y, EOT, [[(3, 0.0)], [(2, 0.0)], [(2, 0.0)], []])  # every <eot> late
    kwargs = dict(frame_seconds=0.04, prune_range=3, backend="native")
    base = model(x, x_lens, y, y_lens, early, **kwargs)
    penalised = model(x, x_lens, y, y_lens, early, eot_latency_weight=5.0, **kwargs)
    assert math.isfinite(base.simple.item()) and math.isfinite(base.pruned.item())
    assert penalised.simple.item() > base.simple.item() and penalised.pruned.item() > base.pruned.item()
    assert base.activity_logits.shape == (2, 2, 20)
    # a fresh model is the same transducer on both channels (zero-initialised branch projections)
    channels, _ = model.separate(x, x_lens)
    assert torch.equal(channels[:2], channels[2:])


def test_sts_config_contradictions_fail_at_load():
    from asrtools.errors import ConfigError
    from asrtools.training.config import load_train_config

    ok = load_train_config(None, ["task=sts", "loss.eot_latency_weight=1.0"])
    assert ok.loss.turn_scheme == "sot_eot"
    with pytest.raises(ConfigError, match="eot_latency_weight needs turn_scheme sot_eot"):
        load_train_config(None, ["task=sts", "loss.turn_scheme=speaker_change", "loss.eot_latency_weight=1.0"])
    with pytest.raises(ConfigError, match="turn_scheme 'x' is unknown"):
        load_train_config(None, ["task=sts", "loss.turn_scheme=x"])
    with pytest.raises(ConfigError, match="fastemit_lambda"):
        load_train_config(None, ["task=sts", "loss.fastemit_lambda=-1"])
    with pytest.raises(ConfigError, match="num_channels must be 2"):
        load_train_config(None, ["task=sts", "model.num_channels=3"])
