#!/usr/bin/env bash
# ASR on LibriSpeech, which you download yourself (README.md): the stages of egs/synth/asr, with
# the corpus prepared by `asrtools data prepare librispeech` (lhotse's prepare_librispeech, speaker
# sex from SPEAKERS.TXT) instead of synthesised. Every stage is one `asrtools` command,
# resumable and skipped when its outputs are up to date (see docs/ARCHITECTURE.md).
#
#   egs/librispeech/asr/run.sh --corpus-dir /data/LibriSpeech --stop-stage 3        # manifests, features, BPE
#   egs/librispeech/asr/run.sh --corpus-dir /data/LibriSpeech --device cuda --models conformer
#   egs/librispeech/asr/run.sh --corpus-dir /data/LibriSpeech --parts "train-960 dev-clean test-clean dev-other test-other" \
#       --data data960 --exp exp960 --device cuda                                  # the 960 h
#   egs/librispeech/asr/run.sh --corpus-dir DIR --models tiny --train-opts "max_steps=20"  # CPU smoke run
#
# Stages (numbered as in egs/synth/asr, whose stage 0 synthesises its corpus; here you download it):
#   1 data prepare: manifests per split (train = every train-* part, dev, test, dev_other, test_other),
#     speakers.csv (id, split, gender from SPEAKERS.TXT), validation | 2 Fbank features (and of the
#     speed-perturbed training copies, --speed-perturb) | 3 BPE
#   4 train each transducer of --models, once per --seeds | 5 decode dev/test (greedy; test also
#   modified beam search and streaming) | 6 score: WER, WER by gender (speaker-level intervals)
#   7 compare the models: size/FLOPs, streaming RTF on one CPU thread, then the page $results_md
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=100
corpus_dir=             # the LibriSpeech/ folder the openslr tarballs unpack to (SPEAKERS.TXT, train-clean-100/, ...)
parts="train-clean-100 dev-clean test-clean"   # LibriSpeech parts; train-960 = the three training parts
nj=2                    # jobs for features and decoding: local processes, or SLURM array tasks
data=data               # where manifests, features and BPE go
bpe_config=conf/bpe.yaml
speed_perturb=          # e.g. "0.9 1.1": train on the cuts plus speed-perturbed copies
models="lstm convrnnt conformer"  # conf/train_<model>.yaml (GPU-sized); "tiny" is the CPU smoke config
model=                  # one model only: the same as --models NAME
train_config=           # a single model's training config (default: conf/train_<model>.yaml)
train_opts=             # KEY=VALUE overrides (asrtools train --set) applied to every model, space-separated
exp=exp                 # where experiments go: $exp/<model>
device=cpu              # cpu | cuda
chunk_frames=64         # streaming decoding chunk (10 ms input frames; a multiple of the Conformer's 64)
beam=4                  # modified beam search (stage 5 decodes test greedy, with it, and streaming)
seeds=42                # training seeds per model, e.g. "42 7"
rtf_utts=50             # test utterances decoded per model for the streaming RTF (stage 7)
results_md=RESULTS.md   # the comparison page of stage 7
report_config=conf/report.yaml
po_options="stage stop_stage corpus_dir parts nj data bpe_config speed_perturb models model train_config train_opts exp device chunk_frames beam seeds rtf_utts results_md report_config"
help_message="Usage: $0 --corpus-dir DIR [options]
  stages: 1 data prepare, 2 features, 3 bpe, 4 train, 5 decode, 6 score, 7 compare models"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

. ../../../scripts/lib/log.sh

models=${model:-$models}
read -r -a model_list <<< "$models"
read -r -a seed_list <<< "$seeds"
if [ ${#seed_list[@]} -eq 0 ]; then echo "$0: --seeds is empty" >&2; exit 1; fi
if [ ${#model_list[@]} -eq 0 ]; then echo "$0: --models is empty" >&2; exit 1; fi
if [ -n "$train_config" ] && [ ${#model_list[@]} -ne 1 ]; then
  echo "$0: --train-config needs a single model (--models NAME), got: $models" >&2; exit 1
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -z "$corpus_dir" ]; then echo "$0: stage 1 needs --corpus-dir (the LibriSpeech/ folder; README.md)" >&2; exit 1; fi
  log "stage 1: data prepare ($parts)"
  $cpu_cmd asrtools data prepare librispeech --corpus-dir "$corpus_dir" --parts "$parts" --out-dir "$data/manifests" \
    -j "$nj"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: Fbank features"
  $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config conf/fbank.yaml --out-dir "$data/fbank" \
    -j "$nj"
fi

train_cuts=$data/fbank/cuts_train.jsonl.gz
if [ -n "$speed_perturb" ]; then
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    log "stage 2: speed perturbation of the training cuts ($speed_perturb)"
    $cpu_cmd asrtools data perturb --cuts "$train_cuts" --factors "$speed_perturb" --config conf/fbank.yaml \
      --out-dir "$data/fbank_sp" -j "$nj"
  fi
  train_cuts=$data/fbank_sp/cuts_train_sp.jsonl.gz
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: BPE"
  $cpu_cmd asrtools bpe train --supervisions "$data/manifests/supervisions_train.jsonl.gz" --config "$bpe_config" \
    --out-dir "$data/lang_bpe"
fi

. ../../../scripts/lib/transducer_stages.sh
transducer_stages "$data" "$train_cuts" gender   # gender from SPEAKERS.TXT ($data/manifests/speakers.csv)
compare_stage "$data"
log "done"
