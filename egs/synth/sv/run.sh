#!/usr/bin/env bash
# Speaker verification on the synthetic corpus (`sv` preset: many evaluation speakers), with
# adversarial reweighting (ARW) for verification fairness. Every stage is one `asrtools`
# command, resumable and skipped when up to date (see docs/ARCHITECTURE.md).
#
#   egs/synth/sv/run.sh                               # everything -> RESULTS.md
#   egs/synth/sv/run.sh --systems "baseline pw"       # a subset of conf/train_<system>.yaml
#   egs/synth/sv/run.sh --reference none              # without the Resemblyzer reference row
#   egs/synth/sv/run.sh --config-suffix _large --device cuda   # GPU-scale models (not run here)
#   egs/synth/sv/run.sh --corpus-preset tiny --data /tmp/d --exp /tmp/e --systems "baseline pw" \
#       --train-set num_epochs=1 --reference none     # a seconds-long smoke run
#
# Stages: 0 synthesise corpus | 1 manifests | 2 Fbank features | 3 trials (test split)
#         4 train each system | 5 embed (test; + train for AS-norm) and score the trials
#         6 EER, minDCF, per-group EERs, disparities (+ speaker-bootstrap CIs), DET plots
#         7 external reference: Resemblyzer's pretrained encoder on the same trials
#         8 RESULTS.md from the stage-6/7 artifacts
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                         # jobs for synthesis, features and embedding: local processes, or SLURM array tasks
corpus_preset=sv             # tiny | default | sv | large
data=data                    # corpus, manifests, features
exp=exp
systems="baseline aps pl pw" # conf/train_<system>.yaml; the first is the baseline
config_suffix=               # conf/train_<system><suffix>.yaml, e.g. _large (GPU-scale configs)
train_set=                   # extra `--set KEY=VALUE` for every training run (space-separated)
device=cpu
norm=none                    # none | asnorm (cohort: the training speakers' mean embeddings)
groupings="gender region engine"
bootstrap=1000               # speaker-bootstrap replicates
reference=resemblyzer        # resemblyzer | none
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_preset data exp systems config_suffix train_set device norm groupings bootstrap reference results_md"
help_message="Usage: $0 [options]
  stages: 0 synth, 1 manifests, 2 features, 3 trials, 4 train, 5 embed+score, 6 metrics, 7 reference, 8 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh
. ../../../scripts/corpus_stages.sh

. ../../../scripts/lib/log.sh

read -r -a system_list <<< "$systems"
if [ ${#system_list[@]} -eq 0 ]; then echo "$0: --systems is empty" >&2; exit 1; fi
baseline=${system_list[0]}
set_args=(); for kv in $train_set; do set_args+=(--set "$kv"); done
by_args=(); for g in $groupings; do by_args+=(--by "$g"); done
sup_test=$data/manifests/supervisions_test.jsonl.gz

corpus_stages "$data"

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: trials on the test speakers (balanced within/across: $groupings)"
  $cpu_cmd asrtools sv trials --supervisions "$sup_test" "${by_args[@]}" --out-dir "$exp/trials_test"
fi

score_system() {  # STAGE_SCORE STAGE_METRICS NAME: score the trials with exp/NAME/embed_test, then the metrics
  local s1=$1 s2=$2 name=$3 cohort_args=()
  if [ "$norm" = asnorm ]; then cohort_args=(--cohort "$exp/$name/embed_train"); fi
  if [ "$stage" -le "$s1" ] && [ "$stop_stage" -ge "$s1" ]; then
    $cpu_cmd asrtools sv score --embeddings "$exp/$name/embed_test" --trials "$exp/trials_test" --norm "$norm" \
      "${cohort_args[@]}" --out-dir "$exp/$name/scores_test"
  fi
  if [ "$stage" -le "$s2" ] && [ "$stop_stage" -ge "$s2" ]; then
    log "stage $s2: $name: EER, minDCF, per-group EER, disparities"
    $cpu_cmd asrtools score sv --scores "$exp/$name/scores_test" --supervisions "$sup_test" "${by_args[@]}" \
      --bootstrap "$bootstrap" --title "$name" --out-dir "$exp/$name/sv_test"
  fi
}

for s in "${system_list[@]}"; do
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    log "stage 4: train $s (conf/train_$s$config_suffix.yaml)"
    $gpu_cmd asrtools train --config "conf/train_$s$config_suffix.yaml" "${set_args[@]}" --device "$device" \
      --cuts-train "$data/fbank/cuts_train.jsonl.gz" --cuts-dev "$data/fbank/cuts_dev.jsonl.gz" --exp-dir "$exp/$s"
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    log "stage 5: $s: embed the test (and, for AS-norm, training) utterances, score the trials ($norm)"
    run_embed=$decode_cmd  # one GPU per job under SLURM; no GPU is asked for a CPU run
    [ "$device" != cpu ] || run_embed=$cpu_cmd
    $run_embed asrtools sv embed --checkpoint "$exp/$s/averaged.pt" --cuts "$data/fbank/cuts_test.jsonl.gz" \
      --device "$device" --out-dir "$exp/$s/embed_test" -j "$nj"
    if [ "$norm" = asnorm ]; then
      $run_embed asrtools sv embed --checkpoint "$exp/$s/averaged.pt" --cuts "$data/fbank/cuts_train.jsonl.gz" \
        --device "$device" --out-dir "$exp/$s/embed_train" -j "$nj"
    fi
  fi
  score_system 5 6 "$s"
done

ref_args=()
if [ "$reference" = resemblyzer ]; then
  if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
    log "stage 7: external reference: Resemblyzer (pretrained GE2E encoder) on the same trials"
    "$ASRTOOLS_ROOT/scripts/setup_sv_ref_env.sh"
    $cpu_cmd asrtools sv embed --external resemblyzer --cuts "$data/fbank/cuts_test.jsonl.gz" \
      --out-dir "$exp/resemblyzer/embed_test" -j "$nj"
    if [ "$norm" = asnorm ]; then
      $cpu_cmd asrtools sv embed --external resemblyzer --cuts "$data/fbank/cuts_train.jsonl.gz" \
        --out-dir "$exp/resemblyzer/embed_train" -j "$nj"
    fi
  fi
  score_system 7 7 resemblyzer
  ref_args=(--system "resemblyzer=$exp/resemblyzer/sv_test" --reference resemblyzer)
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: results -> $results_md"
  sys_args=(); for s in "${system_list[@]}"; do sys_args+=(--system "$s=$exp/$s/sv_test"); done
  $cpu_cmd asrtools sv results "${sys_args[@]}" "${ref_args[@]}" --baseline "$baseline" \
    --title "egs/synth/sv: speaker verification with adversarial reweighting on the synthetic corpus" \
    --out "$results_md" --out-dir "$exp/results"
fi
log "done"
