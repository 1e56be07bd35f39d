"""Reusable layers: causal convolutions with streaming caches, causal squeeze-and-excitation,
causal subsampling / frame stacking, a streaming LSTM stack, chunk-masked attention and
batch normalisation over the valid frames of padded sequences.

Every layer with a `streaming_forward` gives, chunk by chunk with its cache, exactly the
output of its whole-sequence `forward`.
"""
from asrtools.nn.attention import RelPositionSelfAttention, chunk_attention_mask
from asrtools.nn.causal import (
    CausalConv2d,
    CausalDepthwiseConv1d,
    CausalLstm,
    CausalSqueezeExcitation,
    GlobalConvBlock,
    lengths_to_mask,
)
from asrtools.nn.norm import MaskedBatchNorm, SequenceNorm
from asrtools.nn.subsampling import CausalConv2dStack, CausalConv2dSubsampling, FrameStacker

__all__ = [
    "CausalConv2d",
    "CausalConv2dStack",
    "CausalConv2dSubsampling",
    "CausalDepthwiseConv1d",
    "CausalLstm",
    "CausalSqueezeExcitation",
    "FrameStacker",
    "GlobalConvBlock",
    "MaskedBatchNorm",
    "RelPositionSelfAttention",
    "SequenceNorm",
    "chunk_attention_mask",
    "lengths_to_mask",
]
