#!/usr/bin/env bash
# ASR on the offline synthetic multi-accent corpus: every stage is one `asrtools` command,
# resumable and skipped when its outputs are up to date (see docs/ARCHITECTURE.md).
#
#   egs/synth/asr/run.sh                       # all stages, default corpus (~8 h of audio)
#   egs/synth/asr/run.sh --stage 2 --stop-stage 3
#   egs/synth/asr/run.sh --corpus-preset tiny --data /tmp/d   # a seconds-long smoke run
#
# Stages: 0 synthesise corpus | 1 Lhotse manifests + validation | 2 Fbank features | 3 BPE
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                    # parallel jobs for synthesis and features
corpus_preset=default   # tiny | default | large
data=data               # where corpus, manifests, features and BPE go
bpe_config=conf/bpe.yaml
po_options="stage stop_stage nj corpus_preset data bpe_config"
help_message="Usage: $0 [options]   (stages: 0 synth, 1 manifests, 2 features, 3 bpe)"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%H:%M:%S') [run.sh] $*"; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: synthesise the corpus ($corpus_preset)"
  $cpu_cmd asrtools data synth --preset "$corpus_preset" --config conf/synth.yaml --out-dir "$data/synth" -j "$nj"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: Lhotse manifests + validation"
  $cpu_cmd asrtools data manifests --corpus-dir "$data/synth" --out-dir "$data/manifests"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: Fbank features"
  $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config conf/fbank.yaml --out-dir "$data/fbank" -j "$nj"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: BPE"
  $cpu_cmd asrtools bpe train --supervisions "$data/manifests/supervisions_train.jsonl.gz" --config "$bpe_config" --out-dir "$data/lang_bpe"
fi

if [ "$stop_stage" -ge 4 ]; then
  log "stages 4+ (train, decode, score) are not part of this recipe yet; stopping after stage 3"
fi
log "done"
