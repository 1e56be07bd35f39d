#!/usr/bin/env bash
# Fairness audit on CSTR VCTK (109 speakers of English with their accent, age, gender and home
# region): which speakers does an ASR system under-serve, by accent/age/gender, by a geographic
# tree over their geocoded home regions (real places: Edinburgh, Belfast, Cape Town, Pittsburgh,
# ...) and by automatic (speaker-embedding) cohorts, measured on held-out speakers; then the
# mitigations. The same stages as egs/synth/fairness and egs/commonvoice/fairness.
#
#   ./run.sh --corpus-dir /data/VCTK-Corpus-0.92                 # everything -> RESULTS.md
#   ./run.sh --corpus-dir /data/VCTK-Corpus-0.92 --stop-stage 3  # manifests, features, BPE, baseline
#   ./run.sh --corpus-dir DIR --prepare-opts "mic=mic1"          # 0.92's other microphone
#   # a model trained elsewhere, every VCTK speaker an evaluation speaker (no train split):
#   ./run.sh --corpus-dir DIR --parts "dev test" --prepare-opts "train_fraction=0 dev_fraction=0.4 test_fraction=0.6" \
#     --asr-exp ../../librispeech/asr/exp/lstm --asr-lang ../../librispeech/asr/data/lang_bpe --mitigate false
#
# Stages (local/fairness_stages.sh): 0 asrtools data prepare vctk | 1 Fbank | 2 BPE |
#   3 baseline (trained here on train, or --asr-exp) | 4 decode dev, test | 5 WER, WER by accent/age/gender/country |
#   6 speaker embeddings | 7 discovery (--methods) | 8 Whisper audit (--whisper true) | 9 mitigations | 10 RESULTS.md
# VCTK has no official split: `data prepare vctk` splits the speakers (accent-stratified,
# deterministic; --prepare-opts "dev_fraction=... test_fraction=... split_seed=..."). Its region
# is placed at a city or US state where the geocoder knows it, else at the accent's country
# (speakers.csv: placed, place_detail); notes.txt counts each.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                          # jobs for preparation, features, decoding and embedding
corpus_dir=                   # VCTK-Corpus-0.92 (wav48_silence_trimmed/) or VCTK-Corpus (0.80, wav48/)
parts="train dev test"        # the speaker splits made by data prepare
prepare_opts=                 # KEY=VALUE options of `asrtools data prepare vctk`: mic, train/dev/test_fraction, split_seed
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
cohort_fields="accent age_group gender country"   # speakers.csv columns scored by cohort in stage 5
encoder=resemblyzer           # resemblyzer | sv:<checkpoint> | file:<path> (asrtools cohorts embed)
utts_per_speaker=16
cohorts_config=conf/cohorts.yaml
methods="geo auto"            # discovery methods: geo (geocoded regions), auto, geodemographic (--zipcodes)
zipcodes=                     # a zip-code attribute table of yours, for --methods geodemographic
whisper=false                 # true: also audit Whisper tiny.en (stage 8)
whisper_per_speaker=8
mitigate=true
finetune_method=geo           # whose dev-discovered cohorts the fine-tuning mitigations target
mitigate_config=conf/mitigate.yaml
ewc_lambdas="100 10000 1000000 100000000"
title="VCTK: cohort discovery and mitigations"
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_dir parts prepare_opts data exp fbank_config bpe_config train_config train_opts asr_exp asr_lang system device cohort_fields encoder utts_per_speaker cohorts_config methods zipcodes whisper whisper_per_speaker mitigate finetune_method mitigate_config ewc_lambdas title results_md"
help_message="Usage: $0 --corpus-dir DIR [options]
  stages: 0 prepare, 1 features, 2 bpe, 3 baseline, 4 decode, 5 score, 6 embeddings, 7 discovery,
          8 whisper, 9 mitigations, 10 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh
. local/fairness_stages.sh

fairness_stages vctk
