"""Options of the Fbank feature stage (kept light: no lhotse import until used)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict


@dataclasses.dataclass
class FeatureConfig:
    """Fbank options (lhotse's FbankConfig) and sharding.

    `cuts` says what one cut of `asrtools data features` is: "auto" (one per utterance: the
    recording itself where each recording is one utterance, else each supervision cut out)
    or "recording" (one per recording with all its supervisions: recorded conversations such
    as LibriCSS sessions, one supervision per turn, the shape `asrtools data mix` gives).
    """

    num_mel_bins: int = 80
    frame_shift: float = 0.01
    frame_length: float = 0.025
    dither: float = 0.0
    sampling_rate: int = 16000
    shard_size: int = 1000
    cuts: str = "auto"

    def validate(self) -> None:
        if self.num_mel_bins < 1 or self.shard_size < 1:
            raise ValueError("num_mel_bins and shard_size must be >= 1")
        if self.cuts not in ("auto", "recording"):
            raise ValueError(f"cuts {self.cuts!r}: expected auto or recording")

    def extractor(self) -> "Fbank":
        """lhotse's Fbank extractor with these options."""
        from lhotse import Fbank, FbankConfig

        return Fbank(FbankConfig(sampling_rate=self.sampling_rate, num_filters=self.num_mel_bins,
                                 frame_shift=self.frame_shift, frame_length=self.frame_length, dither=self.dither))



def fingerprint_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """A stage's parameters (`to_dict` of a `FeatureConfig`, or of a config holding one under
    `features`) without `cuts` where it is "auto": the behaviour from before the key existed,
    so feature and mix stages made before it stay up to date."""
    def without_auto_cuts(values: Dict[str, Any]) -> Dict[str, Any]:
        return {k: v for k, v in values.items() if not (k == "cuts" and v == "auto")}

    params = without_auto_cuts(params)
    if isinstance(params.get("features"), dict):
        params["features"] = without_auto_cuts(params["features"])
    return params
