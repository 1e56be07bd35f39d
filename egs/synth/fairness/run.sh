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
#         8 mitigations (local/mitigations.sh): the regions / cohorts discovered on dev are applied to the
#           fine-tuning pool (the ASR training speakers + the dev speakers); EWC (a lambda sweep), plain,
#           L2 and pooled fine-tuning on the worst region, oversampling and cohort input on the automatic
#           cohorts, and the continue-training control, all with one step budget; measured on test
#         9 RESULTS.md from the stage-6/7 cohorts.json and stage-8 results.json artifacts
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
asr_data=../asr/data          # its training corpus (speakers.csv, Fbank cuts): the mitigations' fine-tuning pool
system=                       # the baseline's name on the page (default: the last part of --asr-exp)
device=cpu                    # decoding device (cpu | cuda)
encoder=resemblyzer           # resemblyzer | sv:<checkpoint> | file:<path> (asrtools cohorts embed)
utts_per_speaker=16           # utterances averaged into each speaker's embedding (0: all)
cohorts_config=conf/cohorts.yaml  # discovery + measurement settings of asrtools cohorts
methods="geo geodemographic auto"
whisper=true                  # true | false: the Whisper tiny.en audit (stage 7)
whisper_per_speaker=8         # utterances per speaker Whisper transcribes (CPU: ~0.2 s per audio second)
mitigate=true                 # true | false: the mitigations (stage 8)
ewc_lambdas="100 1000 10000 100000 1000000 10000000 100000000"  # the EWC sweep (the Fisher's mean is ~1e-8 here)
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_preset data exp asr_exp asr_lang asr_data system device encoder utts_per_speaker cohorts_config methods whisper whisper_per_speaker mitigate ewc_lambdas results_md"
help_message="Usage: $0 [options]
  stages: 0 synth, 1 manifests, 2 features, 3 baseline, 4 decode, 5 embeddings, 6 discovery, 7 whisper,
          8 mitigations, 9 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh
. ../../../scripts/corpus_stages.sh

. ../../../scripts/lib/log.sh

system=${system:-$(basename "$asr_exp")}   # the baseline's name on the page, e.g. lstm
read -r -a method_list <<< "$methods"
case $encoder in
  resemblyzer) embed_dir=$exp/embed_resemblyzer ;;
  sv:*|file:*) embed_dir=$exp/embed_${encoder%%:*} ;;
  *) echo "$0: --encoder must be resemblyzer, sv:<checkpoint> or file:<path>, got '$encoder'" >&2; exit 1 ;;
esac

corpus_stages "$data"

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

mitigate_dir=$exp/$system/mitigate
if [ "$mitigate" = true ] && [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  adapt_cuts=$data/fbank/cuts_adapt.jsonl.gz
  if [ ! -f "$adapt_cuts" ]; then
    log "stage 8: fine-tuning pool: $asr_data's training cuts + the dev speakers' -> $adapt_cuts"
    lhotse combine "$asr_data/fbank/cuts_train.jsonl.gz" "$data/fbank/cuts_dev.jsonl.gz" "$adapt_cuts.tmp.jsonl.gz"
    mv "$adapt_cuts.tmp.jsonl.gz" "$adapt_cuts"
  fi
  log "stage 8: speaker embeddings of the ASR training speakers ($encoder), for their automatic cohorts"
  $cpu_cmd asrtools cohorts embed --cuts "$asr_data/fbank/cuts_train.jsonl.gz" --encoder "$encoder" \
    --utts-per-speaker "$utts_per_speaker" --out-dir "${embed_dir}_asr_train" -j "$nj"
  mkdir -p "$mitigate_dir"
  for method in geo auto; do
    embeddings=()
    [ "$method" != auto ] || embeddings=(--embeddings "$embed_dir/embeddings.npz" --embeddings "${embed_dir}_asr_train/embeddings.npz")
    log "stage 8: the dev-discovered $method cohorts of the fine-tuning pool's speakers"
    $cpu_cmd asrtools cohorts assign --discovery "$exp/$system/cohorts_${method}_devtest/discovery.json" \
      --speakers "$asr_data/synth/speakers.csv" --split train --speakers "$data/synth/speakers.csv" --split dev \
      "${embeddings[@]}" --out "$mitigate_dir/${method}_pool_assignments.json"
  done
  local/mitigations.sh --asr "$(dirname "$asr_data")" --baseline-exp "$asr_exp" --train-cuts "$adapt_cuts" \
    --test-cuts "$data/fbank/cuts_test.jsonl.gz" --baseline-decode "$(decode_dir test)" --exp "$mitigate_dir" \
    --geo-train "$mitigate_dir/geo_pool_assignments.json" --geo-eval "$exp/$system/cohorts_geo_devtest/assignments.json" \
    --auto-train "$mitigate_dir/auto_pool_assignments.json" --auto-eval "$exp/$system/cohorts_auto_devtest/assignments.json" \
    --ewc-lambdas "$ewc_lambdas" --nj "$nj" --device "$device"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  names=("$system"); [ "$whisper" != true ] || names+=(whisper_tiny_en)
  runs=()
  for name in "${names[@]}"; do
    for method in "${method_list[@]}"; do
      runs+=(--run "$method:$name=$exp/$name/cohorts_$method" --run "$method:$name=$exp/$name/cohorts_${method}_devtest")
    done
  done
  if [ "$mitigate" = true ]; then
    runs+=(--mitigations "geo=$mitigate_dir/results_geo" --mitigations "auto=$mitigate_dir/results_auto")
  fi
  log "stage 9: $results_md from the discovery and mitigation artifacts"
  $cpu_cmd asrtools report fairness "${runs[@]}" --paper-system "$system" --out "$results_md" --out-dir "$exp/results"
fi
log "done"
