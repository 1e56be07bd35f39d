#!/usr/bin/env bash
# The tuning sweep of the LSTM recipe: each probe is `asrtools train` with conf/train_lstm_untuned.yaml
# (the recipe before tuning) plus a few --set overrides, in exp/tune/<name> (a stage: finished probes are
# skipped, killed ones resume). Dev WER is the trainer's greedy WER on a fixed 300-utterance dev
# subset after every epoch; test is not touched by the sweep. docs/tuning.md is rebuilt from the
# probes' train_summary.json and stage markers (scripts/tuning_table.py). The --final probes (the
# chosen setting, one run per seed) are then decoded once on dev and test (greedy, and modified
# beam search with beam 4) and scored by speaker cohort: the numbers README quotes.
#
#   egs/synth/asr/local/tune.sh                 # every probe below, one after another
#   egs/synth/asr/local/tune.sh --probes "p6_base p6_bn" --final ""
set -euo pipefail
cd "$(dirname "$0")/.."

data=data
exp=exp/tune
probes="p6_base p6_bn p6_lr4 p6_nospec f24_bn_nospec f24_bn_nospec_s7 e14_bn_lightspec sp5_bn_lightspec e13_bn_nospec_drop2"
final="f24_bn_nospec f24_bn_nospec_s7"  # decoded on dev/test and scored by cohort after the sweep
threads=1               # torch threads per probe (the probes run one after another)
nj=2                    # decoding processes
table=../../../docs/tuning.md
po_options="data exp probes final threads nj table"
help_message="Usage: $0 [--probes 'NAME ...'] [--final 'NAME ...'] [--exp DIR] [--table FILE]"
. ../../../scripts/parse_options.sh
. ./path.sh

# name -> overrides of conf/train_lstm_untuned.yaml (a probe of 6 epochs screens; f24 is a full schedule)
declare -A sweep=(
  [p6_base]="num_epochs=6"
  [p6_bn]="num_epochs=6 model.encoder_params.norm=batch"
  [p6_lr4]="num_epochs=6 optim.lr=4e-3"
  [p6_nospec]="num_epochs=6 data.spec_augment.enabled=false"
  [f24_bn_nospec]="num_epochs=24 model.encoder_params.norm=batch data.spec_augment.enabled=false average=best_k_by_dev_wer"
  [f24_bn_nospec_s7]="num_epochs=24 model.encoder_params.norm=batch data.spec_augment.enabled=false average=best_k_by_dev_wer seed=7"
  # 14 epochs (~32 min on 2 idle cores of this machine; 13 fit the 30-minute budget of conf/train_lstm.yaml)
  [e14_bn_lightspec]="num_epochs=14 model.encoder_params.norm=batch average=best_k_by_dev_wer data.spec_augment.features_mask_size=10 data.spec_augment.num_frame_masks=2 data.spec_augment.frames_mask_size=20 data.spec_augment.max_frames_mask_fraction=0.1"
  # Screened and stopped early (not in $probes, not in the table; `--probes NAME` runs them to the end):
  # subsampling 8 (80 ms encoder frames): steps ~0.6x as long, but dev-subset WER 48.1% after 10 epochs
  # against 34.8% for the same setting at 40 ms (exp/lstm), and 36.7-42.2% after as much training time
  [ss8_bn_nospec]="num_epochs=26 model.encoder_params.subsampling_factor=8 model.encoder_params.norm=batch data.spec_augment.enabled=false average=best_k_by_dev_wer"
  # BPE 1000 (1.40 tokens per word against 2.06 at 256; the corpus has 1,904 words, 0.7% OOV on test):
  # steps ~1.25x as long, and dev-subset WER 59.5% after 4 epochs against 48.6% with BPE 256
  [e13_bpe1000_bn_nospec]="num_epochs=13 model.encoder_params.norm=batch data.spec_augment.enabled=false average=best_k_by_dev_wer"
  [e13_bn_nospec_drop2]="num_epochs=13 model.encoder_params.norm=batch model.encoder_params.dropout=0.2 data.spec_augment.enabled=false average=best_k_by_dev_wer"
  # 120 s batches (twice conf/train_lstm.yaml's) and a higher learning rate for them: epochs took
  # 1.8-2.2 min instead of 2.3, but dev-subset WER was 48.5% after 7 epochs (14.6 min) against 42.2-36.7%
  # for the default after as much time (epochs 6-7): stopped there (so 17 epochs would not fit either)
  [b120_lr3_bn_nospec]="num_epochs=17 data.max_duration=120 optim.lr=3e-3 model.encoder_params.norm=batch data.spec_augment.enabled=false average=best_k_by_dev_wer"
  # online CMN (model.encoder_params.feature_norm: each utterance's causal running mean subtracted from its
  # features, removing its gain) on top of the 13-epoch float32 recipe: dev-subset WER 89.5/68.8/53.6/49.5/43.4%
  # after epochs 1-5 against 90.8/66.1/51.8/48.6/42.3% without it: level or behind, stopped at epoch 5
  [e13_bn_nospec_cmn]="num_epochs=13 model.encoder_params.norm=batch model.encoder_params.feature_norm=online_cmn data.spec_augment.enabled=false average=best_k_by_dev_wer"
  # speed perturbation 0.9/1.1 (3x the cuts per epoch): 5 epochs ~ 15 of the others; lr_epochs / 3 keeps eden's decay per step
  [sp5_bn_lightspec]="num_epochs=5 optim.lr_epochs=1.333 model.encoder_params.norm=batch average=best_k_by_dev_wer data.spec_augment.features_mask_size=10 data.spec_augment.num_frame_masks=2 data.spec_augment.frames_mask_size=20 data.spec_augment.max_frames_mask_fraction=0.1"
)
# probes that train on other cuts than $data/fbank/cuts_train.jsonl.gz (made by `asrtools data perturb`)
declare -A train_cuts=(
  [sp5_bn_lightspec]=fbank_sp/cuts_train_sp.jsonl.gz
)

