#!/usr/bin/env bash
# ASR on the offline synthetic multi-accent corpus: every stage is one `asrtools` command,
# resumable and skipped when its outputs are up to date (see docs/ARCHITECTURE.md).
#
#   egs/synth/asr/run.sh                       # all stages: corpus, LSTM/ConvRNN-T/Conformer, RESULTS.md
#   egs/synth/asr/run.sh --models lstm --results-md exp/RESULTS_lstm.md   # one model only
#   egs/synth/asr/run.sh --seeds "42 7"          # two trainings per model: mean, SD, seed-averaged comparison
#   egs/synth/asr/run.sh --models "lstm convrnnt" --train-opts "num_epochs=6" --exp exp/e6   # overrides for every model
#   egs/synth/asr/run.sh --stage 2 --stop-stage 3
#   egs/synth/asr/run.sh --speed-perturb "0.9 1.1" --train-opts "num_epochs=30"   # augmented data, longer schedule
#   egs/synth/asr/run.sh --corpus-preset tiny --data /tmp/d --stop-stage 3  # a seconds-long smoke run
#
# Stages: 0 synthesise corpus | 1 Lhotse manifests + validation | 2 Fbank features (and of the
#         speed-perturbed training copies, --speed-perturb) | 3 BPE
#         4 train each transducer of --models, once per --seeds | 5 decode dev/test (greedy; test also
#         modified beam search and streaming) | 6 score: WER, WER by cohort
#         7 compare the models: size/FLOPs (model info), streaming RTF on one CPU thread, then the page $results_md
#         8 deploy: ONNX export, test decoded by sherpa-onnx (fp32, int8) and onnxruntime, verified against PyTorch
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                    # jobs for synthesis, features and decoding: local processes, or SLURM array tasks
corpus_preset=default   # tiny | default | large
data=data               # where corpus, manifests, features and BPE go
bpe_config=conf/bpe.yaml
speed_perturb=          # e.g. "0.9 1.1": train on the cuts plus speed-perturbed copies (3x the data per epoch;
                        # for long or GPU runs: within the CPU configs' 30-minute budgets it costs dev WER, docs/tuning.md)
models="lstm convrnnt conformer"  # encoder recipes conf/train_<model>.yaml, trained one after another
model=                  # one model only: the same as --models NAME
train_config=           # a single model's training config (default: conf/train_<model>.yaml)
train_opts=             # KEY=VALUE overrides (asrtools train --set) applied to every model, space-separated
exp=exp                 # where experiments go: $exp/<model>
device=cpu              # cpu | cuda
chunk_frames=32         # streaming decoding chunk (10 ms input frames)
beam=4                  # modified beam search (stage 5 decodes test greedy, with it, and streaming)
seeds=42                # training seeds per model, e.g. "42 7": RESULTS.md then gives mean and SD per model
rtf_utts=50             # test utterances decoded per model for the streaming RTF (stage 7)
results_md=RESULTS.md   # the comparison page of stage 7
report_config=conf/report.yaml  # its tables and comparisons (asrtools report results)
po_options="stage stop_stage nj corpus_preset data bpe_config speed_perturb models model train_config train_opts exp device chunk_frames beam seeds rtf_utts results_md report_config"
help_message="Usage: $0 [options]
  stages: 0 synth, 1 manifests, 2 features, 3 bpe, 4 train, 5 decode, 6 score, 7 compare models, 8 deploy (ONNX)"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh
. ../../../scripts/corpus_stages.sh

log() {  # ASRTOOLS_STAGE: where the resume command of a failed SLURM job starts (scripts/slurm/lib.sh)
  echo "$(date '+%H:%M:%S') [run.sh] $*"
  if [[ $* =~ ^stage\ ([0-9]+): ]]; then export ASRTOOLS_STAGE=${BASH_REMATCH[1]}; fi
}

models=${model:-$models}
read -r -a model_list <<< "$models"
read -r -a seed_list <<< "$seeds"
if [ ${#seed_list[@]} -eq 0 ]; then echo "$0: --seeds is empty" >&2; exit 1; fi
if [ ${#model_list[@]} -eq 0 ]; then echo "$0: --models is empty" >&2; exit 1; fi
if [ -n "$train_config" ] && [ ${#model_list[@]} -ne 1 ]; then
  echo "$0: --train-config needs a single model (--models NAME), got: $models" >&2; exit 1
fi

corpus_stages "$data"

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
  $cpu_cmd asrtools bpe train --supervisions "$data/manifests/supervisions_train.jsonl.gz" --config "$bpe_config" --out-dir "$data/lang_bpe"
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
      log "stage 6: $exp_dir: WER by cohort on test (accent, region, gender, region x gender, engine, channel)"
      $cpu_cmd asrtools score cohorts --recogs "$exp_dir/decode_test_greedy/recogs.jsonl" \
        --by accent --by region --by gender --by region,gender --by engine --by channel \
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

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  # Deployment: ONNX export in sherpa-onnx's `lstm` state layout (every encoder that exports),
  # test decoded on the raw audio by sherpa-onnx's own OnlineRecognizer (fp32, int8) and by the
  # toolkit's onnxruntime decoder, compared with the PyTorch streaming decode of stage 5.
  for m in "${model_list[@]}"; do
    run=$exp/$m
    log "stage 8: $run: export to ONNX ($chunk_frames-frame chunks, int8 copies)"
    $cpu_cmd asrtools export onnx --checkpoint "$run/averaged.pt" --bpe-model "$data/lang_bpe/bpe.model" \
      --fbank-config conf/fbank.yaml --chunk-frames "$chunk_frames" --out-dir "$run/onnx"
    for backend in sherpa-onnx:fp32 sherpa-onnx:int8 onnx:fp32; do
      name=${backend%%:*}_${backend#*:}
      log "stage 8: $run: decode test with ${backend%%:*} (${backend#*:})"
      $cpu_cmd asrtools decode --backend "${backend%%:*}" --precision "${backend#*:}" --model-dir "$run/onnx" \
        --cuts "$data/fbank/cuts_test.jsonl.gz" --bpe-model "$data/lang_bpe/bpe.model" --method streaming_greedy \
        --out-dir "$run/decode_test_$name" -j "$nj"
      $cpu_cmd asrtools score wer --ref "$run/decode_test_$name/recogs.jsonl" --out-dir "$run/decode_test_$name/wer"
    done
    log "stage 8: $run: deployed vs PyTorch streaming (identical hypotheses, WER difference)"
    $cpu_cmd asrtools export verify --reference "$run/decode_test_streaming" \
      --candidate sherpa_onnx_fp32="$run/decode_test_sherpa-onnx_fp32" \
      --candidate sherpa_onnx_int8="$run/decode_test_sherpa-onnx_int8" \
      --candidate onnxruntime_fp32="$run/decode_test_onnx_fp32" --out-dir "$run/deploy_verify"
    log "results: $run/deploy_verify/verify.md"
  done
fi
log "done"
