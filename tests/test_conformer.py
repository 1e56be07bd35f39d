"""Chunked streaming Conformer: chunk masks, look-ahead limits, streaming equal to offline."""

import pytest
import torch

from asrtools.errors import ConfigError
from asrtools.models.enc_conformer import ConformerEncoder
from asrtools.models.encoder import build_encoder
from asrtools.nn.attention import RelPositionSelfAttention, chunk_attention_mask
from asrtools.nn.norm import MaskedBatchNorm

from streaming_helpers import assert_streaming_equals_offline, random_chunk_sizes

torch.set_num_threads(1)

SMALL = dict(dim=16, num_layers=2, num_heads=2, ffn_dim=24, conv_kernel_size=5, chunk_size=3,
             left_context=4, max_relative_distance=6, subsampling_channels=4)


def small_encoder(**overrides) -> ConformerEncoder:
    torch.manual_seed(0)
    enc = build_encoder("conformer", 20, **{**SMALL, **overrides}).eval()
    for layer in enc.layers:  # the bias starts at zero; make it matter
        torch.nn.init.normal_(layer.attention.relative_bias.weight)
    for module in enc.modules():  # so do batch-norm statistics
        if isinstance(module, MaskedBatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return enc


def test_chunk_mask_by_hand():
    pos = torch.arange(6)
    mask = chunk_attention_mask(pos, pos, chunk_size=2, left_context=1).int()
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [0, 0, 0, 1, 1, 1],
        ]
    )
    assert torch.equal(mask, expected)
    assert bool(chunk_attention_mask(pos, pos, chunk_size=0, left_context=0).all())


def test_attention_with_cache_equals_attention_over_all_frames():
    torch.manual_seed(0)
    attn = RelPositionSelfAttention(8, 2, max_relative_distance=3).eval()
    torch.nn.init.normal_(attn.relative_bias.weight)
    x = torch.randn(2, 7, 8)
    pos = torch.arange(7)
    full, _ = attn(x, torch.ones(1, 7, 7, dtype=torch.bool), pos, pos)
    _, cache = attn(x[:, :4], torch.ones(1, 4, 4, dtype=torch.bool), pos[:4], pos[:4])
    last, _ = attn(x[:, 4:], torch.ones(1, 3, 7, dtype=torch.bool), pos[:3], torch.arange(-4, 3), cache)
    torch.testing.assert_close(last, full[:, 4:], rtol=1e-5, atol=1e-5)


def test_lookahead_is_limited_to_the_chunk():
    enc = small_encoder()
    x = torch.randn(1, 80, 20)
    out, _ = enc(x, torch.tensor([80]))
    changed = x.clone()
    changed[:, 4 * 7 :] += 1.0  # output frames >= 7: chunk 2 is frames 6, 7, 8
    out2, _ = enc(changed, torch.tensor([80]))
    diff = (out - out2).abs().amax(dim=2)[0]
    assert bool((diff[:6] == 0).all())
    assert bool((diff[6:9] > 0).all())  # frame 6 sees frame 7 of its own chunk


def test_left_context_is_limited():
    enc = small_encoder(num_layers=1, conv_kernel_size=1)
    x = torch.randn(1, 120, 20)
    out, _ = enc(x, torch.tensor([120]))
    changed = x.clone()
    changed[:, :4] += 1.0  # reaches subsampled frames 0 and 1 only
    out2, _ = enc(changed, torch.tensor([120]))
    diff = (out - out2).abs().amax(dim=2)[0]
    # chunk 1 (frames 3-5) sees frames >= 3 - 4; chunk 2 (frames 6-8) sees frames >= 2
    assert bool((diff[:6] > 0).all())
    assert bool((diff[6:] == 0).all())


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline(seed, norm):
    enc = small_encoder(norm=norm)
    gen = torch.Generator().manual_seed(seed)
    x, lens = torch.randn(2, 150, 20, generator=gen), torch.tensor([150, 97])
    sizes = random_chunk_sizes(150, gen, enc.chunk_frames_multiple)
    assert_streaming_equals_offline(enc, x, lens, sizes, check_widths=True)


def test_default_config_streams_exactly():
    torch.manual_seed(0)
    enc = build_encoder("conformer", 80).eval()
    assert_streaming_equals_offline(enc, torch.randn(1, 150, 80), torch.tensor([150]), [32, 64, 54])


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_padding_does_not_leak(norm):
    enc = small_encoder(norm=norm)
    x = torch.randn(1, 50, 20)
    alone, _ = enc(x, torch.tensor([50]))
    batch = torch.cat([torch.cat([x, 40 * torch.randn(1, 30, 20)], dim=1), torch.randn(1, 80, 20)])
    out, out_lens = enc(batch, torch.tensor([50, 80]))
    assert out_lens.tolist() == [12, 20]
    torch.testing.assert_close(out[0, :12], alone[0], rtol=1e-5, atol=1e-5)


def test_padding_does_not_reach_batch_norm_statistics_in_training():
    enc = small_encoder(norm="batch", dropout=0.0).train()
    x, lens = torch.randn(2, 80, 20), torch.tensor([80, 50])
    noisy = x.clone()
    noisy[1, 50:] = 40 * torch.randn(30, 20)
    clean, out_lens = enc(x, lens)
    out, _ = enc(noisy, lens)
    for b, n in enumerate(out_lens.tolist()):
        torch.testing.assert_close(out[b, :n], clean[b, :n], rtol=1e-5, atol=1e-5)


def test_misaligned_chunks_and_full_context_refuse_to_stream():
    enc = small_encoder()
    states = enc.init_states(1, torch.device("cpu"))
    _, _, states = enc.streaming_forward(torch.randn(1, 8, 20), torch.tensor([8]), states)
    with pytest.raises(ConfigError, match="multiples of 12"):
        enc.streaming_forward(torch.randn(1, 12, 20), torch.tensor([12]), states)
    full = small_encoder(chunk_size=0)
    assert not full.is_causal
    with pytest.raises(ConfigError):
        full.streaming_forward(torch.randn(1, 8, 20), torch.tensor([8]), full.init_states(1, torch.device("cpu")))


def test_single_causal_depthwise_conv_implementation():
    from asrtools.nn.causal import CausalDepthwiseConv1d

    enc = small_encoder()
    assert all(isinstance(layer.conv.depthwise, CausalDepthwiseConv1d) for layer in enc.layers)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError):
        build_encoder("conformer", 80, dim=30, num_heads=4)
    with pytest.raises(ConfigError):
        build_encoder("conformer", 80, left_context=-1)
    with pytest.raises(ConfigError, match="norm 'group'"):
        build_encoder("conformer", 80, norm="group")