# probes with another BPE size than conf/bpe.yaml's (their model: $data/lang_bpe<size>, a stage like run.sh's)
declare -A bpe_size=(
  [e13_bpe1000_bn_nospec]=1000
)
bpe_model() { echo "$data/lang_bpe${bpe_size[$1]:-}/bpe.model"; }

for name in $probes; do
  [ -n "${sweep[$name]+x}" ] || { echo "tune.sh: unknown probe '$name' (known: ${!sweep[*]})" >&2; exit 1; }
  if [ "${train_cuts[$name]:-}" = fbank_sp/cuts_train_sp.jsonl.gz ]; then  # a stage: up to date after the first
    asrtools data perturb --cuts "$data/fbank/cuts_train.jsonl.gz" --factors "0.9 1.1" --config conf/fbank.yaml \
      --out-dir "$data/fbank_sp" -j "$nj"
  fi
  if [ -n "${bpe_size[$name]:-}" ]; then
    asrtools bpe train --supervisions "$data/manifests/supervisions_train.jsonl.gz" --config conf/bpe.yaml \
      --set "vocab_size=${bpe_size[$name]}" --out-dir "$data/lang_bpe${bpe_size[$name]}"
  fi
  sets=()
  for kv in ${sweep[$name]} num_threads=$threads save_every_n_steps=0; do sets+=(--set "$kv"); done
  echo "$(date '+%H:%M:%S') [tune.sh] $name: ${sweep[$name]}"
  asrtools train --config conf/train_lstm_untuned.yaml --cuts-train "$data/${train_cuts[$name]:-fbank/cuts_train.jsonl.gz}" \
    --cuts-dev "$data/fbank/cuts_dev.jsonl.gz" --bpe-model "$(bpe_model "$name")" \
    --exp-dir "$exp/$name" "${sets[@]}"
done

python3 ../../../scripts/tuning_table.py --exp "$exp" --baseline p6_base --budget-steps 4641 --out "$table"

for name in $final; do
  for decode in dev:greedy test:greedy test:modified_beam; do
    split=${decode%%:*} method=${decode#*:}
    out=$exp/$name/decode_${split}_$method
    asrtools decode --exp-dir "$exp/$name" --checkpoint averaged.pt --cuts "$data/fbank/cuts_$split.jsonl.gz" \
      --bpe-model "$(bpe_model "$name")" --method "$method" --beam 4 --out-dir "$out" -j "$nj"
    asrtools score wer --ref "$out/recogs.jsonl" --out-dir "$out/wer"
    if [ "$split" = test ]; then
      asrtools score cohorts --recogs "$out/recogs.jsonl" --by accent --by region --by gender --by engine \
        --out-dir "$out/cohorts"
    fi
  done
done
