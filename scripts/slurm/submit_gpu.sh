#!/usr/bin/env bash
# SLURM job runner for GPU training (a recipe's gpu_cmd): like scripts/slurm/submit.sh, but
# the job asks for ASRTOOLS_SLURM_GPUS GPUs on each of ASRTOOLS_SLURM_NODES nodes (defaults
# 1 and 1), and with more than one GPU in total it runs the command under torchrun (DDP):
#   srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=$ASRTOOLS_SLURM_GPUS \
#        --rdzv_backend=c10d --rdzv_endpoint=<first node>:<port> --rdzv_id=$SLURM_JOB_ID \
#        --no-python COMMAND [ARGS...]
# (one srun task per node), so COMMAND must be an executable such as `asrtools`.
#
#   ASRTOOLS_SLURM_PARTITION=gpu ASRTOOLS_SLURM_GPUS=4 ASRTOOLS_SLURM_NODES=2 \
#     scripts/slurm/submit_gpu.sh asrtools train --config conf/train_lstm.yaml --device cuda ...
#
# Settings (ASRTOOLS_SLURM_*, and ASRTOOLS_SLURM_GPU_* for GPU jobs only, e.g.
# ASRTOOLS_SLURM_GPU_PARTITION=gpu): scripts/slurm/lib.sh and docs/CLUSTER.md.
set -euo pipefail
# shellcheck source=scripts/slurm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_main GPU "$@"
