# Stages 0-2 of the synthetic-corpus recipes (egs/synth/{asr,sv,fairness}/run.sh): sourced by
# run.sh after parse_options.sh, path.sh and cmd.sh, it defines
#
#   corpus_stages DATA [SYNTH_CONFIG] [FBANK_CONFIG]
#
# which, inside --stage/--stop-stage, runs: 0 synthesise the corpus (--corpus-preset, SYNTH_CONFIG,
# default conf/synth.yaml) into DATA/synth | 1 Lhotse manifests + validation -> DATA/manifests |
# 2 Fbank features (FBANK_CONFIG, default conf/fbank.yaml) -> DATA/fbank. Uses the recipe's
# $stage, $stop_stage, $corpus_preset, $nj, $cpu_cmd and its log function.
corpus_stages() {
  local data=$1 synth_config=${2:-conf/synth.yaml} fbank_config=${3:-conf/fbank.yaml}
  if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    log "stage 0: synthesise the corpus ($corpus_preset)"
    $cpu_cmd asrtools data synth --preset "$corpus_preset" --config "$synth_config" --out-dir "$data/synth" -j "$nj"
  fi
  if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    log "stage 1: Lhotse manifests + validation"
    $cpu_cmd asrtools data manifests --corpus-dir "$data/synth" --out-dir "$data/manifests"
  fi
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    log "stage 2: Fbank features"
    $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config "$fbank_config" \
      --out-dir "$data/fbank" -j "$nj"
  fi
}
