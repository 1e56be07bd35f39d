#!/usr/bin/env bash
# SLURM job runner for CPU stages (a recipe's cpu_cmd): the same contract as
# scripts/run_local.sh, but the command runs as a one-node, one-task batch job.
#
#   scripts/slurm/submit.sh COMMAND [ARGS...]
#   ASRTOOLS_SLURM_PARTITION=cpu ASRTOOLS_SLURM_TIME=4:00:00 ASRTOOLS_SLURM_CPUS=8 \
#     scripts/slurm/submit.sh asrtools data features --manifest-dir data/manifests ...
#
# Each argument reaches the job unchanged; the job starts in this directory with this
# environment (sbatch --export=ALL); `sbatch --wait` makes this script wait for the job and
# exit with its status. The job's output goes to slurm_logs/<job name>-<job id>.out, e.g.
# slurm_logs/asrtools-data-features-1234.out. Settings (ASRTOOLS_SLURM_*, and
# ASRTOOLS_SLURM_CPU_* for CPU jobs only): scripts/slurm/lib.sh and docs/CLUSTER.md.
set -euo pipefail
# shellcheck source=scripts/slurm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_main CPU "$@"
