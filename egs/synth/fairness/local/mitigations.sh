#!/usr/bin/env bash
# Fairness mitigations (METHODS.md §4-§5, issue 15) of one baseline, all with the same
# fine-tuning budget (conf/mitigate.yaml: max_steps), decoded on the evaluation test speakers
# and measured by held-out cohort. Every step is one `asrtools` stage (skipped when up to date).
#
#   local/mitigations.sh --geo-train exp/cohorts/geo/train_assignments.json \
#     --geo-eval exp/cohorts/geo/assignments.json --auto-train exp/cohorts/auto/train_assignments.json \
#     --auto-eval exp/cohorts/auto/assignments.json
#
# --geo-train / --auto-train: the ASR training speakers' cohorts (`asrtools cohorts assign`
# of the geographic / automatic discovery); --geo-eval / --auto-eval: the evaluation test
# speakers' held-out cohorts (assignments.json of the discovery); --auto-decode-map: the
# cohorts the cohort-input model is given at decoding (default --auto-eval; e.g. the
# nearest-centroid `asrtools cohorts assign` output, which needs no label).
#
# Stages: 1 Fisher of the baseline (EWC) | 2 fine-tuning on the worst geo region(s): EWC for
#   each λ of --ewc-lambdas, plain, L2 (--l2-lambdas), pooled, and the continue-training
#   control | 3 oversampling and cohort input (automatic cohorts) | 4 greedy decoding of the
#   test speakers | 5 evaluation of every system by geo region and by automatic cohort |
#   6 tables (results.md) and trade-off plots (tradeoff.png) in $exp/results_{geo,auto}
# Cost: ~2.5 CPU-minutes per fine-tuning on 2 free cores (250 steps of 60 s batches), the
#   Fisher ~2 min (300 utterances), a decode of the 4928 test cuts a few minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."

stage=1
stop_stage=6
asr=../asr                                            # the ASR recipe: baseline and training data
baseline_exp=$asr/exp/tune/f24_bn_nospec              # conf/train_lstm.yaml at 24 epochs (dev loss flat after ~9)
baseline_ckpt=averaged.pt
test_cuts=data/fbank/cuts_test.jsonl.gz               # the evaluation speakers (preset fairness)
train_cuts=                                           # the fine-tuning pool (default: $asr's training cuts;
                                                      # run.sh adds the evaluation corpus's dev speakers)
baseline_decode=                                      # the baseline's greedy decode of --test-cuts if made already
                                                      # (e.g. run.sh's exp/<system>/decode_test_greedy); else made here
conf=conf/mitigate.yaml
exp=exp/mitigate
geo_train=
geo_eval=
auto_train=
auto_eval=
auto_decode_map=
ewc_lambdas="100 1000 10000 100000 1000000 10000000 100000000"
l2_lambdas="0.01"
oversample_factor=3
cohort_dim=8
train_set=                                            # extra `--set KEY=VALUE` for every fine-tuning (space-separated)
nj=2                                                  # decoding processes
n_boot=1000
device=cpu
po_options="stage stop_stage asr baseline_exp baseline_ckpt test_cuts train_cuts baseline_decode conf exp geo_train geo_eval auto_train auto_eval auto_decode_map ewc_lambdas l2_lambdas oversample_factor cohort_dim train_set nj n_boot device"
help_message="Usage: $0 --geo-train F --geo-eval F --auto-train F --auto-eval F [options]
  stages: 1 Fisher, 2 EWC sweep + baselines, 3 oversampling + cohort input, 4 decode, 5 evaluate, 6 tables + plots"
. ../../../scripts/parse_options.sh
for var in geo_train geo_eval auto_train auto_eval; do
  [ -n "${!var}" ] || { echo "$0: --${var//_/-} is required (see --help)" >&2; exit 1; }
done
. ./path.sh
. ./cmd.sh

auto_decode_map=${auto_decode_map:-$auto_eval}
train_cuts=${train_cuts:-$asr/data/fbank/cuts_train.jsonl.gz}
baseline=$baseline_exp/$baseline_ckpt
sets=(--config "$conf")
for kv in $train_set; do sets+=(--set "$kv"); done
data=(--baseline "$baseline" --cuts-train "$train_cuts"
      --cuts-dev "$asr/data/fbank/cuts_dev.jsonl.gz" --bpe-model "$asr/data/lang_bpe/bpe.model" --device "$device")

