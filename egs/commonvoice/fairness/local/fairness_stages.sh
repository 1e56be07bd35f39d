# Stages 0-10 of the real-corpus fairness recipes (egs/commonvoice/fairness, egs/vctk/fairness):
# sourced by their run.sh after parse_options.sh, path.sh and cmd.sh, with the recipe's
# variables set (see run.sh); the corpus-specific part is only `asrtools data prepare $corpus`
# and the defaults. Every stage is one `asrtools` command, resumable and skipped when up to date.
#
#   0 data prepare (lhotse's own parser) -> $data/manifests (+ speakers.csv)
#   1 Fbank features -> $data/fbank
#   2 BPE on the train split (only when the baseline is trained here)
#   3 the baseline: --asr-exp/--asr-lang when given, else `asrtools train` on the train split
#   4 greedy decoding of dev and test | 5 WER and WER by cohort (--cohort-fields)
#   6 speaker embeddings of the dev + test speakers (--encoder)
#   7 cohort discovery (--methods), K-fold cross-fitted on test and dev-discover / test-measure
#   8 Whisper tiny.en audit (--whisper true) and the same discoveries
#   9 mitigations (local/mitigations.sh) on the cohorts of --finetune-method and the automatic ones
#  10 RESULTS.md (asrtools report fairness)

. ../../../scripts/lib/log.sh

