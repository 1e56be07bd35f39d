"""`asrtools data perturb`: speed-perturbed copies of featurised cuts (lhotse's perturb_speed)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import needs_tts, run_asrtools


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_tts
def test_perturbed_cuts_follow_the_source_cuts_with_rescaled_durations_and_new_features(tiny_corpus, tmp_path):
    from lhotse import load_manifest
    from lhotse.utils import fastcopy

    from asrtools.data.feature_config import FeatureConfig

    source = tiny_corpus / "fbank" / "cuts_train.jsonl.gz"
    before = _sha(source)
    out = tmp_path / "sp"
    args = ["data", "perturb", "--cuts", str(source), "--factors", "0.9,1.1", "--set", "shard_size=7",
            "--out-dir", str(out), "-j", "2"]
    run_asrtools(args)
    assert _sha(source) == before  # the source manifest (and its cuts' features) are untouched

    originals = list(load_manifest(source))
    cuts = list(load_manifest(out / "cuts_train_sp.jsonl.gz"))
    n = len(originals)
    assert len(cuts) == 3 * n
    assert [c.to_dict() for c in cuts[:n]] == [c.to_dict() for c in originals]
    extractor = FeatureConfig().extractor()
    for block, factor in ((1, 0.9), (2, 1.1)):
        for orig, cut in zip(originals, cuts[block * n:(block + 1) * n]):
            assert cut.id == f"{orig.id}_sp{factor}"
            assert cut.supervisions[0].text == orig.supervisions[0].text
            assert cut.supervisions[0].speaker == orig.supervisions[0].speaker
            assert cut.duration == pytest.approx(orig.duration / factor, abs=1e-3)
            assert cut.supervisions[0].duration == pytest.approx(cut.duration, abs=1e-3)
            feats = cut.load_features()
            assert feats.shape == (cut.num_frames, 80)
            assert abs(cut.num_frames - orig.num_frames / factor) <= 2
        # stored features are those of lhotse's perturbed audio (lilcom is lossy: close, not equal)
        orig = originals[0]
        expected = fastcopy(orig, features=None).perturb_speed(factor).compute_features(extractor)
        np.testing.assert_allclose(cuts[block * n].load_features(), expected, atol=0.1)

    again = run_asrtools(args)
    assert "up to date" in again.stdout + again.stderr


@needs_tts
def test_bad_factors_and_cuts_without_features_fail_with_one_line_and_write_nothing(tiny_corpus, tmp_path):
    from lhotse import CutSet, load_manifest

    source = tiny_corpus / "fbank" / "cuts_train.jsonl.gz"
    for factors, words in (("1", "not 1"), ("0.9 0.9", "distinct"), ("-1", "positive"), ("fast", "expected numbers")):
        out = tmp_path / f"bad{len(words)}"
        proc = run_asrtools(["data", "perturb", "--cuts", str(source), "--factors", factors, "--out-dir", str(out)],
                            check=False)
        assert proc.returncode != 0 and words in proc.stderr, proc.stderr
        assert not out.exists()  # refused before the stage directory is made

    featureless = tmp_path / "cuts_nofeats.jsonl.gz"
    cuts = list(load_manifest(source))
    cuts[2] = cuts[2].drop_features()
    CutSet.from_cuts(cuts).to_file(featureless)
    out = tmp_path / "nofeats"
    proc = run_asrtools(["data", "perturb", "--cuts", str(featureless), "--out-dir", str(out)], check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"cut {cuts[2].id} has no audio or no features" in last, proc.stderr
    assert not (out / "cuts_nofeats_sp.jsonl.gz").exists()
