#!/usr/bin/env bash
# SLURM job runner for GPU decoding (a recipe's decode_cmd): like scripts/slurm/submit.sh, but
# the one-task job asks for one GPU (--gpus-per-node=1). Decoding runs in one process, so
# ASRTOOLS_SLURM_GPUS and ASRTOOLS_SLURM_NODES do not apply.
#
#   ASRTOOLS_SLURM_GPU_PARTITION=gpu scripts/slurm/submit_decode.sh asrtools decode --device cuda ...
#
# Settings: ASRTOOLS_SLURM_DECODE_<NAME>, else ASRTOOLS_SLURM_GPU_<NAME>, else
# ASRTOOLS_SLURM_<NAME> (e.g. ASRTOOLS_SLURM_DECODE_TIME=1:00:00); scripts/slurm/lib.sh and
# docs/CLUSTER.md.
set -euo pipefail
# shellcheck source=scripts/slurm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_main DECODE "$@"
