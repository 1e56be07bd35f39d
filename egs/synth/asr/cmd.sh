# Sourced by run.sh after path.sh (which sets ASRTOOLS_ROOT): how stage commands are launched.
# run.sh runs training as `$gpu_cmd asrtools train ...`, decoding (and speaker embedding) on a
# GPU (--device cuda) as `$decode_cmd asrtools decode|sv embed ...` and every other stage as
# `$cpu_cmd asrtools ...`; a runner
# takes the command as its arguments, waits for it and returns its exit status, so stages stay
# sequential and resumable however they are launched.
#
# ASRTOOLS_LAUNCHER picks the runners (docs/CLUSTER.md):
#   local     (default) every stage runs directly on this machine (scripts/run_local.sh)
#   torchrun  training runs under `torchrun --standalone`, one process per visible GPU
#             (ASRTOOLS_NPROC to choose; scripts/run_torchrun.sh); other stages as local
#   slurm     every stage is a SLURM batch job (sbatch --wait; scripts/slurm/submit.sh),
#             training on ASRTOOLS_SLURM_NODES x ASRTOOLS_SLURM_GPUS GPUs under
#             srun + torchrun (scripts/slurm/submit_gpu.sh), GPU decoding on one GPU
#             (scripts/slurm/submit_decode.sh); job logs in slurm_logs/
# Examples:
#   ASRTOOLS_LAUNCHER=torchrun ./run.sh --device cuda --stage 4 --stop-stage 4
#   ASRTOOLS_LAUNCHER=slurm ASRTOOLS_SLURM_PARTITION=gpu ASRTOOLS_SLURM_GPUS=4 ./run.sh --device cuda --stage 4
#   ASRTOOLS_LAUNCHER=slurm ASRTOOLS_SLURM_CPU_PARTITION=cpu ASRTOOLS_SLURM_GPU_PARTITION=gpu \
#     ASRTOOLS_SLURM_GPUS=8 ASRTOOLS_SLURM_NODES=2 ASRTOOLS_SLURM_TIME=24:00:00 ./run.sh --device cuda
: "${ASRTOOLS_ROOT:?cmd.sh: ASRTOOLS_ROOT is not set (source path.sh first)}"
case "${ASRTOOLS_LAUNCHER:-local}" in
  local)
    cpu_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh"
    gpu_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh"
    decode_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh" ;;
  torchrun)
    cpu_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh"
    gpu_cmd="$ASRTOOLS_ROOT/scripts/run_torchrun.sh"
    decode_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh" ;;
  slurm)
    cpu_cmd="$ASRTOOLS_ROOT/scripts/slurm/submit.sh"
    gpu_cmd="$ASRTOOLS_ROOT/scripts/slurm/submit_gpu.sh"
    decode_cmd="$ASRTOOLS_ROOT/scripts/slurm/submit_decode.sh" ;;
  *)
    echo "cmd.sh: error: unknown ASRTOOLS_LAUNCHER='$ASRTOOLS_LAUNCHER' (expected local, torchrun or slurm)" >&2
    return 1 ;;
esac
export cpu_cmd gpu_cmd decode_cmd
