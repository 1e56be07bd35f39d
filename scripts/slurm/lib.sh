# shellcheck shell=bash
# SLURM job submission shared by scripts/slurm/submit.sh (cpu_cmd), scripts/slurm/submit_gpu.sh
# (gpu_cmd) and scripts/slurm/submit_decode.sh (decode_cmd); sourced, not run. The entry
# scripts call `slurm_main ROLE COMMAND [ARGS...]`; docs/CLUSTER.md is the user's guide.
#
# The command is written into a bash batch script word by word with `printf %q`, so every
# argument reaches the job exactly as given (no shell re-parsing), then submitted with
# `sbatch --wait`: the caller blocks until the job ends and gets its exit status, so recipe
# stages stay sequential and resumable. sbatch's default --export=ALL is passed explicitly:
# the job sees the submitting shell's environment (PATH with .venv/bin from path.sh, ...).
#
# Settings (environment variables; ROLE is CPU for submit.sh, GPU for submit_gpu.sh, DECODE
# for submit_decode.sh, and ASRTOOLS_SLURM_<ROLE>_<NAME> overrides ASRTOOLS_SLURM_<NAME> for
# that role only; a DECODE job falls back to the GPU_ settings before the common ones):
#   ASRTOOLS_SLURM_PARTITION  --partition        ASRTOOLS_SLURM_ACCOUNT  --account
#   ASRTOOLS_SLURM_TIME       --time             ASRTOOLS_SLURM_MEM      --mem
#   ASRTOOLS_SLURM_CPUS       --cpus-per-task
#   ASRTOOLS_SLURM_GPUS       GPUs per node (GPU role only; default 1; a DECODE job has 1)
#   ASRTOOLS_SLURM_NODES      nodes (GPU role only; default 1; CPU and DECODE jobs use one node)
#   ASRTOOLS_SLURM_EXTRA      more sbatch arguments, split on whitespace (no quoting is
#                             honoured, so no argument may contain a space), added last
#   ASRTOOLS_SLURM_LOG_DIR    job logs and batch scripts (default slurm_logs, relative to the
#                             submitting directory): <job name>-<job id>.out and .sh
#   ASRTOOLS_TORCHRUN_PORT    rendezvous port of multi-GPU jobs (default 15000 + job id % 10000)
# A GPU job with more than one GPU in total runs its command as
#   srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=GPUS --rdzv_backend=c10d
#        --rdzv_endpoint=<first node>:PORT --rdzv_id=$SLURM_JOB_ID --no-python COMMAND...
# with one srun task (one torchrun agent) per node.

slurm_prog=$(basename "$0")

# slurm_die MESSAGE...: one-line error naming the runner, exit status 1.
slurm_die() {
  echo "$slurm_prog: error: $*" >&2
  exit 1
}

# slurm_setting ROLE NAME: ASRTOOLS_SLURM_<ROLE>_<NAME> if set (for ROLE DECODE, then
# ASRTOOLS_SLURM_GPU_<NAME>), else ASRTOOLS_SLURM_<NAME>, else "".
slurm_setting() {
  local role var
  for role in "$1" "${1/#DECODE/GPU}"; do
    var="ASRTOOLS_SLURM_${role}_$2"
    if [ -n "${!var+set}" ]; then
      printf '%s' "${!var}"
      return
    fi
  done
  var="ASRTOOLS_SLURM_$2"
  printf '%s' "${!var:-}"
}

# slurm_count ROLE NAME DEFAULT: a setting that must be a positive integer.
slurm_count() {
  local value
  value=$(slurm_setting "$1" "$2")
  value=${value:-$3}
  [[ $value =~ ^[1-9][0-9]*$ ]] || slurm_die "ASRTOOLS_SLURM_$2 must be a positive integer, got '$value'"
  printf '%s' "$value"
}

# slurm_job_name COMMAND [ARGS...]: the command's name, plus up to two subcommand words for
# asrtools ("asrtools train ..." -> asrtools-train, "asrtools data synth ..." -> asrtools-data-synth).
slurm_job_name() {
  local name word count=0
  name=$(basename -- "$1")
  if [ "$name" = asrtools ]; then
    for word in "${@:2}"; do
      if [[ ! $word =~ ^[a-z][a-z0-9_-]*$ ]] || [ "$count" -ge 2 ]; then break; fi
      name+="-$word"
      count=$((count + 1))
    done
  fi
  printf '%s' "${name//[^A-Za-z0-9._-]/_}"
}

