#!/usr/bin/env bash
# Local multi-GPU job runner (a recipe's gpu_cmd on one machine, no SLURM): runs its
# arguments as one command under torchrun, one process per GPU (DDP), unchanged (no shell
# re-parsing), and returns its exit status.
#
#   scripts/run_torchrun.sh asrtools train --config conf/train_lstm.yaml --device cuda ...
#   ASRTOOLS_NPROC=2 scripts/run_torchrun.sh asrtools train ...   # two processes
#
# ASRTOOLS_NPROC: processes (default: the GPUs in CUDA_VISIBLE_DEVICES when it is set, else
# the GPUs `nvidia-smi -L` lists, else 1). COMMAND must be an executable (torchrun --no-python).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: run_torchrun.sh COMMAND [ARGS...]" >&2; exit 2; }

# visible_gpus: the number of GPUs this process may use (0 when none).
visible_gpus() {
  if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    local -a ids
    IFS=, read -r -a ids <<<"$CUDA_VISIBLE_DEVICES"
    echo "${#ids[@]}"
  else
    { nvidia-smi -L 2>/dev/null || true; } | grep -c '^GPU ' || true
  fi
}

nproc=${ASRTOOLS_NPROC:-$(visible_gpus)}
[ "$nproc" != 0 ] || nproc=1
[[ $nproc =~ ^[1-9][0-9]*$ ]] || { echo "run_torchrun.sh: error: ASRTOOLS_NPROC must be a positive integer, got '$nproc'" >&2; exit 1; }
exec torchrun --standalone --nproc_per_node="$nproc" --no-python "$@"
