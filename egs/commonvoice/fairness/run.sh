#!/usr/bin/env bash
# Fairness audit on English Common Voice (a release you downloaded from
# https://commonvoice.mozilla.org/en/datasets): which contributors does an ASR system under-serve,
# by the attributes they gave (accent, age, gender) and by automatic (speaker-embedding) cohorts
# measured on held-out speakers; then the mitigations. The same stages as egs/synth/fairness.
#
#   ./run.sh --corpus-dir /data/cv-corpus-17.0-2024-03-15          # everything -> RESULTS.md
#   ./run.sh --corpus-dir /data/cv-corpus-17.0-2024-03-15/en --stop-stage 3   # manifests, features, BPE, baseline
#   ./run.sh --corpus-dir DIR --asr-exp ../../librispeech/asr/exp/lstm --asr-lang ../../librispeech/asr/data/lang_bpe
#   ./run.sh --corpus-dir DIR --methods "auto geo" --finetune-method geo   # also the country-level geographic tree
#
# Stages (local/fairness_stages.sh): 0 asrtools data prepare commonvoice | 1 Fbank | 2 BPE |
#   3 baseline (trained here on train, or --asr-exp) | 4 decode dev, test | 5 WER, WER by accent/age/gender |
#   6 speaker embeddings | 7 discovery (--methods) | 8 Whisper audit (--whisper true) | 9 mitigations | 10 RESULTS.md
# Geography: Common Voice gives no place, only an accent; `country` is the one the accent names
# ("England English" -> England) and the geocoder puts it at that country's population centre,
# so the geographic method (--methods geo) splits countries. Contributors without a
# place-naming accent stop it with a one-line error naming them, unless conf/cohorts.yaml sets
# `unplaced_speakers: exclude` (they are then left out and counted in cohorts.json / cohorts.md).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                          # jobs for preparation, features, decoding and embedding
corpus_dir=                   # the release (holding en/) or its en/ folder
parts="train dev test"        # Common Voice's splits (speaker-disjoint); validated/other/invalidated also exist
prepare_opts=                 # KEY=VALUE options of `asrtools data prepare commonvoice` (none yet)
data=data                     # manifests, features, BPE
exp=exp
fbank_config=conf/fbank.yaml
bpe_config=conf/bpe.yaml
train_config=conf/train_lstm.yaml   # the baseline trained here when --asr-exp is not given
train_opts=                   # KEY=VALUE overrides of the training config, space-separated
asr_exp=                      # a trained baseline (an `asrtools train` directory with averaged.pt) instead
asr_lang=                     # its BPE directory (bpe.model)
system=                       # the baseline's name on the page (default: the last part of --asr-exp, or lstm)
device=cpu                    # cpu | cuda
cohort_fields="accent age gender"   # speakers.csv columns scored by cohort in stage 5
encoder=resemblyzer           # resemblyzer | sv:<checkpoint> | file:<path> (asrtools cohorts embed)
utts_per_speaker=16
cohorts_config=conf/cohorts.yaml
methods="auto"                # discovery methods: auto, geo (country level, see above), geodemographic (--zipcodes)
zipcodes=                     # a zip-code attribute table of yours, for --methods geodemographic
whisper=false                 # true: also audit Whisper tiny.en (stage 8)
whisper_per_speaker=8
mitigate=true
finetune_method=auto          # whose dev-discovered cohorts the fine-tuning mitigations target
mitigate_config=conf/mitigate.yaml
ewc_lambdas="100 10000 1000000 100000000"
title="Common Voice (en): cohort discovery and mitigations"
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_dir parts prepare_opts data exp fbank_config bpe_config train_config train_opts asr_exp asr_lang system device cohort_fields encoder utts_per_speaker cohorts_config methods zipcodes whisper whisper_per_speaker mitigate finetune_method mitigate_config ewc_lambdas title results_md"
help_message="Usage: $0 --corpus-dir DIR [options]
  stages: 0 prepare, 1 features, 2 bpe, 3 baseline, 4 decode, 5 score, 6 embeddings, 7 discovery,
          8 whisper, 9 mitigations, 10 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh
. local/fairness_stages.sh

fairness_stages commonvoice
