"""Options of the Fbank feature stage (kept light: no lhotse import until used)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class FeatureConfig:
    """Fbank options (lhotse's FbankConfig) and sharding."""

    num_mel_bins: int = 80
    frame_shift: float = 0.01
    frame_length: float = 0.025
    dither: float = 0.0
    sampling_rate: int = 16000
    shard_size: int = 1000

    def validate(self) -> None:
        if self.num_mel_bins < 1 or self.shard_size < 1:
            raise ValueError("num_mel_bins and shard_size must be >= 1")

    def extractor(self) -> "Fbank":
        """lhotse's Fbank extractor with these options."""
        from lhotse import Fbank, FbankConfig

        return Fbank(FbankConfig(sampling_rate=self.sampling_rate, num_filters=self.num_mel_bins,
                                 frame_shift=self.frame_shift, frame_length=self.frame_length, dither=self.dither))
