#!/usr/bin/env bash
# Cohort discovery (METHODS.md §4-5): which speakers does a system under-serve? Three ways of
# finding them - a geographic lat/lon tree, a geodemographic zip-code partition, k-means of
# speaker embeddings - each measured on speakers it was not fitted on. Every stage is one
# `asrtools` command, resumable and skipped when up to date (see docs/ARCHITECTURE.md).
#
#   egs/synth/fairness/run.sh                                   # everything -> RESULTS.md
#   egs/synth/fairness/run.sh --asr-exp ../asr/exp/tune/f24_bn_nospec --system lstm_tuned   # another baseline
#   egs/synth/fairness/run.sh --encoder sv:../sv/exp/baseline/averaged.pt   # the toolkit's speaker model
#   egs/synth/fairness/run.sh --encoder file:my_embeddings.json # any speaker -> vector file
#   egs/synth/fairness/run.sh --whisper false                   # without the Whisper audit
#
# Stages: 0 synthesise the evaluation corpus (preset fairness: 154 test + 52 dev speakers)
#         1 manifests | 2 Fbank features (conf/fbank.yaml = ../asr's)
#         3 the baseline ASR model of egs/synth/asr (reused; built with ../asr/run.sh when absent)
#         4 decode dev and test with it (greedy)
#         5 speaker embeddings of the dev + test speakers (--encoder)
#         6 discovery three ways on the baseline's test errors: K-fold speaker cross-fitting, and
#           dev-discover / test-measure
#         7 Whisper tiny.en (an external system) transcribes dev + test: the same three discoveries
#         8 RESULTS.md from the stage-6/7 cohorts.json artifacts
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                          # jobs for synthesis, features, decoding and embedding
corpus_preset=fairness        # the evaluation corpus (tiny for a smoke run)
data=data                     # evaluation corpus, manifests, features
exp=exp
asr_exp=../asr/exp/lstm       # the baseline: an `asrtools train` directory of egs/synth/asr (averaged.pt)
asr_lang=../asr/data/lang_bpe # its BPE model
system=                       # the baseline's name on the page (default: the last part of --asr-exp)
device=cpu                    # decoding device (cpu | cuda)
encoder=resemblyzer           # resemblyzer | sv:<checkpoint> | file:<path> (asrtools cohorts embed)
utts_per_speaker=16           # utterances averaged into each speaker's embedding (0: all)
cohorts_config=conf/cohorts.yaml  # discovery + measurement settings of asrtools cohorts
methods="geo geodemographic auto"
whisper=true                  # true | false: the Whisper tiny.en audit (stage 7)
whisper_per_speaker=8         # utterances per speaker Whisper transcribes (CPU: ~0.2 s per audio second)
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_preset data exp asr_exp asr_lang system device encoder utts_per_speaker cohorts_config methods whisper whisper_per_speaker results_md"
help_message="Usage: $0 [options]
  stages: 0 synth, 1 manifests, 2 features, 3 baseline, 4 decode, 5 embeddings, 6 discovery, 7 whisper, 8 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%H:%M:%S') [run.sh] $*"; }

system=${system:-$(basename "$asr_exp")}   # the baseline's name on the page, e.g. lstm
read -r -a method_list <<< "$methods"
case $encoder in
  resemblyzer) embed_dir=$exp/embed_resemblyzer ;;
  sv:*|file:*) embed_dir=$exp/embed_${encoder%%:*} ;;
  *) echo "$0: --encoder must be resemblyzer, sv:<checkpoint> or file:<path>, got '$encoder'" >&2; exit 1 ;;
esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: synthesise the evaluation corpus ($corpus_preset)"
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
  if [ -f "$asr_exp/averaged.pt" ] && [ -f "$asr_lang/bpe.model" ]; then
    log "stage 3: baseline $asr_exp/averaged.pt (BPE $asr_lang/bpe.model)"
  elif [ "$asr_exp" = "../asr/exp/$(basename "$asr_exp")" ] && [ "$asr_lang" = ../asr/data/lang_bpe ]; then
    log "stage 3: no baseline at $asr_exp: building it with ../asr/run.sh --models $(basename "$asr_exp") --stop-stage 4" \
        "(the ASR training corpus, features, BPE and the training: hours on a CPU)"
    ../asr/run.sh --models "$(basename "$asr_exp")" --stop-stage 4 --nj "$nj" --device "$device"
  else
    echo "$0: no $asr_exp/averaged.pt or $asr_lang/bpe.model (build them with ../asr/run.sh)" >&2; exit 1
  fi
