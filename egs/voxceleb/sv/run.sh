#!/usr/bin/env bash
# Speaker verification on VoxCeleb1 with the official trial list, the baseline and the adversarial
# reweighting (ARW) variants of egs/synth/sv, gender and nationality (from vox1_meta.csv) as the
# groups. Every stage is one `asrtools` command, resumable and skipped when up to date.
#
#   egs/voxceleb/sv/run.sh --corpus-dir /data/VoxCeleb1                 # GPU configs, --device cuda
#   egs/voxceleb/sv/run.sh --corpus-dir /data/VoxCeleb1 --systems "baseline pw"
#   egs/voxceleb/sv/run.sh --corpus-dir DIR --config-suffix _cpu --device cpu \
#       --train-set "num_epochs=1 max_steps=20"                          # a CPU smoke run
#
# Stages: 0 manifests + speaker table (asrtools data prepare voxceleb: lhotse's VoxCeleb1 parser;
#         train / dev (held-out dev-set speakers) / test) | 1 Fbank features | 2 the official
#         trial list in the toolkit's format | 3 train each system | 4 embed the test (and, for
#         AS-norm, training) utterances, score the trials | 5 EER, minDCF, per-group EERs,
#         disparities (+ speaker-bootstrap CIs), DET plots | 6 RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                         # jobs for features and embedding: local processes, or SLURM array tasks
corpus_dir=                  # VoxCeleb1: wav/idXXXXX/VIDEO/NNNNN.wav, vox1_meta.csv, the trial list
trials=veri_test2.txt        # official list under --corpus-dir (veri_test2.txt = VoxCeleb1-O, cleaned)
dev_speakers=20              # VoxCeleb1 dev-set speakers held out for the dev EER (checkpoint selection)
max_duration=180             # longest utterance accepted (VoxCeleb1's longest lasts 145 s)
data=data
exp=exp
systems="baseline aps pl pw" # conf/train_<system><suffix>.yaml; the first is the baseline
config_suffix=               # "" = GPU-size configs, _cpu = the egs/synth/sv CPU size
train_set=                   # extra `--set KEY=VALUE` for every training run (space-separated)
device=cuda
norm=none                    # none | asnorm (cohort: the training speakers' mean embeddings)
groupings="gender nationality"
bootstrap=1000               # speaker-bootstrap replicates
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_dir trials dev_speakers max_duration data exp systems config_suffix train_set device norm groupings bootstrap results_md"
help_message="Usage: $0 --corpus-dir DIR [options]
  stages: 0 prepare, 1 features, 2 official trials, 3 train, 4 embed+score, 5 metrics, 6 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

. ../../../scripts/lib/log.sh
need_corpus() {
  if [ -z "$corpus_dir" ]; then echo "$0: --corpus-dir is required (the VoxCeleb1 directory)" >&2; exit 1; fi
}

read -r -a system_list <<< "$systems"
if [ ${#system_list[@]} -eq 0 ]; then echo "$0: --systems is empty" >&2; exit 1; fi
baseline=${system_list[0]}
set_args=(); for kv in $train_set; do set_args+=(--set "$kv"); done
by_args=(); for g in $groupings; do by_args+=(--by "$g"); done
sup_test=$data/manifests/supervisions_test.jsonl.gz
trial_dir=$exp/trials_${trials%.txt}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  need_corpus
  log "stage 0: manifests + speaker table of $corpus_dir ($dev_speakers dev speakers held out)"
  $cpu_cmd asrtools data prepare voxceleb --corpus-dir "$corpus_dir" --option "trials=$trials" \
    --option "dev_speakers=$dev_speakers" --max-duration "$max_duration" -j "$nj" --out-dir "$data/manifests"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: Fbank features"
  $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config conf/fbank.yaml \
    --out-dir "$data/fbank" -j "$nj"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  need_corpus
  log "stage 2: the official trial list $trials"
  $cpu_cmd asrtools sv import-trials --list "$corpus_dir/$trials" --supervisions "$sup_test" --out-dir "$trial_dir"
fi

for s in "${system_list[@]}"; do
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    log "stage 3: train $s (conf/train_$s$config_suffix.yaml)"
    $gpu_cmd asrtools train --config "conf/train_$s$config_suffix.yaml" "${set_args[@]}" --device "$device" \
      --cuts-train "$data/fbank/cuts_train.jsonl.gz" --cuts-dev "$data/fbank/cuts_dev.jsonl.gz" --exp-dir "$exp/$s"
  fi
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    log "stage 4: $s: embed the test (and, for AS-norm, training) utterances, score the trials ($norm)"
    run_embed=$decode_cmd  # one GPU per job under SLURM; no GPU is asked for a CPU run
    [ "$device" != cpu ] || run_embed=$cpu_cmd
    $run_embed asrtools sv embed --checkpoint "$exp/$s/averaged.pt" --cuts "$data/fbank/cuts_test.jsonl.gz" \
      --device "$device" --out-dir "$exp/$s/embed_test" -j "$nj"
    cohort_args=()
    if [ "$norm" = asnorm ]; then
      $run_embed asrtools sv embed --checkpoint "$exp/$s/averaged.pt" --cuts "$data/fbank/cuts_train.jsonl.gz" \
        --device "$device" --out-dir "$exp/$s/embed_train" -j "$nj"
      cohort_args=(--cohort "$exp/$s/embed_train")
    fi
    $cpu_cmd asrtools sv score --embeddings "$exp/$s/embed_test" --trials "$trial_dir" --norm "$norm" \
      "${cohort_args[@]}" --out-dir "$exp/$s/scores_test"
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    log "stage 5: $s: EER, minDCF, per-group EER, disparities ($groupings)"
    $cpu_cmd asrtools score sv --scores "$exp/$s/scores_test" --supervisions "$sup_test" "${by_args[@]}" \
      --bootstrap "$bootstrap" --title "$s" --out-dir "$exp/$s/sv_test"
  fi
done

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: results -> $results_md"
  sys_args=(); for s in "${system_list[@]}"; do sys_args+=(--system "$s=$exp/$s/sv_test"); done
  $cpu_cmd asrtools sv results "${sys_args[@]}" --baseline "$baseline" \
    --title "egs/voxceleb/sv: speaker verification with adversarial reweighting on VoxCeleb1 ($trials)" \
    --out "$results_md" --out-dir "$exp/results"
fi
log "done"
