#!/usr/bin/env bash
# Compute-cost amortized streaming Transformer transducer (METHODS.md section 2) on the synthetic
# corpus of egs/synth/asr: per-frame arbitrators skip Transformer sub-blocks; a lambda sweep of
# the compute penalty against the dense model and baselines at matched compute. Every stage is
# one `asrtools` command, resumable and skipped when up to date (docs/ARCHITECTURE.md).
#
#   egs/synth/amortized/run.sh                          # everything (data from ../asr, built if missing)
#   egs/synth/amortized/run.sh --stage 1 --stop-stage 2 --lambdas "1 2"
#   egs/synth/amortized/run.sh --systems "dense arb_l1" --stage 3     # decode/score/... some systems
#   egs/synth/amortized/run.sh --targets "45" --stage 2               # arb_t45: lambda * max(0, C - 0.45)
#   egs/synth/amortized/run.sh --conf-suffix _large --device cuda --exp exp_large   # GPU-scale configs
#
# Systems: dense_base (stage 1, from scratch) is the start of every fine-tuned system (stage 2:
# --init-from dense_base/averaged.pt, 2 epochs each): dense (the reference), arb_l<LAMBDA> for
# each --lambdas value and arb_t<PERCENT> for each --targets value (the same config, penalty
# --target-lambda * max(0, C - PERCENT/100)), window (sliding-window attention), random (random
# skipping at --random-keep rates); static (3 layers) is trained from scratch for 6 epochs.
#
# Stages: 0 data (../asr/run.sh stages 0-3) | 1 train dense_base | 2 train the systems
#         3 decode dev/test (greedy; executed compute in summary.json) | 4 score WER
#         5 encoder wall-clock speed (one thread and all cores) | 6 RESULTS.md + WER-vs-compute PNG
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
data=../asr/data        # egs/synth/asr's corpus, features and BPE model (stage 0 builds them there)
exp=exp
device=cpu
conf_suffix=            # _large: the GPU-scale configs conf/*_large.yaml (not run on CPU)
lambdas="1 2 4"         # compute-penalty weights of the arbitrated systems arb_l<LAMBDA>
targets=45              # compute targets in percent of the arbitrated systems arb_t<PERCENT> (hinge form)
target_lambda=4         # their penalty weight
random_keep="0.54 0.19" # keep rates of the random-skipping baseline: attention, feed-forward (the
                        # mean executed fractions of arb_t45 on test, RESULTS.md)
baselines="window static random"
systems=                # the systems of stages 2-6 (default: dense, arb_l<LAMBDA>..., baselines)
bench_utts=100          # test cuts timed by stage 5
bench_threads="1 0"     # torch thread counts of stage 5 (0 = every core)
results_md=RESULTS.md
po_options="stage stop_stage data exp device conf_suffix lambdas targets target_lambda random_keep baselines systems bench_utts bench_threads results_md"
help_message="Usage: $0 [options]
  stages: 0 data, 1 dense_base, 2 systems, 3 decode, 4 score, 5 encoder speed, 6 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

. ../../../scripts/lib/log.sh

arbitrated=()
for l in $lambdas; do arbitrated+=("arb_l$l"); done
for t in $targets; do
  [[ $t =~ ^[0-9]+$ ]] && [ "$t" -ge 1 ] && [ "$t" -le 99 ] \
    || { echo "$0: --targets: '$t' is not a percentage 1-99" >&2; exit 1; }
  arbitrated+=("arb_t$t")
done
read -r keep_attention keep_ffn extra <<< "$random_keep"
if [ -z "${keep_ffn:-}" ] || [ -n "${extra:-}" ]; then
  echo "$0: --random-keep needs two keep rates (attention, feed-forward), got '$random_keep'" >&2; exit 1
fi
if [ -z "$systems" ]; then systems="dense ${arbitrated[*]} $baselines"; fi
read -r -a system_list <<< "$systems"

