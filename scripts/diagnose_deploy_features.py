#!/usr/bin/env python3
"""Where deployed hypotheses differ from PyTorch's: the features, or the runtime?

Decodes the first N cuts of a test set with the toolkit's onnxruntime decoder (which equals
PyTorch streaming greedy on the same frames) on three inputs: the stored (lilcom-compressed)
features that PyTorch decoded, exact lhotse Fbank of the audio, and kaldi-native-fbank of the
audio (what sherpa-onnx computes); prints how many hypotheses agree with PyTorch's and with
sherpa-onnx's recogs (docs/experiments.md, "Deployment"). Run in egs/synth/asr after stage 8:

    ../../../.venv/bin/python ../../../scripts/diagnose_deploy_features.py --num-cuts 300
"""
import argparse
import json
from pathlib import Path

import numpy as np
from lhotse import load_manifest_lazy

from asrtools.config import load_config
from asrtools.data.feature_config import FeatureConfig
from asrtools.export.features import compute_fbank
from asrtools.export.runtime import OnnxTransducer, decode_features


def hypotheses(recogs: Path) -> dict:
    with open(recogs) as f:
        return {row["cut_id"]: row["hyp"] for row in map(json.loads, f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp", type=Path, default=Path("exp/lstm"))
    parser.add_argument("--cuts", type=Path, default=Path("data/fbank/cuts_test.jsonl.gz"))
    parser.add_argument("--fbank-config", type=Path, default=Path("conf/fbank.yaml"))
    parser.add_argument("--num-cuts", type=int, default=300)
    args = parser.parse_args()

    model = OnnxTransducer(args.exp / "onnx", "fp32", 1)
    config = load_config(FeatureConfig, args.fbank_config, ())
    extractor = config.extractor()
    torch_hyps = hypotheses(args.exp / "decode_test_streaming" / "recogs.jsonl")
    sherpa_hyps = hypotheses(args.exp / "decode_test_sherpa-onnx_fp32" / "recogs.jsonl")
    agree = {"stored = PyTorch": 0, "exact lhotse = stored": 0, "exact lhotse = sherpa-onnx": 0,
             "kaldi-native-fbank = sherpa-onnx": 0, "stored = sherpa-onnx": 0}
    cuts = [cut for _, cut in zip(range(args.num_cuts), load_manifest_lazy(args.cuts))]
    for cut in cuts:
        audio = cut.load_audio()[0]
        inputs = {"stored": cut.load_features(), "exact": extractor.extract(audio, cut.sampling_rate),
                  "knf": compute_fbank(audio, config)}
        hyp = {name: model.text(decode_features(model, np.asarray(feats, dtype=np.float32)))
               for name, feats in inputs.items()}
        agree["stored = PyTorch"] += hyp["stored"] == torch_hyps[cut.id]
        agree["exact lhotse = stored"] += hyp["exact"] == hyp["stored"]
        agree["exact lhotse = sherpa-onnx"] += hyp["exact"] == sherpa_hyps[cut.id]
        agree["kaldi-native-fbank = sherpa-onnx"] += hyp["knf"] == sherpa_hyps[cut.id]
        agree["stored = sherpa-onnx"] += hyp["stored"] == sherpa_hyps[cut.id]
    print(f"| identical hypotheses ({len(cuts)} cuts) | count |\n|---|---:|")
    for name, count in agree.items():
        print(f"| {name} | {count}/{len(cuts)} |")


if __name__ == "__main__":
    main()
