"""MaskedBatchNorm: batch statistics from valid frames only, running statistics at inference."""

import torch

from asrtools.nn.causal import lengths_to_mask
from asrtools.nn.norm import MaskedBatchNorm

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
