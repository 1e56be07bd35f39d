"""Reusable layers: causal convolutions with streaming caches, causal squeeze-and-excitation,
causal subsampling and chunk-masked attention.

Every layer with a `streaming_forward` gives, chunk by chunk with its cache, exactly the
output of its whole-sequence `forward`.
"""
from asrtools.nn.causal import (
    CausalConv2d,
    CausalDepthwiseConv1d,
    CausalSqueezeExcitation,
    GlobalConvBlock,
    lengths_to_mask,
)
from asrtools.nn.subsampling import CausalConv2dSubsampling

__all__ = [
    "CausalConv2d",
    "CausalConv2dSubsampling",
    "CausalDepthwiseConv1d",
    "CausalSqueezeExcitation",
    "GlobalConvBlock",
    "lengths_to_mask",
]
