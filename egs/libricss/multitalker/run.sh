#!/usr/bin/env bash
# Streaming multi-talker ASR evaluated on LibriCSS (re-recorded LibriSpeech meetings), with the
# systems of egs/synth/multitalker trained elsewhere (README.md: on LibriSpeech conversations).
# LibriCSS is evaluation data: this recipe prepares, featurises, decodes and scores; it trains
# nothing. Every stage is one `asrtools` command, resumable and skipped when up to date.
#
#   egs/libricss/multitalker/run.sh --corpus-dir /data/LibriCSS \
#       --systems "baseline=../../synth/multitalker/exp/baseline sts=../../synth/multitalker/exp/sts" \
#       --bpe-model ../../synth/multitalker/data/src/lang_bpe/bpe.model
#   egs/libricss/multitalker/run.sh --corpus-dir /data/LibriCSS --sessions dev --type ihm-mix ...
#
# Stages: 0 manifests (asrtools data prepare libricss: lhotse's prepare_libricss) | 1 Fbank
#         features, one conversation cut per session | 2 streaming decode of every session with
#         each system | 3 score (merged WER, cpWER, ORC-WER, overlap-aware WER, segmentation,
#         turn counting, latency; by target overlap ratio) | 4 RESULTS.md
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                      # feature jobs
corpus_dir=               # the directory holding for_release/ (or for_release/ itself)
parts=                    # conditions (default all: 0L 0S OV10 OV20 OV30 OV40)
type=sdm                  # sdm: channel 0 of the room recording | ihm-mix: the clean played-back mixture
sessions=all              # all | eval (sessions 1-9) | dev (session 0); dev gives split dev, else test
data=data
exp=exp                   # the results page's stage directory (decodes go under each system's EXP_DIR)
systems="sts=../../synth/multitalker/exp/sts"   # NAME=EXP_DIR of `asrtools train` (task sts), space-separated
bpe_model=../../synth/multitalker/data/src/lang_bpe/bpe.model   # the BPE model the systems were trained with
checkpoint=averaged.pt
device=cpu
chunk_frames=32           # streaming decoding chunk (10 ms input frames)
n_boot=1000               # bootstrap resamples of the comparisons (sessions are the units)
results_md=RESULTS.md
po_options="stage stop_stage nj corpus_dir parts type sessions data exp systems bpe_model checkpoint device chunk_frames n_boot results_md"
help_message="Usage: $0 --corpus-dir DIR [options]
  stages: 0 prepare, 1 features, 2 decode, 3 score, 4 results"
. ../../../scripts/parse_options.sh
. ./path.sh
. ./cmd.sh

. ../../../scripts/lib/log.sh
split=test; [ "$sessions" != dev ] || split=dev
decode_name=decode_libricss_${type}_${sessions}_streaming
read -r -a system_list <<< "$systems"
if [ ${#system_list[@]} -eq 0 ]; then echo "$0: --systems is empty" >&2; exit 1; fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -z "$corpus_dir" ]; then echo "$0: --corpus-dir is required (the directory holding for_release/)" >&2; exit 1; fi
  log "stage 0: manifests of $corpus_dir ($type, $sessions sessions)"
  part_args=(); [ -z "$parts" ] || part_args=(--parts "$parts")
  $cpu_cmd asrtools data prepare libricss --corpus-dir "$corpus_dir" "${part_args[@]}" \
    --option "type=$type" --option "sessions=$sessions" --out-dir "$data/manifests"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: Fbank features (one conversation cut per session)"
  $cpu_cmd asrtools data features --manifest-dir "$data/manifests" --config conf/fbank.yaml \
    --out-dir "$data/fbank" -j "$nj"
fi

for spec in "${system_list[@]}"; do
  name=${spec%%=*}; exp_dir=${spec#*=}
  if [ "$name" = "$spec" ] || [ -z "$name" ] || [ -z "$exp_dir" ]; then
    echo "$0: --systems: expected NAME=EXP_DIR, got '$spec'" >&2; exit 1
  fi
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    log "stage 2: $name: streaming decode of the $split sessions ($chunk_frames-frame chunks) -> $exp_dir/$decode_name"
    run_decode=$decode_cmd
    [ "$device" != cpu ] || run_decode=$cpu_cmd
    $run_decode asrtools decode --exp-dir "$exp_dir" --checkpoint "$checkpoint" --device "$device" \
      --cuts "$data/fbank/cuts_$split.jsonl.gz" --bpe-model "$bpe_model" --method streaming_greedy \
      --chunk-frames "$chunk_frames" --max-duration 0 --out-dir "$exp_dir/$decode_name"
  fi
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    log "stage 3: $name: score"
    $cpu_cmd asrtools score multitalker --turns "$exp_dir/$decode_name" --out-dir "$exp_dir/$decode_name/score"
  fi
done

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: results page -> $results_md"
  args=(); names=()
  for spec in "${system_list[@]}"; do args+=(--system "$spec"); names+=("${spec%%=*}"); done
  for ((i = 1; i < ${#names[@]}; i++)); do args+=(--compare "${names[0]},${names[$i]}"); done
  $cpu_cmd asrtools score multitalker-results "${args[@]}" --decode "$decode_name" --bootstrap "$n_boot" \
    --note "LibriCSS $type, $sessions sessions (split $split); 0L and 0S are both reported as overlap 0.00" \
    --note "systems trained elsewhere; decoded with $checkpoint, streaming greedy, $chunk_frames-frame chunks" \
    --title "egs/libricss/multitalker: streaming two-channel multi-talker ASR on LibriCSS" \
    --out "$results_md" --out-dir "$exp/results_${type}_${sessions}"
fi
log "done"
