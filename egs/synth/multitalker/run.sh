#!/usr/bin/env bash
# Streaming multi-talker ASR on simulated conversations: the multi-turn RNN-T baseline, the
# separator-transducer-segmenter (STS, METHODS.md §3) and its ablations. Every stage is one
# `asrtools` command, resumable and skipped when up to date (docs/ARCHITECTURE.md).
#
#   egs/synth/multitalker/run.sh                          # everything, from a fresh clone
#   egs/synth/multitalker/run.sh --src-data ../asr/data --stage 1     # corpus already built
#   egs/synth/multitalker/run.sh --systems "baseline sts" # the two main systems only
#
# Stages: 0 source corpus + BPE (the commands of ../asr/run.sh stages 0-3, into --src-data)
#         1 simulate conversations (asrtools data mix) | 2 single-talker transducer (the
#         common initialisation; skipped with --pretrained FILE) | 3 train each system of
#         --systems from it | 4 streaming decode of the test conversations | 5 score
#         (merged WER, cpWER, ORC-WER, turn counting, latency) | 6 RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                       # parallel jobs for synthesis and features
corpus_preset=default      # tiny | default | large (stage 0)
src_data=data/src          # source corpus: synth/, manifests/, fbank/, lang_bpe/
mix_config=conf/mix.yaml
data=data                  # conversations go to $data/mix
exp=exp
pretrained=                # a single-talker transducer checkpoint (default: train $exp/pretrain)
systems="baseline sts sts_no_fastemit sts_no_activity sts_no_latency"   # conf/train_<system>.yaml
train_set=                 # extra `--set key=value` for every training (e.g. "num_epochs=1 data.num_buckets=2")
device=cpu                 # cpu | cuda
chunk_frames=32            # streaming decoding chunk (10 ms input frames)
n_boot=1000                # bootstrap resamples of the comparisons
results_md=RESULTS.md
note=                      # a line for the Notes section of the results page (e.g. how this run differs)
po_options="stage stop_stage nj corpus_preset src_data mix_config data exp pretrained systems train_set device chunk_frames n_boot results_md note"
help_message="Usage: $0 [options]
  stages: 0 source corpus, 1 mix, 2 pretrain, 3 train, 4 decode, 5 score, 6 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

. ../../../scripts/lib/log.sh
read -r -a system_list <<< "$systems"
read -r -a train_sets <<< "$train_set"
set_args=()
for kv in "${train_sets[@]}"; do set_args+=(--set "$kv"); done
bpe=$src_data/lang_bpe/bpe.model
pretrained=${pretrained:-$exp/pretrain/averaged.pt}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: source corpus ($corpus_preset) -> $src_data"
  $cpu_cmd asrtools data synth --preset "$corpus_preset" --config ../asr/conf/synth.yaml --out-dir "$src_data/synth" -j "$nj"
  $cpu_cmd asrtools data manifests --corpus-dir "$src_data/synth" --out-dir "$src_data/manifests"
  $cpu_cmd asrtools data features --manifest-dir "$src_data/manifests" --config ../asr/conf/fbank.yaml --out-dir "$src_data/fbank" -j "$nj"
  $cpu_cmd asrtools bpe train --supervisions "$src_data/manifests/supervisions_train.jsonl.gz" --config ../asr/conf/bpe.yaml --out-dir "$src_data/lang_bpe"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: simulate conversations ($mix_config)"
  $cpu_cmd asrtools data mix --source-dir "$src_data/fbank" --config "$mix_config" --out-dir "$data/mix" -j "$nj"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ "$pretrained" = "$exp/pretrain/averaged.pt" ]; then
  log "stage 2: single-talker transducer (the initialisation of every system)"
  $gpu_cmd asrtools train --config conf/train_pretrain.yaml --device "$device" "${set_args[@]}" \
    --cuts-train "$src_data/fbank/cuts_train.jsonl.gz" --cuts-dev "$src_data/fbank/cuts_dev.jsonl.gz" \
    --bpe-model "$bpe" --exp-dir "$exp/pretrain"
fi

for s in "${system_list[@]}"; do
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    log "stage 3: train $s (conf/train_$s.yaml)"
    $gpu_cmd asrtools train --config "conf/train_$s.yaml" --device "$device" "${set_args[@]}" \
      --cuts-train "$data/mix/cuts_train.jsonl.gz" --cuts-dev "$data/mix/cuts_dev.jsonl.gz" \
      --bpe-model "$bpe" --init-from "$pretrained" --exp-dir "$exp/$s"
  fi
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    log "stage 4: $s: streaming decode of the test conversations ($chunk_frames-frame chunks)"
    $cpu_cmd asrtools decode --exp-dir "$exp/$s" --checkpoint averaged.pt --device "$device" \
      --cuts "$data/mix/cuts_test.jsonl.gz" --bpe-model "$bpe" --method streaming_greedy \
      --chunk-frames "$chunk_frames" --out-dir "$exp/$s/decode_test_streaming"
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    log "stage 5: $s: score"
    $cpu_cmd asrtools score multitalker --turns "$exp/$s/decode_test_streaming" \
      --out-dir "$exp/$s/decode_test_streaming/score"
  fi
done

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  args=()
  for s in "${system_list[@]}"; do args+=(--system "$s=$exp/$s"); done
  have() { [[ " $systems " == *" $1 "* ]]; }
  if have baseline && have sts; then args+=(--compare baseline,sts --baseline baseline --main sts); fi
  for s in sts_no_fastemit sts_no_activity sts_no_latency; do
    if have sts && have "$s"; then args+=(--compare "sts,$s"); fi
  done
  [ -z "$note" ] || args+=(--note "$note")
  args+=(--note "systems initialised from $pretrained; extra training settings: ${train_set:-none}")
  log "stage 6: results page -> $results_md"
  $cpu_cmd asrtools score multitalker-results "${args[@]}" --bootstrap "$n_boot" \
    --describe "baseline=multi-turn RNN-T: speaker-change token, no turn tokens, no FastEmit/activity/latency" \
    --describe "sts=STS: <sot>/<eot> turns, FastEmit, activity loss, <eot> latency penalty" \
    --describe "sts_no_fastemit=STS without FastEmit" --describe "sts_no_activity=STS without the activity loss" \
    --describe "sts_no_latency=STS without the <eot> latency penalty" \
    --title "egs/synth/multitalker: streaming two-channel multi-talker ASR on simulated conversations" \
    --out "$results_md" --out-dir "$exp/results"
fi
log "done"