# config of a system and its training options (fine-tuned systems start from dense_base)
system_config() {
  case $1 in
    dense) echo "conf/finetune_dense$conf_suffix.yaml" ;;
    arb_l*|arb_t*) echo "conf/finetune_arbitrated$conf_suffix.yaml" ;;
    window) echo "conf/finetune_window$conf_suffix.yaml" ;;
    random) echo "conf/finetune_random$conf_suffix.yaml" ;;
    static) echo "conf/train_small$conf_suffix.yaml" ;;
    *) echo "$0: unknown system '$1' (dense, arb_l<LAMBDA>, arb_t<PERCENT>, window, random, static)" >&2; return 1 ;;
  esac
}
system_options() {
  case $1 in
    static) ;;
    arb_l*) echo "--init-from $exp/dense_base/averaged.pt --set model.encoder_params.compute_weight=${1#arb_l}" ;;
    arb_t*) echo "--init-from $exp/dense_base/averaged.pt --set model.encoder_params.compute_weight=$target_lambda" \
                 "--set model.encoder_params.compute_target=$(awk -v p="${1#arb_t}" 'BEGIN { print p / 100 }')" ;;
    random) echo "--init-from $exp/dense_base/averaged.pt --set model.encoder_params.keep_rate_attention=$keep_attention" \
                 "--set model.encoder_params.keep_rate_ffn=$keep_ffn" ;;
    *) echo "--init-from $exp/dense_base/averaged.pt" ;;
  esac
}
system_kind() {
  case $1 in
    dense) echo dense ;; arb_l*|arb_t*) echo arbitrated ;; *) echo "$1" ;;
  esac
}
for s in "${system_list[@]}"; do system_config "$s" >/dev/null; done

train_args=(--cuts-train "$data/fbank/cuts_train.jsonl.gz" --cuts-dev "$data/fbank/cuts_dev.jsonl.gz"
            --bpe-model "$data/lang_bpe/bpe.model" --device "$device")

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: corpus, features and BPE of egs/synth/asr (skipped where up to date)"
  ../asr/run.sh --stage 0 --stop-stage 3 --data "$(cd "$(dirname "$data")" && pwd)/$(basename "$data")"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: train the dense Transformer from scratch (conf/train_transformer$conf_suffix.yaml)"
  $gpu_cmd asrtools train --config "conf/train_transformer$conf_suffix.yaml" "${train_args[@]}" --exp-dir "$exp/dense_base"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  for s in "${system_list[@]}"; do
    log "stage 2: train $s ($(system_config "$s") $(system_options "$s"))"
    # shellcheck disable=SC2046
    $gpu_cmd asrtools train --config "$(system_config "$s")" $(system_options "$s") "${train_args[@]}" \
      --exp-dir "$exp/$s"
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  run_decode=$decode_cmd
  [ "$device" != cpu ] || run_decode=$cpu_cmd
  for s in "${system_list[@]}"; do
    for split in dev test; do
      log "stage 3: $s: decode $split (greedy)"
      $run_decode asrtools decode --exp-dir "$exp/$s" --checkpoint averaged.pt --device "$device" \
        --cuts "$data/fbank/cuts_$split.jsonl.gz" --bpe-model "$data/lang_bpe/bpe.model" \
        --method greedy --out-dir "$exp/$s/decode_${split}_greedy"
    done
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for s in "${system_list[@]}"; do
    for split in dev test; do
      $cpu_cmd asrtools score wer --ref "$exp/$s/decode_${split}_greedy/recogs.jsonl" \
        --out-dir "$exp/$s/decode_${split}_greedy/wer"
    done
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  checkpoints=(); threads=()
  for s in "${system_list[@]}"; do checkpoints+=(--checkpoint "$s=$exp/$s/averaged.pt"); done
  for t in $bench_threads; do threads+=(--threads "$t"); done
  log "stage 5: encoder wall-clock time of ${system_list[*]} on $bench_utts test cuts (reference: dense)"
  $cpu_cmd asrtools bench encoder "${checkpoints[@]}" --reference dense --cuts "$data/fbank/cuts_test.jsonl.gz" \
    --num-utts "$bench_utts" "${threads[@]}" --out-dir "$exp/encoder_speed"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  args=()
  for s in "${system_list[@]}"; do
    args+=(--system "$(system_kind "$s"):$s=$exp/$s")
    case $s in
      arb_l*) args+=(--label "$s=lambda ${s#arb_l}") ;;
      arb_t*) args+=(--label "$s=lambda $target_lambda, target ${s#arb_t}%") ;;
      random) args+=(--label "random=random, keep $keep_attention / $keep_ffn") ;;
    esac
  done
  log "stage 6: results page -> $results_md"
  $cpu_cmd asrtools amortized results "${args[@]}" --speed-json "$exp/encoder_speed/encoder_speed.json" \
    --title "egs/synth/amortized: compute-amortized Transformer transducer" \
    --out "$results_md" --plot wer_vs_compute.png --out-dir "$exp/results"
fi
log "done"
