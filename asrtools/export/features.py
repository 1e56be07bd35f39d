"""Fbank features as sherpa-onnx computes them (kaldi-native-fbank), from the toolkit's options.

The toolkit trains on lhotse's `Fbank` (`asrtools.data.feature_config.FeatureConfig`);
sherpa-onnx computes features itself with kaldi-native-fbank. Both implement Kaldi's
`compute-fbank`; with the options below (lhotse's defaults written out: povey window,
pre-emphasis 0.97, DC removal, power spectrum, mel band 20 Hz .. Nyquist - 400 Hz, no
snip_edges, float epsilon log floor) they agree to ~1e-4 (tests/test_export.py checks it).
The deployed runtimes (the toolkit's onnxruntime decoder, `asrtools transcribe`) compute
features here, the same way sherpa-onnx does, and `sherpa_feature_kwargs` passes the same
options to `sherpa_onnx.OnlineRecognizer.from_transducer`.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from asrtools.data.feature_config import FeatureConfig

LOW_FREQ = 20.0  # lhotse FbankConfig defaults (Kaldi's)
HIGH_FREQ = -400.0


def knf_options(config: FeatureConfig) -> Any:
    """kaldi-native-fbank `FbankOptions` equal to lhotse's Fbank with `config`."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(config.sampling_rate)
    opts.frame_opts.frame_shift_ms = 1000.0 * config.frame_shift
    opts.frame_opts.frame_length_ms = 1000.0 * config.frame_length
    opts.frame_opts.dither = float(config.dither)
    opts.frame_opts.snip_edges = False
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.round_to_power_of_two = True
    opts.mel_opts.num_bins = config.num_mel_bins
    opts.mel_opts.low_freq = LOW_FREQ
    opts.mel_opts.high_freq = HIGH_FREQ
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    return opts


class StreamingFbank:
    """Incremental Fbank of one stream: feed samples, take the frames that became ready.

    Args:
      config: the feature options (its `sampling_rate` is the rate samples must have).
    """

    def __init__(self, config: FeatureConfig) -> None:
        import kaldi_native_fbank as knf

        self.config = config
        self._fbank = knf.OnlineFbank(knf_options(config))
        self._taken = 0

    def accept(self, samples: np.ndarray) -> None:
        """Append mono float samples in [-1, 1] at `config.sampling_rate`."""
        self._fbank.accept_waveform(float(self.config.sampling_rate), np.asarray(samples, dtype=np.float32))

    def finish(self) -> None:
        """No more samples: the last frames (padded as Kaldi does) become ready."""
        self._fbank.input_finished()

    def take(self) -> np.ndarray:
        """(T, F) float32 frames ready since the last call."""
        ready = self._fbank.num_frames_ready
        frames = [self._fbank.get_frame(i) for i in range(self._taken, ready)]
        self._taken = ready
        if not frames:
            return np.zeros((0, self.config.num_mel_bins), dtype=np.float32)
        return np.stack(frames).astype(np.float32)


def compute_fbank(samples: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(T, F) Fbank of a whole mono signal (float in [-1, 1] at `config.sampling_rate`)."""
    fbank = StreamingFbank(config)
    fbank.accept(samples)
    fbank.finish()
    return fbank.take()


def sherpa_feature_kwargs(config: FeatureConfig) -> Dict[str, Any]:
    """Keyword arguments of `sherpa_onnx.OnlineRecognizer.from_transducer` for these features."""
    return {"sample_rate": config.sampling_rate, "feature_dim": config.num_mel_bins, "low_freq": LOW_FREQ,
            "high_freq": HIGH_FREQ, "dither": float(config.dither), "snip_edges": False,
            "normalize_samples": True}
