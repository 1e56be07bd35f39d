"""Causal layers and the subsampling front end: chunked streaming equals whole-sequence."""

import pytest
import torch

from asrtools.errors import ConfigError
from asrtools.nn.causal import (
    CausalConv2d,
    CausalDepthwiseConv1d,
    CausalSqueezeExcitation,
    GlobalConvBlock,
)
from asrtools.nn.subsampling import CausalConv2dSubsampling

from streaming_helpers import random_chunk_sizes

torch.set_num_threads(1)


@pytest.fixture
def gen() -> torch.Generator:
    torch.manual_seed(0)
    return torch.Generator().manual_seed(1234)


@pytest.mark.parametrize("kernel,stride", [((5, 5), (1, 1)), ((3, 3), (2, 2)), ((5, 3), (2, 1)), ((4, 5), (4, 2))])
def test_causal_conv2d_streaming_equals_offline(kernel, stride, gen):
    conv = CausalConv2d(3, 4, kernel, stride)
    x = torch.randn(2, 3, 37, 11)
    full = conv(x)
    assert full.shape[2] == 37 // stride[0]
    assert full.shape[3] == conv.output_freqs(11)
    cache = conv.init_cache(2, 11)
    outs = []
    start = 0
    for size in random_chunk_sizes(37, gen):
        y, cache = conv.streaming_forward(x[:, :, start : start + size], cache)
        outs.append(y)
        start += size
    torch.testing.assert_close(torch.cat(outs, dim=2), full, rtol=1e-5, atol=1e-5)


def test_causal_conv2d_is_causal_and_ignores_padding():
    conv = CausalConv2d(1, 2, (5, 5), (2, 2))
    x = torch.randn(1, 1, 20, 9)
    valid = 13
    garbage = x.clone()
    garbage[:, :, valid:] = 1e3 * torch.randn_like(garbage[:, :, valid:])
    n_valid = valid // 2
    torch.testing.assert_close(conv(x)[:, :, :n_valid], conv(garbage)[:, :, :n_valid])
    # the first frame after the valid ones does change: the test above can fail
    assert not torch.allclose(conv(x)[:, :, n_valid], conv(garbage)[:, :, n_valid])


def test_causal_conv2d_rejects_kernel_shorter_than_stride():
    with pytest.raises(ConfigError):
        CausalConv2d(1, 1, (1, 3), (2, 1))


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (3, 4), (5, 2), (1, 1)])
def test_depthwise_conv1d_streaming_equals_offline(kernel, dilation, gen):
    conv = CausalDepthwiseConv1d(6, kernel, dilation)
    assert conv.cache_size == (kernel - 1) * dilation
    x = torch.randn(3, 6, 41)
    full = conv(x)
    assert full.shape == x.shape
    cache = conv.init_cache(3)
    outs, start = [], 0
    for size in random_chunk_sizes(41, gen):
        y, cache = conv.streaming_forward(x[:, :, start : start + size], cache)
        assert cache.shape == (3, 6, conv.cache_size)
        outs.append(y)
        start += size
    torch.testing.assert_close(torch.cat(outs, dim=2), full, rtol=1e-5, atol=1e-5)


def test_depthwise_conv1d_is_causal():
    conv = CausalDepthwiseConv1d(2, 3, 2)
    x = torch.randn(1, 2, 10)
    changed = x.clone()
    changed[:, :, 6] += 5.0
    diff = (conv(x) - conv(changed)).abs().sum(dim=1)[0]
    assert torch.all(diff[[0, 1, 2, 3, 4, 5, 7, 9]] == 0)
    assert torch.all(diff[[6, 8]] > 0)


def test_se_cummean_matches_explicit_running_mean():
    se = CausalSqueezeExcitation(4, 3)
    x = torch.randn(2, 4, 9)
    lengths = torch.tensor([9, 5])
    y = se(x, lengths)
    for b, length in enumerate(lengths.tolist()):
        for t in range(length):
            mean = x[b : b + 1, :, : t + 1].mean(dim=2, keepdim=True)
            expected = x[b : b + 1, :, t : t + 1] * torch.sigmoid(se.excite(mean))
            torch.testing.assert_close(y[b : b + 1, :, t : t + 1], expected)


