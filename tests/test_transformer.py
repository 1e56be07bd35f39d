"""Streaming Transformer encoder with per-frame arbitrated sub-blocks: gates, real skipping,
compute accounting, streaming equal to offline, and the compute penalty."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from asrtools.errors import ConfigError
from asrtools.models.compute import summarize_compute
from asrtools.models.encoder import build_encoder
from asrtools.nn.arbitrator import FrameGate, hashed_uniform
from asrtools.nn.attention import RelPositionSelfAttention, chunk_attention_mask
from asrtools.utils.encoder_compute import relative_compute

from streaming_helpers import assert_streaming_equals_offline, random_chunk_sizes

torch.set_num_threads(1)

SMALL = dict(dim=16, num_layers=2, num_heads=2, ffn_dim=24, chunk_size=3, left_context=4,
             max_relative_distance=6, subsampling_channels=4, norm="layer", dropout=0.0)


def small_encoder(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    enc = build_encoder("transformer", 20, **{**SMALL, **overrides}).eval()
    for layer in enc.layers:  # the bias starts at zero; make it matter
        torch.nn.init.normal_(layer.attention.relative_bias.weight)
    return enc


def copy_weights(dense, gated) -> None:
    """Give `gated` the weights of `dense` (its arbitrators keep their own)."""
    missing, unexpected = gated.load_state_dict(dense.state_dict(), strict=False)
    assert not unexpected and all("_gate." in name for name in missing)


def force_decisions(gate: FrameGate, frames_off) -> None:
    """Make `gate` skip exactly the frames `frames_off` (time indices of the call) at inference."""

    def decide(features, uniform):
        decision = torch.ones(uniform.shape, dtype=torch.bool)
        decision[:, list(frames_off)] = False
        return decision

    gate.decide = decide


# ------------------------------------------------------------------ attention


def test_chunk_attention_equals_masked_attention():
    torch.manual_seed(0)
    attn = RelPositionSelfAttention(8, 2, max_relative_distance=3).eval()
    torch.nn.init.normal_(attn.relative_bias.weight)
    chunk, left, frames = 2, 4, 6
    x = torch.randn(2, frames, 8)
    cache = torch.randn(2, left, 8)
    query_pos, key_pos = torch.arange(frames), torch.arange(-left, frames)
    key_valid = torch.ones(2, left + frames, dtype=torch.bool)
    key_valid[0, :3] = False  # the stream's start
    key_valid[1, -1] = False  # padding
    mask = chunk_attention_mask(query_pos, key_pos, chunk, left)[None] & key_valid[:, None, :]
    cache_kv = attn.keys_values(cache)
    expected, _ = attn(x, mask, query_pos, key_pos, list(cache_kv))
    keys, values = attn.keys_values(x)
    keys, values = torch.cat([cache_kv[0], keys], 1), torch.cat([cache_kv[1], values], 1)
    got = attn.chunk_attention(x, keys, values, key_valid, chunk, left)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    rows = torch.tensor([1, 4, 7, 11])
    some = attn.chunk_attention(x.reshape(-1, 8)[rows], keys, values, key_valid, chunk, left, rows, frames)
    torch.testing.assert_close(some, expected.reshape(-1, 8)[rows], rtol=1e-5, atol=1e-5)


def test_inference_position_bias_follows_in_place_weight_changes():
    torch.manual_seed(0)
    attn = RelPositionSelfAttention(8, 2, max_relative_distance=3).eval()
    x, keys_valid = torch.randn(1, 4, 8), torch.ones(1, 6, dtype=torch.bool)
    keys, values = attn.keys_values(torch.randn(1, 6, 8))
    with torch.no_grad():
        before = attn.chunk_attention(x, keys, values, keys_valid, 2, 2)
        attn.relative_bias.weight.normal_()
        after = attn.chunk_attention(x, keys, values, keys_valid, 2, 2)
    fresh = attn.chunk_attention(x, keys, values, keys_valid, 2, 2)  # with autograd: never cached
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh, rtol=0, atol=0)


# ------------------------------------------------------------------ gates


def test_gumbel_gate_is_hard_forward_with_a_gradient_and_samples_at_sigmoid_rate():
    torch.manual_seed(0)
    gate = FrameGate("arbitrator", 4, hidden_dim=0, init_bias=0.5).train()
    torch.nn.init.zeros_(gate.net[0].weight)
    features = torch.randn(1, 20000, 4)
    values = gate(features, torch.zeros(1, 20000))
    assert set(values.unique().tolist()) <= {0.0, 1.0}
    assert abs(values.mean().item() - 1 / (1 + math.exp(-0.5))) < 0.015
    values.sum().backward()
    assert gate.net[0].bias.grad.item() > 0  # opening the gate raises the sum
    gate.eval()
    assert bool(gate.decide(features, torch.zeros(1, 20000)).all())  # logit 0.5 > 0
    gate.forced = False
    assert not bool(gate(features, torch.zeros(1, 20000)).any())


def test_hashed_uniform_is_uniform_and_seeded():
    positions = torch.arange(20000)
    u = hashed_uniform(positions, 0)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float((u < 0.3).float().mean()) - 0.3) < 0.015
    assert torch.equal(u, hashed_uniform(positions, 0))
    v = hashed_uniform(positions, 1)
    assert abs(float(torch.corrcoef(torch.stack([u, v]))[0, 1])) < 0.05


def test_temperature_anneals_geometrically():
    enc = small_encoder(gating="arbitrator", temperature_start=1.0, temperature_end=0.25, temperature_steps=100)
    enc.set_training_progress(50, 1)
    assert all(abs(g.temperature - 0.5) < 1e-9 for g in enc.gates())
    enc.set_training_progress(500, 3)
    assert all(abs(g.temperature - 0.25) < 1e-9 for g in enc.gates())


# ------------------------------------------------------------------ equivalences


@pytest.mark.parametrize("gating", ["arbitrator", "random"])
def test_all_gates_forced_on_equal_the_dense_model(gating):
    dense = small_encoder()
    gated = small_encoder(seed=1, gating=gating, keep_rate_attention=0.3, keep_rate_ffn=0.3)
    copy_weights(dense, gated)
    gated.force_gates(True)
    x, lens = torch.randn(2, 90, 20), torch.tensor([90, 61])
    expected, expected_lens = dense(x, lens)
    for mode in ("eval", "train"):  # hard decisions (gathered rows) and gate values x update
        getattr(gated, mode)()
        out, out_lens = gated(x, lens)
        assert out_lens.tolist() == expected_lens.tolist()
        for b, n in enumerate(out_lens.tolist()):
            torch.testing.assert_close(out[b, :n], expected[b, :n], rtol=1e-5, atol=1e-5)


def test_gathered_rows_equal_masked_dense_computation():
    """Inference on the active rows only equals training-mode gating (x + g * f(x)) with the same decisions."""
    enc = small_encoder(gating="arbitrator", arbitrator_init_bias=0.0)
    x, lens = torch.randn(2, 90, 20), torch.tensor([90, 61])
    decisions = {}
    for i, layer in enumerate(enc.layers):
        for j, gate in enumerate((layer.attention_gate, layer.ffn_gate)):
            original = gate.decide
            gate.decide = lambda f, u, original=original, key=(i, j): decisions.setdefault(key, original(f, u))
    out, out_lens = enc(x, lens)
    assert 0 < sum(int(d.sum()) for d in decisions.values()) < sum(d.numel() for d in decisions.values())
    enc.train()
    for (i, j), decision in decisions.items():  # the same decisions, as gate values in training
        gate = (enc.layers[i].attention_gate, enc.layers[i].ffn_gate)[j]
        gate.forward = lambda f, u, decision=decision: decision.float()
    masked, _ = enc(x, lens)
    for b, n in enumerate(out_lens.tolist()):
        torch.testing.assert_close(out[b, :n], masked[b, :n], rtol=1e-5, atol=1e-5)


def test_a_gate_forced_off_runs_nothing_for_that_frame_and_passes_the_input_through():
    enc = small_encoder(gating="arbitrator", arbitrator_init_bias=5.0, num_layers=1)
    layer = enc.layers[0]
    frames = 12  # 48 input frames -> 12 frames = 4 whole chunks, no padding
    force_decisions(layer.attention_gate, [5])
    force_decisions(layer.ffn_gate, [2, 5])
    seen = {}
    layer.register_forward_pre_hook(lambda m, args: seen.__setitem__("layer_in", args[0].clone()))
    original_normalise = layer.ffn.normalise
    layer.ffn.normalise = lambda x: (seen.__setitem__("ffn_in", x.clone()), original_normalise(x))[1]
    layer.attention.out_proj.register_forward_hook(lambda m, i, o: seen.__setitem__("queries", i[0].shape[0]))
    layer.ffn.net[1].register_forward_hook(lambda m, i, o: seen.__setitem__("ffn_rows", i[0].shape[0]))
    layer.register_forward_hook(lambda m, args, out: seen.__setitem__("layer_out", out[0].clone()))
    enc.reset_compute(1)
    enc(torch.randn(1, 4 * frames, 20), torch.tensor([4 * frames]))
    counts = enc.compute_counts()[0]
    assert counts["frames"] == frames
    assert counts["executed_frames"] == {"0.attention": frames - 1, "0.ffn": frames - 2}
    assert seen["queries"] == frames - 1 and seen["ffn_rows"] == frames - 2  # nothing ran for those frames
    # attention skipped at frame 5: its input reaches the FFN unchanged; the FFN skipped at 2 and 5
    torch.testing.assert_close(seen["ffn_in"][0, 5], seen["layer_in"][0, 5], rtol=0, atol=0)
    for t in (2, 5):
        torch.testing.assert_close(seen["layer_out"][0, t], seen["ffn_in"][0, t], rtol=0, atol=0)
    assert not torch.allclose(seen["layer_out"][0, 3], seen["ffn_in"][0, 3])


def test_all_gates_off_leave_only_the_residual_path():
    enc = small_encoder(gating="arbitrator")
    enc.force_gates(False)
    x, lens = torch.randn(1, 48, 20), torch.tensor([48])
    out, _ = enc(x, lens)
    front = enc.input_norm(enc.subsampling(x, lens)[0])
    torch.testing.assert_close(out, enc.norm_out(front), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize("gating", ["none", "arbitrator", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_offline(gating, seed):
    enc = small_encoder(seed, gating=gating, arbitrator_init_bias=0.0, keep_rate_attention=0.5, keep_rate_ffn=0.5,
                        arbitrator_input="block+acoustic" if seed else "block", norm="batch" if seed else "layer")
    gen = torch.Generator().manual_seed(seed)
    x, lens = torch.randn(2, 150, 20, generator=gen), torch.tensor([150, 97])
    sizes = random_chunk_sizes(150, gen, enc.chunk_frames_multiple)
    enc.reset_compute(2)
    enc(x, lens)
    offline_counts = enc.compute_counts()
    enc.reset_compute(2)
    assert_streaming_equals_offline(enc, x, lens, sizes, check_widths=True)
    # assert_streaming_equals_offline ran forward once more, then streamed
    streamed = enc.compute_counts()
    for off, both in zip(offline_counts, streamed):
        assert both["frames"] == 2 * off["frames"]
        assert all(both["executed_frames"][k] == 2 * v for k, v in off["executed_frames"].items())
    if gating != "none":
        executed = sum(offline_counts[0]["executed_frames"].values())
        assert 0 < executed < len(offline_counts[0]["executed_frames"]) * offline_counts[0]["frames"]


def test_default_config_streams_exactly():
    torch.manual_seed(0)
    enc = build_encoder("transformer", 80, gating="arbitrator", arbitrator_init_bias=0.0).eval()
    assert_streaming_equals_offline(enc, torch.randn(1, 160, 80), torch.tensor([160]), [32, 64, 64])


def test_misaligned_chunks_refuse_to_stream():
    enc = small_encoder()
    states = enc.init_states(1, torch.device("cpu"))
    _, _, states = enc.streaming_forward(torch.randn(1, 8, 20), torch.tensor([8]), states)
    with pytest.raises(ConfigError, match="multiples of 12"):
        enc.streaming_forward(torch.randn(1, 12, 20), torch.tensor([12]), states)


# ------------------------------------------------------------------ compute accounting


HAND = dict(dim=8, num_layers=2, num_heads=2, ffn_dim=12, chunk_size=2, left_context=2, subsampling_channels=2,
            gating="arbitrator", arbitrator_dim=3, norm="layer", dropout=0.0)
# Per frame and layer (2 x multiply-adds), D = 8, F = 12, W = 2 + 2, arbitrator 8 -> 3 -> 1:
KV, WINDOW, QUERY, FFN = 4 * 8 * 8, 4 * 8 * 4, 4 * 8 * 8, 4 * 8 * 12  # 256, 128, 256, 384
ARBITRATORS = 2 * 2 * (8 * 3 + 3)  # two gates: 108


def hand_encoder():
    torch.manual_seed(0)
    enc = build_encoder("transformer", 20, **HAND).eval()
    force_decisions(enc.layers[0].attention_gate, [1, 4, 7])  # 7 of 10 frames run
    force_decisions(enc.layers[0].ffn_gate, range(6))  # 4 of 10
    force_decisions(enc.layers[1].ffn_gate, range(10))  # 0 of 10; layer 1 attention: all 10
    return enc


def test_compute_equals_a_hand_count():
    assert (KV, WINDOW, QUERY, FFN, ARBITRATORS) == (256, 128, 256, 384, 108)
    enc = hand_encoder()
    enc.reset_compute(1)
    enc(torch.randn(1, 40, 20), torch.tensor([40]))  # 10 frames
    record = enc.compute_counts()[0]
    always = (KV + WINDOW + ARBITRATORS) * 10  # 4920 per layer
    layers = (always + QUERY * 7 + FFN * 4) + (always + QUERY * 10 + FFN * 0)  # 8248 + 7480
    layers_kv_skipped = (ARBITRATORS * 10 + (KV + WINDOW + QUERY) * 7 + FFN * 4) + (ARBITRATORS * 10 + 640 * 10)
    dense = 2 * (KV + WINDOW + QUERY + FFN) * 10  # 20480
    assert record["frames"] == 10
    assert record["executed_frames"] == {"0.attention": 7, "0.ffn": 4, "1.attention": 10, "1.ffn": 0}
    assert record["flops"]["layers"] == layers == 15728
    assert record["flops"]["layers_kv_skipped"] == layers_kv_skipped == 1080 + 4480 + 1536 + 1080 + 6400
    assert record["flops"]["dense_layers"] == dense
    summary = summarize_compute([record, None])
    assert summary["layers_fraction"] == pytest.approx(15728 / 20480)
    front = record["flops"]["front_end"]
    assert summary["encoder_fraction"] == pytest.approx((front + 15728) / (front + 20480))
    assert summary["executed_fraction"]["0.attention"] == pytest.approx(0.7)
    # training: C of the same decisions, as gate values
    enc.train()
    for gate in enc.gates():
        decide = gate.decide
        gate.forward = lambda f, u, decide=decide: decide(f, u).float()
    enc(torch.randn(1, 40, 20), torch.tensor([40]))
    stats = enc.training_statistics()
    assert stats["compute"] == pytest.approx(15728 / 20480)
    assert stats["compute_layer0"] == pytest.approx(8248 / 10240)
    assert stats["compute_attention"] == pytest.approx(17 / 20) and stats["compute_ffn"] == pytest.approx(4 / 20)


def test_a_smaller_model_is_measured_against_the_full_dense_model():
    """A 1-layer static model is half the 2-layer model's stack, not 100% of its own."""
    x, lens = torch.randn(1, 40, 20), torch.tensor([40])
    summaries = {}
    for layers in (1, 2):
        enc = small_encoder(num_layers=layers)
        enc.reset_compute(1)
        with torch.no_grad():
            enc(x, lens)
        summaries[layers] = summarize_compute(enc.compute_counts())
    small, full = summaries[1], summaries[2]
    assert small["encoder_fraction"] == 1.0
    front, stack = full["flops"]["front_end"], full["flops"]["dense_layers"]
    fractions = relative_compute(small, full)
    assert fractions["layers_fraction"] == pytest.approx(0.5)
    assert fractions["encoder_fraction"] == pytest.approx((front + stack / 2) / (front + stack))
    assert relative_compute(full, full)["encoder_fraction"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="frames"):
        relative_compute({**small, "frames": small["frames"] + 1}, full)


