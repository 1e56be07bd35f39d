"""MaskedBatchNorm: batch statistics from valid frames only, running statistics at inference.
OnlineCmn: causal per-utterance mean normalisation, streamed exactly, in every encoder."""

import pytest
import torch

from asrtools.errors import ConfigError
from asrtools.models.encoder import build_encoder
from asrtools.nn.causal import lengths_to_mask
from asrtools.nn.norm import MaskedBatchNorm, OnlineCmn, build_feature_norm

from streaming_helpers import assert_streaming_equals_offline, random_chunk_sizes

torch.set_num_threads(1)


def test_training_statistics_ignore_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3) * 2 + 5
    lens = torch.tensor([7, 4])
    x[1, 4:] = 1e3  # padding that would wreck unmasked statistics
    valid = lengths_to_mask(lens, 7)
    masked, reference = MaskedBatchNorm(3).train(), torch.nn.BatchNorm1d(3).train()
    y = masked(x, valid)
    frames = x[valid]  # (N, C): the 11 valid frames
    torch.testing.assert_close(y[valid], reference(frames))
    torch.testing.assert_close(masked.running_mean, reference.running_mean)
    torch.testing.assert_close(masked.running_var, reference.running_var)


def test_inference_is_a_fixed_affine_map_of_each_frame():
    norm = MaskedBatchNorm(3).eval()
    norm.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    norm.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    x = torch.randn(2, 5, 3)
    expected = (x - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm(x[:, 2:4]), expected[:, 2:4])  # no dependence on other frames