# name -> how it was made; the geo family fine-tunes on the worst geo region(s), the auto family
# trains on all data with the automatic cohorts
geo_systems="continue finetune pooled"
for lam in $l2_lambdas; do geo_systems+=" l2_$lam"; done
for lam in $ewc_lambdas; do geo_systems+=" ewc_$lam"; done
auto_systems="oversample_x$oversample_factor cohort_input_d$cohort_dim"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  $cpu_cmd asrtools mitigate fisher "${sets[@]}" --baseline "$baseline" \
    --cuts-train "$asr/data/fbank/cuts_train.jsonl.gz" --bpe-model "$asr/data/lang_bpe/bpe.model" \
    --device "$device" --out-dir "$exp/fisher"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  geo=("${data[@]}" --assignments "$geo_train")
  $gpu_cmd asrtools mitigate finetune "${sets[@]}" "${geo[@]}" --data general --exp-dir "$exp/continue"
  $gpu_cmd asrtools mitigate finetune "${sets[@]}" "${geo[@]}" --data cohorts --exp-dir "$exp/finetune"
  $gpu_cmd asrtools mitigate finetune "${sets[@]}" "${geo[@]}" --data pooled --exp-dir "$exp/pooled"
  for lam in $l2_lambdas; do
    $gpu_cmd asrtools mitigate finetune "${sets[@]}" "${geo[@]}" --data cohorts --penalty l2 --lambda "$lam" \
      --exp-dir "$exp/l2_$lam"
  done
  for lam in $ewc_lambdas; do
    $gpu_cmd asrtools mitigate finetune "${sets[@]}" "${geo[@]}" --data cohorts --penalty ewc --lambda "$lam" \
      --fisher "$exp/fisher" --exp-dir "$exp/ewc_$lam"
  done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  auto=("${data[@]}" --assignments "$auto_train")
  $gpu_cmd asrtools mitigate oversample "${sets[@]}" "${auto[@]}" --factor "$oversample_factor" \
    --exp-dir "$exp/oversample_x$oversample_factor"
  $gpu_cmd asrtools mitigate cohort-input "${sets[@]}" "${auto[@]}" --dim "$cohort_dim" \
    --exp-dir "$exp/cohort_input_d$cohort_dim"
fi

decode_dir() {
  if [ "$1" = baseline ] && [ -n "$baseline_decode" ]; then echo "$baseline_decode"; else echo "$exp/$1/decode_test_greedy"; fi
}

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  common=(--cuts "$test_cuts" --bpe-model "$asr/data/lang_bpe/bpe.model" --method greedy -j "$nj" --device "$device")
  if [ -z "$baseline_decode" ]; then
    $decode_cmd asrtools decode "${common[@]}" --exp-dir "$baseline_exp" --checkpoint "$baseline_ckpt" \
      --out-dir "$(decode_dir baseline)"
  fi
  for name in $geo_systems $auto_systems; do
    map=()
    [[ $name == cohort_input_* ]] && map=(--cohort-map "$auto_decode_map")
    # runs stop at max_steps, mid-epoch: final.pt is the fine-tuned model (averaged.pt may be older)
    $decode_cmd asrtools decode "${common[@]}" --exp-dir "$exp/$name" --checkpoint final.pt "${map[@]}" \
      --out-dir "$(decode_dir "$name")"
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for grouping in geo auto; do
    eval_var=${grouping}_eval
    stats=(--assignments "${!eval_var}" --n-boot "$n_boot" --n-permutations "$n_boot")
    $cpu_cmd asrtools mitigate evaluate --decode "$(decode_dir baseline)" --name baseline "${stats[@]}" \
      --out-dir "$exp/eval_$grouping/baseline"
    for name in $geo_systems $auto_systems; do
      fisher=()
      [[ $name == ewc_* ]] && fisher=(--fisher-dir "$exp/fisher")
      $cpu_cmd asrtools mitigate evaluate --decode "$(decode_dir "$name")" --baseline-decode "$(decode_dir baseline)" \
        --name "$name" --train-dir "$exp/$name" "${fisher[@]}" "${stats[@]}" --out-dir "$exp/eval_$grouping/$name"
    done
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for grouping in geo auto; do
    evals=(--eval "$exp/eval_$grouping/baseline")
    for name in $geo_systems $auto_systems; do evals+=(--eval "$exp/eval_$grouping/$name"); done
    $cpu_cmd asrtools mitigate results "${evals[@]}" --out-dir "$exp/results_$grouping"
    echo "$0: $exp/results_$grouping/results.md, tradeoff.png (cohorts: $grouping)"
  done
fi