fairness_stages() {
  local corpus=$1
  read -r -a method_list <<< "$methods"
  read -r -a field_list <<< "$cohort_fields"
  case $encoder in
    resemblyzer) embed_dir=$exp/embed_resemblyzer ;;
    sv:*|file:*) embed_dir=$exp/embed_${encoder%%:*} ;;
    *) echo "$0: --encoder must be resemblyzer, sv:<checkpoint> or file:<path>, got '$encoder'" >&2; exit 1 ;;
  esac
  # The baseline: a given model (--asr-exp + --asr-lang), or the one trained here in stages 2-3.
  local train_here=false
  if [ -z "$asr_exp" ]; then train_here=true; asr_exp=$exp/lstm; asr_lang=$data/lang_bpe; fi
  if [ -z "$asr_lang" ]; then echo "$0: --asr-exp needs --asr-lang (the directory of its bpe.model)" >&2; exit 1; fi
  system=${system:-$(basename "$asr_exp")}
  local speakers=$data/manifests/speakers.csv
  if [ "$mitigate" = true ] && [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
    case " $methods " in *" auto "*) ;; *) echo "$0: the mitigations need --methods to include auto" >&2; exit 1 ;; esac
    case " $methods " in *" $finetune_method "*) ;;
      *) echo "$0: --finetune-method $finetune_method is not among --methods ($methods)" >&2; exit 1 ;; esac
  fi

  if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    if [ -z "$corpus_dir" ]; then echo "$0: stage 0 needs --corpus-dir (the $corpus corpus on disk)" >&2; exit 1; fi
    log "stage 0: asrtools data prepare $corpus ($corpus_dir, parts: $parts)"
    local opts=()
    for kv in $prepare_opts; do opts+=(--option "$kv"); done
    $cpu_cmd asrtools data prepare "$corpus" --corpus-dir "$corpus_dir" --parts "$parts" --resample 16000 \
      "${opts[@]}" --out-dir "$data/manifests" -j "$nj"
  fi
  if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    log "stage 1: Fbank features"
    $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config "$fbank_config" \
      --out-dir "$data/fbank" -j "$nj"
  fi
  if [ "$train_here" = true ] && [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    log "stage 2: BPE ($bpe_config) on the train split"
    $cpu_cmd asrtools bpe train --supervisions "$data/manifests/supervisions_train.jsonl.gz" \
      --config "$bpe_config" --out-dir "$data/lang_bpe"
  fi
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    if [ "$train_here" = true ]; then
      log "stage 3: train the baseline ($train_config) on the train split -> $asr_exp"
      local sets=()
      for kv in $train_opts; do sets+=(--set "$kv"); done
      $gpu_cmd asrtools train --config "$train_config" --device "$device" "${sets[@]}" \
        --cuts-train "$data/fbank/cuts_train.jsonl.gz" --cuts-dev "$data/fbank/cuts_dev.jsonl.gz" \
        --bpe-model "$data/lang_bpe/bpe.model" --exp-dir "$asr_exp"
    elif [ -f "$asr_exp/averaged.pt" ] && [ -f "$asr_lang/bpe.model" ]; then
      log "stage 3: the given baseline $asr_exp/averaged.pt (BPE $asr_lang/bpe.model)"
    else
      echo "$0: no $asr_exp/averaged.pt or $asr_lang/bpe.model" >&2; exit 1
    fi
  fi
  if [ "$stop_stage" -lt 4 ]; then log "done"; return 0; fi

  decode_dir() { echo "$exp/$system/decode_$1_greedy"; }
  if [ "$stage" -le 4 ]; then
    local run_decode=$decode_cmd split
    [ "$device" != cpu ] || run_decode=$cpu_cmd
    for split in dev test; do
      log "stage 4: decode $split with $asr_exp (greedy)"
      $run_decode asrtools decode --exp-dir "$asr_exp" --checkpoint averaged.pt --device "$device" \
        --cuts "$data/fbank/cuts_$split.jsonl.gz" --bpe-model "$asr_lang/bpe.model" --method greedy \
        --out-dir "$(decode_dir "$split")" -j "$nj"
    done
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    local by=() field
    for field in "${field_list[@]}"; do by+=(--by "$field"); done
    for split in dev test; do
      log "stage 5: WER of $split, and by cohort (${field_list[*]})"
      $cpu_cmd asrtools score wer --ref "$(decode_dir "$split")/recogs.jsonl" --out-dir "$(decode_dir "$split")/wer"
    done
    $cpu_cmd asrtools score cohorts --recogs "$(decode_dir test)/recogs.jsonl" "${by[@]}" \
      --out-dir "$(decode_dir test)/cohorts"
  fi
  if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    if [ "$encoder" = resemblyzer ]; then "$ASRTOOLS_ROOT/scripts/setup_sv_ref_env.sh"; fi
    log "stage 6: speaker embeddings of the dev + test speakers ($encoder, $utts_per_speaker utterances each)"
    $cpu_cmd asrtools cohorts embed --cuts "$data/fbank/cuts_dev.jsonl.gz" --cuts "$data/fbank/cuts_test.jsonl.gz" \
      --encoder "$encoder" --utts-per-speaker "$utts_per_speaker" --out-dir "$embed_dir" -j "$nj"
  fi

  # discover NAME TEST_RECOGS DEV_RECOGS: each --methods, cross-fitted on test and dev-discover / test-measure
  discover() {
    local name=$1 test_recogs=$2 dev_recogs=$3 method extra
    for method in "${method_list[@]}"; do
      extra=()
      case $method in
        auto) extra=(--embeddings "$embed_dir/embeddings.npz") ;;
        geodemographic) [ -n "$zipcodes" ] || { echo "$0: --methods geodemographic needs --zipcodes (your census table)" >&2; exit 1; }
                        extra=(--zipcodes "$zipcodes") ;;
      esac
      log "$name: cohorts $method (crossfit on test; dev-discover / test-measure)"
      $cpu_cmd asrtools cohorts "$method" --recogs "$test_recogs" --speakers "$speakers" "${extra[@]}" \
        --config "$cohorts_config" --out-dir "$exp/$name/cohorts_$method"
      $cpu_cmd asrtools cohorts "$method" --recogs "$test_recogs" --discover-recogs "$dev_recogs" \
        --speakers "$speakers" "${extra[@]}" --config "$cohorts_config" --out-dir "$exp/$name/cohorts_${method}_devtest"
    done
  }
  if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
    discover "$system" "$(decode_dir test)" "$(decode_dir dev)"
  fi
  local whisper_dir=$exp/whisper_tiny_en
  if [ "$whisper" = true ] && [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
    "$ASRTOOLS_ROOT/scripts/setup_audit_env.sh"
    for split in dev test; do
      log "stage 8: Whisper tiny.en transcribes $split (greedy, $whisper_per_speaker utterances per speaker)"
      $cpu_cmd asrtools audit whisper --cuts "$data/fbank/cuts_$split.jsonl.gz" --beam-size 1 --threads "$nj" \
        --per-speaker "$whisper_per_speaker" --out-dir "$whisper_dir/decode_$split"
    done
    discover whisper_tiny_en "$whisper_dir/decode_test" "$whisper_dir/decode_dev"
  fi

  local mitigate_dir=$exp/$system/mitigate
  if [ "$mitigate" = true ] && [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
    # local/mitigations.sh reads the baseline's training data and BPE model from RECIPE/data/{fbank,lang_bpe}
    local asr_root
    asr_root=$(dirname "$(dirname "$asr_lang")")
    if [ ! -f "$asr_root/data/fbank/cuts_train.jsonl.gz" ] || [ ! -f "$asr_root/data/lang_bpe/bpe.model" ]; then
      echo "$0: stage 9 needs the baseline's recipe layout $asr_root/data/{fbank/cuts_train.jsonl.gz,lang_bpe/bpe.model}" \
           "(train the baseline here with --data data, or give --asr-lang RECIPE/data/lang_bpe)" >&2; exit 1
    fi
    local adapt_cuts=$data/fbank/cuts_adapt.jsonl.gz
    if [ ! -f "$adapt_cuts" ]; then
      log "stage 9: fine-tuning pool: the train + dev speakers' cuts -> $adapt_cuts"
      lhotse combine "$data/fbank/cuts_train.jsonl.gz" "$data/fbank/cuts_dev.jsonl.gz" "$adapt_cuts.tmp.jsonl.gz"
      mv "$adapt_cuts.tmp.jsonl.gz" "$adapt_cuts"
    fi
    log "stage 9: speaker embeddings of the train speakers ($encoder), for their automatic cohorts"
    $cpu_cmd asrtools cohorts embed --cuts "$data/fbank/cuts_train.jsonl.gz" --encoder "$encoder" \
      --utts-per-speaker "$utts_per_speaker" --out-dir "${embed_dir}_train" -j "$nj"
    mkdir -p "$mitigate_dir"
    local method embeddings
    for method in $(printf '%s\n' "$finetune_method" auto | sort -u); do
      embeddings=()
      [ "$method" != auto ] || embeddings=(--embeddings "$embed_dir/embeddings.npz" --embeddings "${embed_dir}_train/embeddings.npz")
      log "stage 9: the dev-discovered $method cohorts of the fine-tuning pool's speakers"
      $cpu_cmd asrtools cohorts assign --discovery "$exp/$system/cohorts_${method}_devtest/discovery.json" \
        --speakers "$speakers" --split train --speakers "$speakers" --split dev \
        "${embeddings[@]}" --out "$mitigate_dir/${method}_pool_assignments.json"
    done
    # mitigations.sh's "geo" family (EWC, plain, L2, pooled fine-tuning on the worst cohort) runs on
    # the --finetune-method cohorts; its "auto" family (oversampling, cohort input) on the automatic ones
    local/mitigations.sh --asr "$asr_root" --baseline-exp "$asr_exp" --train-cuts "$adapt_cuts" \
      --test-cuts "$data/fbank/cuts_test.jsonl.gz" --baseline-decode "$(decode_dir test)" --exp "$mitigate_dir" \
      --conf "$mitigate_config" \
      --geo-train "$mitigate_dir/${finetune_method}_pool_assignments.json" \
      --geo-eval "$exp/$system/cohorts_${finetune_method}_devtest/assignments.json" \
      --auto-train "$mitigate_dir/auto_pool_assignments.json" --auto-eval "$exp/$system/cohorts_auto_devtest/assignments.json" \
      --ewc-lambdas "$ewc_lambdas" --nj "$nj" --device "$device"
  fi

  if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
    local names=("$system") runs=() name
    [ "$whisper" != true ] || names+=(whisper_tiny_en)
    for name in "${names[@]}"; do
      for method in "${method_list[@]}"; do
        runs+=(--run "$method:$name=$exp/$name/cohorts_$method" --run "$method:$name=$exp/$name/cohorts_${method}_devtest")
      done
    done
    if [ "$mitigate" = true ]; then
      # every mitigation measured by the --finetune-method cohorts (mitigations.sh's results_geo) and by
      # the automatic ones (results_auto); the same table when --finetune-method is auto
      [ "$finetune_method" = auto ] || runs+=(--mitigations "$finetune_method=$mitigate_dir/results_geo")
      runs+=(--mitigations "auto=$mitigate_dir/results_auto")
    fi
    log "stage 10: $results_md from the discovery and mitigation artifacts"
    $cpu_cmd asrtools report fairness "${runs[@]}" --paper-system "$system" --title "$title" \
      --out "$results_md" --out-dir "$exp/results"
  fi
  log "done"
}