def test_se_cummean_streaming_equals_offline_and_excludes_padding(gen):
    se = CausalSqueezeExcitation(5, 2)
    x = torch.randn(2, 5, 30)
    lengths = torch.tensor([30, 17])
    full = se(x, lengths)
    state = se.init_state(2)
    outs, start = [], 0
    for size in random_chunk_sizes(30, gen):
        chunk_lens = (lengths - start).clamp(min=0, max=size)
        y, state = se.streaming_forward(x[:, :, start : start + size], chunk_lens, state)
        outs.append(y)
        start += size
    torch.testing.assert_close(torch.cat(outs, dim=2), full, rtol=1e-5, atol=1e-5)
    assert state[1].squeeze(1).tolist() == [30.0, 17.0]
    torch.testing.assert_close(state[0][1], x[1, :, :17].sum(dim=1), rtol=1e-5, atol=1e-5)


def test_se_utterance_mean_masks_padding_and_is_not_streamable():
    se = CausalSqueezeExcitation(3, 2, mode="utterance_mean")
    x = torch.randn(1, 3, 12)
    padded = torch.cat([x, 100 * torch.ones(1, 3, 5)], dim=2)
    torch.testing.assert_close(se(padded, torch.tensor([12]))[:, :, :12], se(x, torch.tensor([12])))
    # the whole-utterance mean looks ahead, unlike the causal one
    causal = CausalSqueezeExcitation(3, 2)
    causal.load_state_dict(se.state_dict())
    assert not torch.allclose(se(x, torch.tensor([12]))[:, :, 0], causal(x, torch.tensor([12]))[:, :, 0])
    with pytest.raises(ConfigError):
        se.streaming_forward(x, torch.tensor([12]), se.init_state(1))
    with pytest.raises(ConfigError):
        CausalSqueezeExcitation(3, 2, mode="mean")


@pytest.mark.parametrize("dilation", [1, 8])
def test_global_block_streaming_equals_offline(dilation, gen):
    block = GlobalConvBlock(8, 12, kernel_size=3, dilation=dilation, se_bottleneck=4).eval()
    x = torch.randn(2, 8, 45)
    lengths = torch.tensor([45, 31])
    full = block(x, lengths)
    state = block.init_state(2)
    outs, start = [], 0
    for size in random_chunk_sizes(45, gen):
        chunk_lens = (lengths - start).clamp(min=0, max=size)
        y, state = block.streaming_forward(x[:, :, start : start + size], chunk_lens, state)
        outs.append(y)
        start += size
    streamed = torch.cat(outs, dim=2)
    torch.testing.assert_close(streamed[0], full[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(streamed[1, :, :31], full[1, :, :31], rtol=1e-5, atol=1e-5)


def test_subsampling_lengths_and_padding():
    sub = CausalConv2dSubsampling(20, 16, channels=4)
    x = torch.randn(2, 43, 20)
    lens = torch.tensor([43, 22])
    y, y_lens = sub(x, lens)
    assert y.shape == (2, 43 // 4, 16)
    assert y_lens.tolist() == [10, 5]
    garbage = x.clone()
    garbage[1, 22:] = 50.0
    y2, _ = sub(garbage, lens)
    torch.testing.assert_close(y2[1, :5], y[1, :5])
    assert not torch.allclose(y2[1, 5], y[1, 5])


@pytest.mark.parametrize("factor,multiple", [(4, 4), (4, 1), (2, 1), (8, 8)])
def test_subsampling_streaming_equals_offline(factor, multiple, gen):
    sub = CausalConv2dSubsampling(24, 10, channels=3, factor=factor)
    x = torch.randn(2, 61, 24)
    lens = torch.tensor([61, 38])
    full, full_lens = sub(x, lens)
    states = sub.init_states(2)
    outs, out_lens, start = [], torch.zeros(2, dtype=torch.int64), 0
    for size in random_chunk_sizes(61, gen, multiple):
        chunk_lens = (lens - start).clamp(min=0, max=size)
        y, y_lens, states = sub.streaming_forward(x[:, start : start + size], chunk_lens, states)
        if multiple == factor:
            assert y.size(1) == size // factor
        outs.append(y)
        out_lens += y_lens
        start += size
    assert out_lens.tolist() == full_lens.tolist()
    streamed = torch.cat(outs, dim=1)
    assert streamed.shape == full.shape
    for b, n in enumerate(full_lens.tolist()):
        torch.testing.assert_close(streamed[b, :n], full[b, :n], rtol=1e-5, atol=1e-5)


def test_subsampling_rejects_bad_factor():
    with pytest.raises(ConfigError):
        CausalConv2dSubsampling(80, 16, factor=3)