def test_batch_without_valid_frames_leaves_statistics_alone():
    norm = MaskedBatchNorm(2).train()
    y = norm(torch.randn(1, 3, 2), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.isfinite(y).all()
    assert norm.running_mean.tolist() == [0.0, 0.0] and norm.running_var.tolist() == [1.0, 1.0]


def _trained_cmn(prior_frames: float = 4.0) -> OnlineCmn:
    cmn = OnlineCmn(3, prior_frames=prior_frames).train()
    cmn(torch.randn(2, 9, 3) + torch.tensor([-6.0, 2.0, 0.5]), torch.tensor([9, 5]))
    return cmn.eval()


def test_online_cmn_subtracts_the_running_mean_with_the_global_prior():
    cmn = _trained_cmn()
    x = torch.randn(2, 6, 3) * 2 - 3
    lens = torch.tensor([6, 4])
    y = cmn(x, lens)
    for b in range(2):
        for t in range(int(lens[b])):
            mean = (4.0 * cmn.global_mean + x[b, : t + 1].sum(dim=0)) / (4.0 + t + 1)
            torch.testing.assert_close(y[b, t], x[b, t] - mean)


def test_online_cmn_is_causal_and_removes_a_gain_offset_as_the_prior_fades():
    cmn = _trained_cmn()
    x, lens = torch.randn(1, 40, 3), torch.tensor([40])
    changed = x.clone()
    changed[:, 25:] += 7.0
    torch.testing.assert_close(cmn(changed, lens)[:, :25], cmn(x, lens)[:, :25])  # no lookahead
    # A constant offset c (a gain change) survives only as the prior's share c * P / (P + t + 1).
    offset = cmn(x + 5.0, lens) - cmn(x, lens)
    expected = 5.0 * 4.0 / (4.0 + torch.arange(1, 41, dtype=torch.float32))
    torch.testing.assert_close(offset[0], expected[:, None].expand(40, 3))


def test_online_cmn_global_mean_counts_valid_frames_only_and_is_fixed_in_evaluation():
    cmn = OnlineCmn(2).train()
    x = torch.full((2, 5, 2), 1.0)
    x[1, 3:] = 1e3  # padding
    cmn(x, torch.tensor([5, 3]))
    assert cmn.global_mean.tolist() == [1.0, 1.0]  # the first batch sets it
    cmn(torch.full((1, 4, 2), 3.0), torch.tensor([4]))
    torch.testing.assert_close(cmn.global_mean, torch.full((2,), 1.0 + 2.0 * cmn.momentum))
    before = cmn.global_mean.clone()
    cmn.eval()(torch.full((1, 4, 2), 50.0), torch.tensor([4]))
    assert torch.equal(cmn.global_mean, before)


def test_online_cmn_streams_exactly():
    cmn = _trained_cmn()
    x, lens = torch.randn(3, 23, 3), torch.tensor([23, 17, 2])
    whole = cmn(x, lens)
    state, outs, start = cmn.init_state(3), [], 0
    for size in random_chunk_sizes(23, torch.Generator().manual_seed(0)):
        chunk_lens = (lens - start).clamp(min=0, max=size)
        out, state = cmn.streaming_forward(x[:, start : start + size], chunk_lens, state)
        outs.append(out)
        start += size
    streamed = torch.cat(outs, dim=1)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(streamed[b, :n], whole[b, :n])
    assert state[1].squeeze(1).tolist() == [4.0 + 23, 4.0 + 17, 4.0 + 2]  # padding never counted


def test_feature_norm_by_name():
    x, lens = torch.randn(1, 4, 3), torch.tensor([4])
    none = build_feature_norm(3, "none")
    assert torch.equal(none(x, lens), x) and none.init_state(1) == [] and none.num_states == 0
    assert isinstance(build_feature_norm(3, "online_cmn"), OnlineCmn)
    with pytest.raises(ConfigError, match="feature_norm 'cmvn' is not one of none, online_cmn"):
        build_feature_norm(3, "cmvn")
    with pytest.raises(ConfigError, match="prior_frames"):
        OnlineCmn(3, prior_frames=0)


ENCODERS_WITH_CMN = {
    "lstm": dict(hidden_dim=16, num_layers=1, subsampling_dim=8, subsampling_channels=2, norm="batch"),
    "convrnnt": dict(local_channels=[4, 4], local_kernel_sizes=[3, 3], local_time_strides=[2, 2],
                     local_freq_strides=[2, 2], global_channels=8, global_hidden_channels=8,
                     global_dilations=[1, 2], se_bottleneck=4, frontend_dim=16, hidden_dim=16, num_layers=1),
    "conformer": dict(dim=16, num_layers=1, num_heads=2, ffn_dim=32, chunk_size=2, left_context=4,
                      subsampling_channels=4),
    "transformer": dict(dim=16, num_layers=1, num_heads=2, ffn_dim=32, chunk_size=2, left_context=4,
                        subsampling_channels=4),
}


@pytest.mark.parametrize("name", sorted(ENCODERS_WITH_CMN))
def test_every_encoder_streams_exactly_with_online_cmn(name):
    torch.manual_seed(0)
    encoder = build_encoder(name, 20, feature_norm="online_cmn", **ENCODERS_WITH_CMN[name])
    encoder.train()(torch.randn(4, 40, 20) * 3 - 6, torch.tensor([40, 30, 20, 12]))
    encoder.eval()
    x, lens = torch.randn(3, 48, 20) * 3 - 6, torch.tensor([48, 35, 9])
    sizes = random_chunk_sizes(48, torch.Generator().manual_seed(1), multiple=encoder.chunk_frames_multiple)
    assert_streaming_equals_offline(encoder, x, lens, sizes, atol=1e-5)
    # The normalisation comes first: the encoder equals the same weights without it on normalised features.
    (cmn,) = [m for m in encoder.modules() if isinstance(m, OnlineCmn)]
    plain = build_encoder(name, 20, **ENCODERS_WITH_CMN[name])
    missing, unexpected = plain.load_state_dict(encoder.state_dict(), strict=False)
    assert not missing and all("feature_norm" in key for key in unexpected)
    plain.eval()
    out, out_lens = encoder(x, lens)
    expected, _ = plain(cmn(x, lens), lens)
    for b, n in enumerate(out_lens.tolist()):
        torch.testing.assert_close(out[b, :n], expected[b, :n])
