# Stages 4-7 of the transducer recipes (egs/synth/asr, egs/librispeech/asr): sourced by run.sh
# after parse_options.sh, path.sh, cmd.sh and scripts/lib/log.sh, it defines
#
#   run_dir MODEL SEED                     the run's directory: $exp/MODEL for the first seed of
#                                          --seeds, $exp/MODEL_s<seed> for every other one
#   transducer_stages DATA TRAIN_CUTS BY...  for every model of --models and seed of --seeds:
#       4 train (conf/train_<model>.yaml or --train-config, --train-opts as --set overrides)
#       5 decode dev greedy, test greedy / modified beam (--beam) / streaming (--chunk-frames)
#       6 WER of each decode; WER by cohort on test greedy, one `--by` per BY argument
#   compare_stage DATA                     7 model info of every run, one-thread streaming RTF of
#                                          the first seed's runs, the page $results_md
#
# Uses the recipe's $stage, $stop_stage, $model_list, $seed_list, $train_config, $train_opts,
# $exp, $device, $beam, $chunk_frames, $nj, $rtf_utts, $report_config, $results_md and the
# job runners $gpu_cmd, $decode_cmd, $cpu_cmd.

run_dir() { if [ "$2" = "${seed_list[0]}" ]; then echo "$exp/$1"; else echo "$exp/$1_s$2"; fi; }

transducer_stages() {
  local data=$1 train_cuts=$2 m seed config exp_dir kv
  shift 2
  local set_args=()
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
        _decode_stage "$data" "$exp_dir"
      fi
      if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
        _score_stage "$exp_dir" "$@"
      fi
    done
  done
}

_decode_stage() {
  local data=$1 exp_dir=$2 decode split method extra run_decode=$decode_cmd
  [ "$device" != cpu ] || run_decode=$cpu_cmd  # a one-GPU job under SLURM; no GPU is asked for a CPU decode
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
}

_score_stage() {  # EXP_DIR BY...
  local exp_dir=$1 decode_dir by by_args=()
  shift
  for by in "$@"; do by_args+=(--by "$by"); done
  for decode_dir in "$exp_dir"/decode_{dev_greedy,test_greedy,test_modified_beam,test_streaming}; do
    log "stage 6: WER of $decode_dir"
    $cpu_cmd asrtools score wer --ref "$decode_dir/recogs.jsonl" --out-dir "$decode_dir/wer"
  done
  log "stage 6: $exp_dir: WER by cohort on test (by $*)"
  $cpu_cmd asrtools score cohorts --recogs "$exp_dir/decode_test_greedy/recogs.jsonl" "${by_args[@]}" \
    --out-dir "$exp_dir/decode_test_greedy/cohorts"
  log "results: $exp_dir/decode_test_greedy/wer/wer.json, $exp_dir/decode_test_greedy/cohorts/"
}

compare_stage() {
  local data=$1 m seed run
  [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] || return 0
  local checkpoints=() systems=() runs
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
}