fi

decode_dir() { echo "$exp/$system/decode_$1_greedy"; }
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  run_decode=$decode_cmd; [ "$device" != cpu ] || run_decode=$cpu_cmd
  for split in dev test; do
    log "stage 4: decode $split with $asr_exp (greedy)"
    $run_decode asrtools decode --exp-dir "$asr_exp" --checkpoint averaged.pt --device "$device" \
      --cuts "$data/fbank/cuts_$split.jsonl.gz" --bpe-model "$asr_lang/bpe.model" --method greedy \
      --out-dir "$(decode_dir "$split")" -j "$nj"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  if [ "$encoder" = resemblyzer ]; then "$ASRTOOLS_ROOT/scripts/setup_sv_ref_env.sh"; fi
  log "stage 5: speaker embeddings of the dev + test speakers ($encoder, $utts_per_speaker utterances each)"
  $cpu_cmd asrtools cohorts embed --cuts "$data/fbank/cuts_dev.jsonl.gz" --cuts "$data/fbank/cuts_test.jsonl.gz" \
    --encoder "$encoder" --utts-per-speaker "$utts_per_speaker" --out-dir "$embed_dir" -j "$nj"
fi

# discover NAME TEST_RECOGS DEV_RECOGS: every method of --methods, cross-fitted on the test speakers
# (exp/NAME/cohorts_<method>) and discovered on dev, measured on test (exp/NAME/cohorts_<method>_devtest)
discover() {
  local name=$1 test_recogs=$2 dev_recogs=$3 method extra
  for method in "${method_list[@]}"; do
    extra=()
    case $method in
      geodemographic) extra=(--zipcodes "$data/synth/zipcodes.csv") ;;
      auto) extra=(--embeddings "$embed_dir/embeddings.npz") ;;
    esac
    log "$name: cohorts $method (crossfit on test; dev-discover / test-measure)"
    $cpu_cmd asrtools cohorts "$method" --recogs "$test_recogs" --speakers "$data/synth/speakers.csv" \
      "${extra[@]}" --config "$cohorts_config" --out-dir "$exp/$name/cohorts_$method"
    $cpu_cmd asrtools cohorts "$method" --recogs "$test_recogs" --discover-recogs "$dev_recogs" \
      --speakers "$data/synth/speakers.csv" "${extra[@]}" --config "$cohorts_config" \
      --out-dir "$exp/$name/cohorts_${method}_devtest"
  done
}

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  discover "$system" "$(decode_dir test)" "$(decode_dir dev)"
fi

whisper_dir=$exp/whisper_tiny_en
if [ "$whisper" = true ] && [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  "$ASRTOOLS_ROOT/scripts/setup_audit_env.sh"
  for split in dev test; do
    log "stage 7: Whisper tiny.en transcribes $split (greedy, $whisper_per_speaker utterances per speaker)"
    $cpu_cmd asrtools audit whisper --cuts "$data/fbank/cuts_$split.jsonl.gz" --beam-size 1 --threads "$nj" \
      --per-speaker "$whisper_per_speaker" --out-dir "$whisper_dir/decode_$split"
  done
  discover whisper_tiny_en "$whisper_dir/decode_test" "$whisper_dir/decode_dev"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  names=("$system"); [ "$whisper" != true ] || names+=(whisper_tiny_en)
  runs=()
  for name in "${names[@]}"; do
    for method in "${method_list[@]}"; do
      runs+=(--run "$method:$name=$exp/$name/cohorts_$method" --run "$method:$name=$exp/$name/cohorts_${method}_devtest")
    done
  done
  log "stage 8: $results_md from the discovery artifacts"
  $cpu_cmd asrtools report fairness "${runs[@]}" --paper-system "$system" --out "$results_md" --out-dir "$exp/results"
fi
log "done"