def test_counted_flops_equal_torch_flop_counter():
    """What the encoder says it ran is what torch's FLOP counter sees (one stream, whole chunks)."""
    for gating in ("none", "arbitrator"):
        torch.manual_seed(0)
        enc = build_encoder("transformer", 20, **{**HAND, "gating": gating, "arbitrator_init_bias": 0.0}).eval()
        x, lens = torch.randn(1, 48, 20), torch.tensor([48])
        enc.reset_compute(1)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            enc(x, lens)
        record = enc.compute_counts()[0]
        if gating == "arbitrator":
            assert 0 < sum(record["executed_frames"].values()) < 4 * record["frames"]
        assert counter.get_total_flops() == record["flops"]["front_end"] + record["flops"]["layers"]


def test_compute_penalty_plain_and_target_forms():
    enc = hand_encoder().train()
    for gate in enc.gates():
        decide = gate.decide
        gate.forward = lambda f, u, decide=decide: decide(f, u).float()
    x, lens = torch.randn(1, 40, 20), torch.tensor([40])
    c = 15728 / 20480
    for weight, target, expected in ((2.0, 0.0, 2.0 * c), (2.0, 0.5, 2.0 * (c - 0.5)), (2.0, 0.9, 0.0)):
        enc.compute_weight, enc.compute_target = weight, target
        enc(x, lens)
        assert enc.auxiliary_losses()["compute_penalty"].item() == pytest.approx(expected)


