"""Speaker-embedding network: an ECAPA-TDNN (Desplanques et al., 2020), sized by config.

Frames (B, T, F) of log-mel Fbank go through a 1-D conv, `num_blocks` SE-Res2Net blocks
with growing dilation, multi-layer feature aggregation (the blocks' outputs concatenated and
mixed by a 1x1 conv), channel- and context-dependent attentive statistics pooling over the
valid frames, and a linear layer to the embedding (B, E). `channels: 512` or `1024` is the
field's standard size (6 M / 15 M parameters); `channels: 256` gives a ~2 M-parameter CPU
model.

Padded frames never enter the statistics (the pooling is masked by `lengths`); they can
only reach valid frames near the end through the convolutions' receptive field, so an
utterance's embedding depends on its own frames only when it is embedded alone or with
utterances of the same length (`asrtools.sv.embed` batches by length).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from asrtools.config import from_dict, to_dict


@dataclasses.dataclass
class SpeakerModelConfig:
    """ECAPA-TDNN size.

    Attributes:
      feature_dim: F, input feature size (80-dim Fbank).
      channels: C, channels of the TDNN blocks.
      num_blocks: SE-Res2Net blocks (dilations 2, 3, 4, ...).
      res2_scale: Res2Net scale (C must be divisible by it).
      se_channels: bottleneck of the squeeze-excitation.
      attention_channels: hidden size of the attentive statistics pooling.
      embed_dim: E, the embedding size.
    """

    feature_dim: int = 80
    channels: int = 256
    num_blocks: int = 3
    res2_scale: int = 8
    se_channels: int = 128
    attention_channels: int = 128
    embed_dim: int = 192

    def validate(self) -> None:
        if min(self.feature_dim, self.channels, self.num_blocks, self.res2_scale, self.se_channels,
               self.attention_channels, self.embed_dim) < 1:
            raise ValueError("every speaker model size must be >= 1")
        if self.channels % self.res2_scale:
            raise ValueError(f"channels ({self.channels}) must be divisible by res2_scale ({self.res2_scale})")


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) bool, True at the valid frames of `lengths` (B,)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class ConvBlock(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d on (B, C, T)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.conv(x)))


class Res2Conv(nn.Module):
    """Res2Net multi-scale conv: split channels into `scale` groups, each conv sees the previous."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        width = channels // scale
        self.convs = nn.ModuleList(ConvBlock(width, width, kernel_size, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(x, self.scale, dim=1)
        out: List[torch.Tensor] = [chunks[0]]
        previous = None
        for conv, chunk in zip(self.convs, chunks[1:]):
            previous = conv(chunk if previous is None else chunk + previous)
            out.append(previous)
        return torch.cat(out, dim=1)


class MaskedSqueezeExcitation(nn.Module):
    """Squeeze-excitation whose squeeze is the mean over valid frames."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Conv1d(channels, bottleneck, 1)
        self.up = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); mask: (B, 1, T) float."""
        mean = (x * mask).sum(dim=2, keepdim=True) / mask.sum(dim=2, keepdim=True).clamp(min=1.0)
        return x * torch.sigmoid(self.up(torch.relu(self.down(mean))))


class SERes2Block(nn.Module):
    """1x1 conv -> Res2 dilated conv -> 1x1 conv -> SE, with a residual connection."""

    def __init__(self, channels: int, dilation: int, scale: int, se_channels: int) -> None:
        super().__init__()
        self.pre = ConvBlock(channels, channels, 1)
        self.res2 = Res2Conv(channels, 3, dilation, scale)
        self.post = ConvBlock(channels, channels, 1)
        self.se = MaskedSqueezeExcitation(channels, se_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.post(self.res2(self.pre(x))), mask)


class AttentiveStatsPool(nn.Module):
    """Channel- and context-dependent attentive statistics pooling (ECAPA-TDNN).

    The attention of each channel sees the frame plus the utterance's (masked) mean and
    standard deviation; output: the attention-weighted mean and std, (B, 2C).
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * channels, hidden, 1), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Tanh(),
            nn.Conv1d(hidden, channels, 1),
        )

    @staticmethod
    def _stats(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mean = (x * weights).sum(dim=2)
        var = ((x - mean.unsqueeze(2)) ** 2 * weights).sum(dim=2)
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); mask: (B, 1, T) float. Returns (B, 2C)."""
        T = x.shape[2]
        uniform = mask / mask.sum(dim=2, keepdim=True).clamp(min=1.0)
        mean, std = self._stats(x, uniform).chunk(2, dim=1)
        context = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, T), std.unsqueeze(2).expand(-1, -1, T)], dim=1)
        scores = self.attention(context).masked_fill(mask == 0, float("-inf"))
        return self._stats(x, torch.softmax(scores, dim=2))


class EcapaTdnn(nn.Module):
    """ECAPA-TDNN speaker-embedding extractor.

    Args:
      config: the sizes (`SpeakerModelConfig`).
    """

    def __init__(self, config: SpeakerModelConfig) -> None:
        super().__init__()
        self.config = config
        C = config.channels
        self.front = ConvBlock(config.feature_dim, C, 5)
        self.blocks = nn.ModuleList(
            SERes2Block(C, dilation=2 + i, scale=config.res2_scale, se_channels=config.se_channels)
            for i in range(config.num_blocks)
        )
        self.aggregate = ConvBlock(C * config.num_blocks, C * config.num_blocks, 1)
        self.pool = AttentiveStatsPool(C * config.num_blocks, config.attention_channels)
        self.pool_norm = nn.BatchNorm1d(2 * C * config.num_blocks)
        self.embed = nn.Linear(2 * C * config.num_blocks, config.embed_dim)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Embed utterances.

        Args:
          x: (B, T, F) features.
          lengths: (B,) int64 valid frames (>= 1).

        Returns:
          (B, E) embeddings (not normalised).
        """
        mask = length_mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)
        h = self.front(x.transpose(1, 2)) * mask
        outputs = []
        for block in self.blocks:
            h = block(h, mask) * mask
            outputs.append(h)
        h = self.aggregate(torch.cat(outputs, dim=1))
        return self.embed(self.pool_norm(self.pool(h, mask)))


def mean_normalize(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Subtract each utterance's mean over its valid frames; (B, T, F) -> (B, T, F), padding stays 0."""
    mask = length_mask(lengths, x.shape[1]).unsqueeze(2).to(x.dtype)
    mean = (x * mask).sum(dim=1, keepdim=True) / lengths.clamp(min=1)[:, None, None].to(x.dtype)
    return (x - mean) * mask


def embed_batch(embedder: nn.Module, features: torch.Tensor, lengths: torch.Tensor, cmn: bool,
                device: torch.device) -> torch.Tensor:
    """L2-normalised embeddings (B, E) of padded whole utterances (B, T, F) with lengths (B,)."""
    x, lengths = features.to(device), lengths.to(device)
    if cmn:
        x = mean_normalize(x, lengths)
    return F.normalize(embedder(x, lengths), dim=1)


def build_speaker_model(config: SpeakerModelConfig) -> EcapaTdnn:
    """The embedding network of `config`."""
    return EcapaTdnn(config)


def speaker_config_to_dict(config: SpeakerModelConfig) -> Dict[str, Any]:
    """Plain dict for checkpoints."""
    return to_dict(config)


def speaker_config_from_dict(data: Dict[str, Any], source: str = "checkpoint") -> SpeakerModelConfig:
    """Inverse of `speaker_config_to_dict` (strict)."""
    return from_dict(SpeakerModelConfig, dict(data), source)
