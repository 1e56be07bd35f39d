"""The feature stage's fingerprint: `cuts` enters it only when not the default."""
from asrtools.config import to_dict
from asrtools.data.conversations import MixConfig
from asrtools.data.feature_config import FeatureConfig, fingerprint_params

# The keys of FeatureConfig before `cuts` existed: stages made then must stay up to date.
KEYS_BEFORE_CUTS = {"num_mel_bins", "frame_shift", "frame_length", "dither", "sampling_rate", "shard_size"}


def test_default_cuts_leave_the_fingerprint_as_before() -> None:
    assert set(fingerprint_params(to_dict(FeatureConfig()))) == KEYS_BEFORE_CUTS
    assert set(fingerprint_params(to_dict(MixConfig()))["features"]) == KEYS_BEFORE_CUTS


def test_recording_cuts_enter_the_fingerprint() -> None:
    params = fingerprint_params(to_dict(FeatureConfig(cuts="recording")))
    assert params["cuts"] == "recording"
    mix = to_dict(MixConfig())
    mix["features"]["cuts"] = "recording"
    assert fingerprint_params(mix)["features"]["cuts"] == "recording"
