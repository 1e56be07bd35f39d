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

# run_dir MODEL SEED: the first seed of --seeds trains in $exp/MODEL, every other one in $exp/MODEL_s<seed>
run_dir() { if [ "$2" = "${seed_list[0]}" ]; then echo "$exp/$1"; else echo "$exp/$1_s$2"; fi; }

set_args=()
for kv in $train_opts; do set_args+=(--set "$kv"); done

for m in "${model_list[@]}"; do
  config=${train_config:-conf/train_$m.yaml}
  for seed in "${seed_list[@]}"; do
    exp_dir=$(run_dir "$m" "$seed")

    if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
      log "stage 4: train the $m transducer ($config, seed $seed)"
      $gpu_cmd asrtools train --config "$config" --device "$device" --set seed="$seed" "${set_args[@]}" \
        --cuts-train "$train_cuts" --cuts-dev "$data/fbank/cuts_dev.jsonl.gz" \
        --bpe-model "$data/lang_bpe/bpe.model" --exp-dir "$exp_dir"
    fi

    if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
      run_decode=$decode_cmd  # a one-GPU job under SLURM; no GPU is asked for a CPU decode
      [ "$device" != cpu ] || run_decode=$cpu_cmd
      for decode in dev:greedy test:greedy test:modified_beam test:streaming; do
        split=${decode%%:*} method=${decode#*:} extra=()
        case $method in
          modified_beam) extra=(--beam "$beam") ;;
          streaming) method=streaming_greedy extra=(--chunk-frames "$chunk_frames") ;;
        esac
        log "stage 5: $exp_dir: decode $split ($method)"
        $run_decode asrtools decode --exp-dir "$exp_dir" --checkpoint averaged.pt --device "$device" \
          --cuts "$data/fbank/cuts_$split.jsonl.gz" --bpe-model "$data/lang_bpe/bpe.model" \
          --method "$method" "${extra[@]}" --out-dir "$exp_dir/decode_${split}_${decode#*:}" -j "$nj"
      done
    fi

    if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
      for decode_dir in "$exp_dir"/decode_{dev_greedy,test_greedy,test_modified_beam,test_streaming}; do
        log "stage 6: WER of $decode_dir"
        $cpu_cmd asrtools score wer --ref "$decode_dir/recogs.jsonl" --out-dir "$decode_dir/wer"
      done
      log "stage 6: $exp_dir: WER by gender on test (SPEAKERS.TXT; $data/manifests/speakers.csv)"
      $cpu_cmd asrtools score cohorts --recogs "$exp_dir/decode_test_greedy/recogs.jsonl" --by gender \
        --out-dir "$exp_dir/decode_test_greedy/cohorts"
      log "results: $exp_dir/decode_test_greedy/wer/wer.json, $exp_dir/decode_test_greedy/cohorts/"
    fi
  done
done

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  checkpoints=(); systems=()
  for m in "${model_list[@]}"; do
    runs=()
    for seed in "${seed_list[@]}"; do
      run=$(run_dir "$m" "$seed"); runs+=("$run")
      log "stage 7: $run: parameters and GFLOPs/s ($chunk_frames-frame streaming chunks)"
      $cpu_cmd asrtools model info --checkpoint "$run/averaged.pt" --chunk-frames "$chunk_frames" \
        --out-dir "$run/info"
    done
    checkpoints+=(--checkpoint "$m=$exp/$m/averaged.pt")
    systems+=(--system "$m=$(IFS=,; echo "${runs[*]}")")
  done
  log "stage 7: streaming RTF of ${model_list[*]} (one CPU thread, $rtf_utts test utterances)"
  $cpu_cmd asrtools model rtf "${checkpoints[@]}" --cuts "$data/fbank/cuts_test.jsonl.gz" \
    --num-utts "$rtf_utts" --chunk-frames "$chunk_frames" --out-dir "$exp/rtf_streaming"
  log "stage 7: result page ($report_config) -> $results_md"
  $cpu_cmd asrtools report results --config "$report_config" "${systems[@]}" \
    --input rtf="$exp/rtf_streaming/rtf.json" --out "$results_md" --out-dir "$exp/results"
fi
log "done"
