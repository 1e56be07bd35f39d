"""Torch-free arithmetic on executed-compute records, and the encoder-speed document's schema.

`asrtools.models.compute` counts FLOPs into per-stream records and adds them up
(`summarize_compute`); `asrtools.models.timing` (`asrtools bench encoder`) writes them into an
encoder-speed document. Both the models that measure and the result pages that show the numbers
(`asrtools.report.amortized`, which may not import models: .importlinter) compare one encoder's
FLOPs with a reference encoder's, so that comparison lives here, in the bottom layer.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

#: `schema` and `version` of the document `asrtools bench encoder` writes (encoder_speed.json).
SPEED_SCHEMA, SPEED_SCHEMA_VERSION = "asrtools.encoder_speed", 1


def fraction(numerator: float, denominator: float) -> Optional[float]:
    """numerator / denominator, or None when the denominator is not positive (nothing counted)."""
    return numerator / denominator if denominator > 0 else None


def relative_compute(compute: Mapping[str, Any], reference: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """One encoder's executed FLOPs as fractions of another encoder's dense FLOPs on the same streams.

    `summarize_compute` divides by the encoder's own dense stack; a smaller or windowed model has
    to be compared with the full model it stands in for, so both are read from their summed FLOPs.

    Args:
      compute: the `summarize_compute` result of the encoder measured.
      reference: the `summarize_compute` result of the reference encoder on the same utterances.

    Returns:
      {"encoder_fraction", "encoder_fraction_kv_skipped", "layers_fraction", "layers_fraction_kv_skipped"}
      (None where the reference counted no FLOPs).

    Raises:
      ValueError: the two counted different numbers of frames (not the same utterances).
    """
    if int(compute["frames"]) != int(reference["frames"]):
        raise ValueError(f"compute over {compute['frames']} frames cannot be compared with a reference over "
                         f"{reference['frames']} frames (different utterances or subsampling)")
    flops, ref = compute["flops"], reference["flops"]
    front, ref_front, ref_dense = flops.get("front_end", 0.0), ref.get("front_end", 0.0), ref.get("dense_layers", 0.0)
    return {
        "encoder_fraction": fraction(front + flops.get("layers", 0.0), ref_front + ref_dense),
        "encoder_fraction_kv_skipped": fraction(front + flops.get("layers_kv_skipped", 0.0), ref_front + ref_dense),
        "layers_fraction": fraction(flops.get("layers", 0.0), ref_dense),
        "layers_fraction_kv_skipped": fraction(flops.get("layers_kv_skipped", 0.0), ref_dense),
    }