# slurm_write_batch_script FILE NPROC_PER_NODE SBATCH_LINE COMMAND [ARGS...]: a bash batch
# script that cds to this directory and runs COMMAND, under srun + torchrun when
# NPROC_PER_NODE > 0. SBATCH_LINE (the submitting command) goes into a comment.
slurm_write_batch_script() {
  local file=$1 nproc_per_node=$2 sbatch_line=$3
  shift 3
  {
    echo '#!/usr/bin/env bash'
    echo "# Written by $slurm_prog on $(date '+%F %T'), submitted with:"
    echo "#   $sbatch_line"
    echo 'set -euo pipefail'
    printf 'cd -- %q\n' "$PWD"
    printf 'cmd=('
    printf ' %q' "$@"
    printf ' )\n'
    cat <<'BODY'
echo "# job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) on $(hostname), started $(date '+%F %T') in $PWD"
printf '# command:'; printf ' %q' "${cmd[@]}"; echo
BODY
    if [ "$nproc_per_node" -gt 0 ]; then
      printf 'nproc_per_node=%q\n' "$nproc_per_node"
      cat <<'BODY'
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
[ ${#nodes[@]} -gt 0 ] || { echo "batch job: no host in SLURM_JOB_NODELIST='$SLURM_JOB_NODELIST'" >&2; exit 1; }
port=${ASRTOOLS_TORCHRUN_PORT:-$((15000 + SLURM_JOB_ID % 10000))}
# One torchrun agent per node; since Slurm 22.05 srun does not inherit --cpus-per-task.
launch=(srun --nodes="$SLURM_NNODES" --ntasks="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1)
[ -z "${SLURM_CPUS_PER_TASK:-}" ] || launch+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
launch+=(torchrun --nnodes="$SLURM_NNODES" --nproc_per_node="$nproc_per_node" --rdzv_backend=c10d
         --rdzv_endpoint="${nodes[0]}:$port" --rdzv_id="$SLURM_JOB_ID" --no-python)
echo "# launcher: ${launch[*]}"
set +e
"${launch[@]}" "${cmd[@]}"
BODY
    else
      cat <<'BODY'
set +e
"${cmd[@]}"
BODY
    fi
    cat <<'BODY'
status=$?
echo "# ended with status $status at $(date '+%F %T')"
exit "$status"
BODY
  } >"$file"
}

# slurm_report_failure STATUS JOB_NAME JOB_ID LOG: say which job failed and show its log's tail.
slurm_report_failure() {
  local status=$1 job_name=$2 job_id=$3 log=$4
  if [ -z "$job_id" ]; then
    echo "$slurm_prog: error: sbatch failed (status $status) for $job_name; nothing was submitted" >&2
    return
  fi
  echo "$slurm_prog: error: SLURM job $job_id ($job_name) failed with status $status; log: $log" >&2
  if [ -f "$log" ]; then
    echo "$slurm_prog: last lines of $log:" >&2
    tail -n 20 -- "$log" >&2
  fi
}

# slurm_main ROLE COMMAND [ARGS...]: submit COMMAND as a ROLE job (CPU: no GPU; GPU: nodes x
# GPUs, torchrun when more than one; DECODE: one GPU, one process), wait for it, return its
# exit status.
slurm_main() {
  local role=$1
  shift
  [ $# -gt 0 ] || { echo "usage: $slurm_prog COMMAND [ARGS...]   (settings: docs/CLUSTER.md)" >&2; exit 2; }
  command -v sbatch >/dev/null || slurm_die "sbatch not found on PATH: run on a SLURM submit host"

  local job_name log_dir
  job_name=$(slurm_job_name "$@")
  log_dir=$(slurm_setting "$role" LOG_DIR)
  mkdir -p -- "${log_dir:-slurm_logs}"
  log_dir=$(cd -- "${log_dir:-slurm_logs}" && pwd)

  local -a opts=(--wait --parsable --export=ALL --chdir="$PWD" --job-name="$job_name"
                 --output="$log_dir/%x-%j.out" --open-mode=append)
  local name option value
  for name in PARTITION:--partition ACCOUNT:--account TIME:--time MEM:--mem CPUS:--cpus-per-task; do
    option=${name#*:}
    value=$(slurm_setting "$role" "${name%%:*}")
    [ -z "$value" ] || opts+=("$option=$value")
  done

  local nproc_per_node=0 summary="1 node, no GPU"
  if [ "$role" = GPU ]; then
    local gpus nodes
    gpus=$(slurm_count "$role" GPUS 1)
    nodes=$(slurm_count "$role" NODES 1)
    opts+=(--nodes="$nodes" --ntasks-per-node=1 --gpus-per-node="$gpus")
    summary="$nodes node(s) x $gpus GPU(s)"
    if [ "$gpus" -gt 1 ] || [ "$nodes" -gt 1 ]; then
      nproc_per_node=$gpus
      summary+=", torchrun"
    fi
  elif [ "$role" = DECODE ]; then
    opts+=(--nodes=1 --ntasks=1 --gpus-per-node=1)
    summary="1 node x 1 GPU"
  else
    opts+=(--nodes=1 --ntasks=1)
  fi
  local -a extra
  read -r -d '' -a extra <<<"$(slurm_setting "$role" EXTRA)" || true  # status 1 at end of input
  [ ${#extra[@]} -eq 0 ] || opts+=("${extra[@]}")

  local script
  script=$(mktemp "$log_dir/$job_name.XXXXXX.sh")
  slurm_write_batch_script "$script" "$nproc_per_node" "$(printf '%q ' sbatch "${opts[@]}")THIS_SCRIPT" "$@"
  echo "$slurm_prog: sbatch $job_name ($summary), waiting; log: $log_dir/$job_name-<job id>.out" >&2

  local out status=0 job_id
  out=$(sbatch "${opts[@]}" "$script") || status=$?
  job_id=${out%%[;$'\n']*}
  if [ -n "$job_id" ]; then
    mv -f -- "$script" "$log_dir/$job_name-$job_id.sh"
  fi
  if [ "$status" -ne 0 ]; then
    slurm_report_failure "$status" "$job_name" "$job_id" "$log_dir/$job_name-$job_id.out"
    exit "$status"
  fi
  echo "$slurm_prog: SLURM job $job_id ($job_name) done" >&2
}