def test_penalty_gradient_closes_gates():
    enc = small_encoder(gating="arbitrator", compute_weight=1.0).train()
    enc(torch.randn(2, 60, 20), torch.tensor([60, 40]))
    enc.auxiliary_losses()["compute_penalty"].backward()
    bias_grads = [g.net[-1].bias.grad.item() for g in enc.gates()]
    assert all(grad > 0 for grad in bias_grads)  # gradient descent lowers every gate's logit


def test_dense_and_inference_report_no_penalty():
    enc = small_encoder()
    enc.train()(torch.randn(1, 40, 20), torch.tensor([40]))
    assert enc.auxiliary_losses() == {} and enc.training_statistics() == {}
    gated = small_encoder(gating="arbitrator", compute_weight=1.0)
    gated(torch.randn(1, 40, 20), torch.tensor([40]))  # eval
    assert gated.auxiliary_losses() == {}


def test_compute_counting_needs_a_matching_reset():
    enc = small_encoder(gating="random", keep_rate_ffn=0.5)
    assert enc.compute_counts() is None  # not counting
    enc.reset_compute(2)
    with pytest.raises(ConfigError, match="reset for 2 streams"):
        enc(torch.randn(1, 40, 20), torch.tensor([40]))


# ------------------------------------------------------------------ configuration


def test_dense_checkpoint_initialises_an_arbitrated_model():
    dense = small_encoder()
    gated = small_encoder(seed=3, gating="arbitrator")
    copy_weights(dense, gated)  # asserts that only gate parameters are new


@pytest.mark.parametrize("overrides, match", [
    (dict(gating="always"), "gating 'always'"),
    (dict(chunk_size=0), "chunk_size 0"),
    (dict(compute_weight=1.0), "needs gating: arbitrator"),
    (dict(gating="arbitrator", compute_target=1.5), "compute_target"),
    (dict(gating="random", keep_rate_ffn=1.5), "keep_rate"),
    (dict(gating="arbitrator", arbitrator_input="audio"), "arbitrator_input"),
    (dict(dim=30, num_heads=4), "divisible"),
])
def test_bad_config_is_a_config_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        build_encoder("transformer", 80, **overrides)
