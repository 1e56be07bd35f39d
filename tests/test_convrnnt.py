"""ConvRNN-T encoder: shapes, padding, and chunk-wise streaming equal to whole-utterance output."""

import pytest
import torch

from asrtools.errors import ConfigError
from asrtools.models.enc_convrnnt import LARGE_PARAMS, ConvRnntEncoder
from asrtools.models.encoder import build_encoder
from asrtools.nn.causal import CausalLstm

from streaming_helpers import assert_streaming_equals_offline, random_chunk_sizes

torch.set_num_threads(1)

SMALL = dict(
    local_channels=[4, 4, 3, 3],
    global_channels=8,
    global_hidden_channels=12,
    global_dilations=[1, 2, 4, 8],
    se_bottleneck=4,
    frontend_dim=16,
    hidden_dim=20,
    num_layers=2,
)


def small_encoder(**overrides) -> ConvRnntEncoder:
    torch.manual_seed(0)
    return build_encoder("convrnnt", 24, **{**SMALL, **overrides}).eval()


def test_shapes_and_lengths():
    enc = small_encoder()
    x, lens = torch.randn(3, 57, 24), torch.tensor([57, 40, 3])
    out, out_lens = enc(x, lens)
    assert enc.subsampling_factor == 4
    assert out.shape == (3, 57 // 4, enc.output_dim)
    assert out_lens.tolist() == [14, 10, 0]


@pytest.mark.parametrize("multiple,seed", [(4, 0), (4, 1), (1, 2)])
def test_streaming_equals_offline(multiple, seed):
    enc = small_encoder()
    torch.manual_seed(seed)
    x, lens = torch.randn(2, 131, 24), torch.tensor([131, 90])
    sizes = random_chunk_sizes(131, torch.Generator().manual_seed(seed), multiple)
    assert_streaming_equals_offline(enc, x, lens, sizes, check_widths=True)


def test_batch_norm_streams_exactly_and_ignores_padding():
    torch.manual_seed(0)
    enc = build_encoder("convrnnt", 24, **SMALL, norm="batch", dropout=0.0).train()
    x, lens = torch.randn(3, 64, 24) * 2 + 1, torch.tensor([64, 40, 21])
    enc(x, lens)  # move the running statistics away from their initial values
    padded = torch.cat([x, 40 * torch.ones(3, 16, 24)], dim=1)
    torch.manual_seed(0)
    again = build_encoder("convrnnt", 24, **SMALL, norm="batch", dropout=0.0).train()
    again(padded, lens)
    bn, bn_again = enc.frontend.norm.norm, again.frontend.norm.norm
    torch.testing.assert_close(bn.running_mean, bn_again.running_mean, rtol=1e-5, atol=1e-6)
    enc.eval()
    sizes = random_chunk_sizes(64, torch.Generator().manual_seed(1), 4)
    assert_streaming_equals_offline(enc, x, lens, sizes, check_widths=True)


def test_default_config_streams_exactly():
    torch.manual_seed(0)
    enc = build_encoder("convrnnt", 80).eval()
    assert_streaming_equals_offline(enc, torch.randn(1, 96, 80), torch.tensor([96]), [32, 16, 48], check_widths=True)


@pytest.mark.parametrize("se_mode", ["causal_cummean", "utterance_mean"])
def test_padding_does_not_leak(se_mode):
    enc = small_encoder(se_mode=se_mode)
    x = torch.randn(1, 41, 24)
    alone, _ = enc(x, torch.tensor([41]))
    padded = torch.cat([x, 30 * torch.randn(1, 23, 24)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 64, 24)], dim=0)
    out, out_lens = enc(batch, torch.tensor([41, 64]))
    torch.testing.assert_close(out[0, : out_lens[0]], alone[0], rtol=1e-5, atol=1e-5)


def test_utterance_mean_is_not_causal_and_refuses_streaming():
    enc = small_encoder(se_mode="utterance_mean")
    assert not enc.is_causal
    x = torch.randn(1, 40, 24)
    # changing the last frames changes the first outputs through the utterance mean
    changed = x.clone()
    changed[:, 30:] += 3.0
    assert not torch.allclose(enc(x, torch.tensor([40]))[0][:, 0], enc(changed, torch.tensor([40]))[0][:, 0])
    causal = small_encoder()
    assert causal.is_causal
    torch.testing.assert_close(
        causal(x, torch.tensor([40]))[0][:, :7], causal(changed, torch.tensor([40]))[0][:, :7]
    )
    with pytest.raises(ConfigError, match="not streamable"):
        enc.streaming_forward(x[:, :8], torch.tensor([8]), enc.init_states(1, torch.device("cpu")))


def test_gradients_reach_both_branches():
    enc = small_encoder().train()
    out, _ = enc(torch.randn(2, 40, 24), torch.tensor([40, 33]))
    out.sum().backward()
    assert enc.frontend.local.convs[0].conv.weight.grad.abs().sum() > 0
    assert enc.frontend.global_net.blocks[0].depthwise.conv.weight.grad.abs().sum() > 0


def test_lstm_stream_keeps_state_of_idle_streams():
    lstm = CausalLstm(5, 7, 2).eval()
    x = torch.randn(2, 6, 5)
    state = lstm.init_state(2)
    _, new_state = lstm.streaming_forward(x, torch.tensor([6, 0]), state)
    torch.testing.assert_close(new_state[0][:, 1], state[0][:, 1])
    assert not torch.allclose(new_state[0][:, 0], state[0][:, 0])


def test_large_config_is_the_paper_local_cnn():
    enc = ConvRnntEncoder(80, **LARGE_PARAMS)
    channels = [1, 100, 100, 64, 64]
    expected = sum(25 * c_in * c_out + c_out for c_in, c_out in zip(channels, channels[1:]))
    assert sum(p.numel() for p in enc.frontend.local.parameters()) == expected
    assert len(enc.frontend.global_net.blocks) == 6


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError):
        build_encoder("convrnnt", 80, se_mode="mean")
    with pytest.raises(ConfigError):
        build_encoder("convrnnt", 80, local_channels=[8, 8], local_time_strides=[2, 2, 1])
    with pytest.raises(ConfigError):
        build_encoder("convrnnt", 80, no_such_option=1)
