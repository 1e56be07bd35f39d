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

. ../../../scripts/lib/log.sh

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

. ../../../scripts/lib/transducer_stages.sh
transducer_stages "$data" "$train_cuts" accent region gender region,gender engine channel
compare_stage "$data"

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
