# shellcheck shell=bash
# SLURM job submission shared by scripts/slurm/submit.sh (cpu_cmd), scripts/slurm/submit_gpu.sh
# (gpu_cmd) and scripts/slurm/submit_decode.sh (decode_cmd); sourced, not run. The entry
# scripts call `slurm_main ROLE COMMAND [ARGS...]`; docs/CLUSTER.md is the user's guide.
#
# For an `asrtools` stage command the runner first asks, here on the submit host,
# `asrtools --check ARGS...`: an up-to-date stage is not submitted at all; the answer also
# names the stage directory (job logs go to <its parent>/slurm_logs/), the command's --device
# (a CPU run asks for no GPU) and, for a sharded stage run with -j N, which of its N tasks
# still have work. Those tasks run as one job array (`asrtools --task $SLURM_ARRAY_TASK_ID
# ARGS...`), then the command itself runs as one job that merges them (and owns the stage's
# done-marker). Any other stage or command is one job.
#
# The command is written into a bash batch script word by word with `printf %q`, so every
# argument reaches the job exactly as given (no shell re-parsing), handed to
# `sbatch --wait` on its standard input (no temporary script file; a copy named after the job
# id is kept beside the job's log), and waited for: the runner returns the job's exit status,
# so recipe stages stay sequential and resumable. sbatch's default --export=ALL is passed
# explicitly: the job sees the submitting shell's environment (PATH with .venv/bin, ...).
#
# Cancellation: the runner cancels (scancel) the jobs it submitted when it is interrupted
# (INT, TERM, HUP) and when the process that started it (run.sh) disappears, even by
# SIGKILL. Should the runner itself be killed by SIGKILL, every job watches a heartbeat file
# that the runner rewrites every 2 s and cancels itself (its whole array) once the heartbeat
# has been still for ASRTOOLS_SLURM_ORPHAN_TIMEOUT seconds.
#
# Settings (environment variables; ROLE is CPU for submit.sh, GPU for submit_gpu.sh, DECODE
# for submit_decode.sh, and ASRTOOLS_SLURM_<ROLE>_<NAME> overrides ASRTOOLS_SLURM_<NAME> for
# that role only; a DECODE job falls back to the GPU_ settings before the common ones):
#   ASRTOOLS_SLURM_PARTITION  --partition        ASRTOOLS_SLURM_ACCOUNT  --account
#   ASRTOOLS_SLURM_TIME       --time             ASRTOOLS_SLURM_MEM      --mem
#   ASRTOOLS_SLURM_CPUS       --cpus-per-task (array tasks and merge jobs: 1 unless set)
#   ASRTOOLS_SLURM_GPUS       GPUs per node of a GPU-role job on --device cuda (default 1; 0: none)
#   ASRTOOLS_SLURM_NPROC      training processes per node (default: the GPUs per node, or 1
#                             without GPUs); torchrun runs them when nodes x NPROC > 1
#   ASRTOOLS_SLURM_NODES      nodes (GPU role only; default 1; other jobs use one node)
#   ASRTOOLS_SLURM_EXTRA      more sbatch arguments, split on whitespace (no quoting is
#                             honoured, so no argument may contain a space), added last
#   ASRTOOLS_SLURM_LOG_DIR    job logs and batch scripts (default: <stage dir parent>/slurm_logs
#                             for a stage command, else slurm_logs in the submitting directory)
#   ASRTOOLS_SLURM_ORPHAN_TIMEOUT  seconds without heartbeat before a job cancels itself
#                             (default 120; 0: never)
#   ASRTOOLS_TORCHRUN_PORT    rendezvous port of multi-process jobs (default 15000 + job id % 10000)
# A multi-process training job runs its command as
#   srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=NPROC --rdzv_backend=c10d
#        --rdzv_endpoint=<first node>:PORT --rdzv_id=$SLURM_JOB_ID --no-python COMMAND...
# with one srun task (one torchrun agent) per node.

slurm_prog=$(basename "$0")
slurm_parent=$PPID       # the process that started this runner (run.sh); watched while waiting
slurm_active=()          # ids of submitted jobs that have not ended
slurm_heartbeat=""       # the heartbeat file of this runner
slurm_beat=0
slurm_sbatch_pid=""
slurm_tmp=""

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

# slurm_count ROLE NAME DEFAULT MIN: a setting that must be an integer >= MIN (0 or 1).
slurm_count() {
  local value
  value=$(slurm_setting "$1" "$2")
  value=${value:-$3}
  if [ "$4" = 0 ]; then
    [[ $value =~ ^(0|[1-9][0-9]*)$ ]] || slurm_die "ASRTOOLS_SLURM_$2 must be a non-negative integer, got '$value'"
  else
    [[ $value =~ ^[1-9][0-9]*$ ]] || slurm_die "ASRTOOLS_SLURM_$2 must be a positive integer, got '$value'"
  fi
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

# slurm_shape ROLE DEVICE: what a ROLE job on DEVICE (cpu, cuda, or "" when unknown) runs, into
# shape_nodes, shape_gpus (per node) and shape_nproc (processes per node; their product with
# shape_nodes is the training world size).
slurm_shape() {
  shape_nodes=1 shape_gpus=0 shape_nproc=1
  case $1 in
    GPU)
      shape_gpus=$(slurm_count GPU GPUS 1 0)
      [ "$2" != cpu ] || shape_gpus=0
      shape_nodes=$(slurm_count GPU NODES 1 1)
      shape_nproc=$(slurm_count GPU NPROC "$((shape_gpus > 0 ? shape_gpus : 1))" 1) ;;
    DECODE)
      [ "$2" = cpu ] || shape_gpus=1 ;;
  esac
}

# slurm_check_stage COMMAND [ARGS...]: for an asrtools command, `asrtools --check` here (with
# ASRTOOLS_CHECK_WORLD_SIZE=$slurm_check_world: the training processes the job will have). Sets
# check_state (up-to-date | run | "" when COMMAND is no stage), check_out_dir, check_tasks,
# check_pending (array of tasks with work left) and check_device; exits on an error.
slurm_check_stage() {
  check_state="" check_out_dir="" check_tasks=1 check_device=""
  check_pending=()
  [ "$(basename -- "$1")" = asrtools ] || return 0
  local report status=0 key value
  report=$(ASRTOOLS_CHECK_WORLD_SIZE=${slurm_check_world:-1} "$1" --check "${@:2}") || status=$?
  case $status in
    0 | 3) ;;
    4) return 0 ;;  # not a stage command: submit it as it is
    *) exit "$status" ;;  # asrtools said why (one line)
  esac
  while IFS='=' read -r key value; do
    case $key in
      state) check_state=$value ;;
      out_dir) check_out_dir=$value ;;
      tasks) check_tasks=$value ;;
      pending) read -r -a check_pending <<<"$value" ;;
      device) check_device=$value ;;
    esac
  done <<<"$report"
}

# slurm_parent_alive: whether the process that started this runner is still its parent.
slurm_parent_alive() {
  local key value
  if [ -r /proc/$$/status ]; then
    while read -r key value; do
      [ "$key" = PPid: ] && { [ "$value" = "$slurm_parent" ]; return; }
    done </proc/$$/status
  fi
  kill -0 "$slurm_parent" 2>/dev/null
}

# slurm_take_job_id: once sbatch has printed the id of the job it submitted (into $slurm_tmp),
# record it in slurm_job_id and slurm_active.
slurm_take_job_id() {
  local line
  [ -z "$slurm_job_id" ] && [ -n "$slurm_tmp" ] && IFS= read -r line <"$slurm_tmp" 2>/dev/null || return 0
  [[ ${line%%;*} =~ ^[0-9]+$ ]] || return 0
  slurm_job_id=${line%%;*}
  slurm_active+=("$slurm_job_id")
}

# slurm_cancel REASON: scancel every job this runner submitted that may still run or wait.
slurm_cancel() {
  slurm_take_job_id
  [ ${#slurm_active[@]} -gt 0 ] || return 0
  echo "$slurm_prog: $1: cancelling SLURM job(s) ${slurm_active[*]}" >&2 || true
  scancel "${slurm_active[@]}" 2>/dev/null || true
  slurm_active=()
}

slurm_cleanup() {
  [ -z "$slurm_sbatch_pid" ] || kill "$slurm_sbatch_pid" 2>/dev/null || true
  [ -z "$slurm_heartbeat" ] || rm -f -- "$slurm_heartbeat"
  [ -z "$slurm_tmp" ] || rm -f -- "$slurm_tmp"
}

# slurm_stop SIGNAL STATUS: the runner was interrupted: cancel its jobs and exit with STATUS.
slurm_stop() {
  trap - INT TERM HUP
  slurm_cancel "interrupted ($1)"
  exit "$2"
}

# slurm_heartbeat_tick: rewrite the heartbeat file (in place; every 2 s).
slurm_heartbeat_tick() {
  [ -n "$slurm_heartbeat" ] || return 0
  if [ $((SECONDS - slurm_beat)) -ge 2 ] || [ ! -s "$slurm_heartbeat" ]; then
    slurm_beat=$SECONDS
    printf '%s %s\n' "$$" "$SECONDS" >"$slurm_heartbeat" 2>/dev/null || true
  fi
}

# slurm_write_batch_script NPROC_PER_NODE ARRAY SBATCH_LINE COMMAND [ARGS...]: on stdout, a bash
# batch script that cds to this directory and runs COMMAND (with `--task $SLURM_ARRAY_TASK_ID`
# after it when ARRAY is 1), under srun + torchrun when NPROC_PER_NODE > 0, while a watchdog
# cancels the job if the runner's heartbeat stops. SBATCH_LINE goes into a comment.
slurm_write_batch_script() {
  local nproc_per_node=$1 array=$2 sbatch_line=$3
  shift 3
  echo '#!/usr/bin/env bash'
  echo "# Written by $slurm_prog on $(date '+%F %T'), submitted with:"
  echo "#   $sbatch_line"
  echo 'set -uo pipefail'
  printf 'cd -- %q || exit 1\n' "$PWD"
  printf 'cmd=('
  printf ' %q' "$@"
  printf ' )\n'
  # shellcheck disable=SC2016  # written into the batch script, expanded there
  [ "$array" = 0 ] || echo 'cmd=("${cmd[0]}" --task "$SLURM_ARRAY_TASK_ID" "${cmd[@]:1}")'
  printf 'heartbeat=%q\norphan_timeout=%q\nprocs=%q\n' "$slurm_heartbeat" "$slurm_orphan_timeout" \
    "$((nproc_per_node > 0 ? nproc_per_node : 1))"
  cat <<'BODY'
echo "# job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) on $(hostname), started $(date '+%F %T') in $PWD"
printf '# command:'; printf ' %q' "${cmd[@]}"; echo
# Threads: the task's CPUs shared by its processes, unless the submitting shell chose.
if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export OMP_NUM_THREADS=$((SLURM_CPUS_PER_TASK / procs > 0 ? SLURM_CPUS_PER_TASK / procs : 1))
fi
watchdog=""
if [ "$orphan_timeout" -gt 0 ] && [ -n "$heartbeat" ]; then
  (  # the runner rewrites $heartbeat every 2 s; if it stops, nobody waits for this job
    last="" still=0
    while sleep 2; do
      beat=$(cat -- "$heartbeat" 2>/dev/null) || beat=""
      if [ -n "$beat" ] && [ "$beat" != "$last" ]; then last=$beat still=0; else still=$((still + 2)); fi
      if [ "$still" -ge "$orphan_timeout" ]; then
        echo "# the submitting runner is gone ($heartbeat still for $still s): cancelling job ${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}"
        rm -f -- "$heartbeat"
        scancel "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}"
        exit 0
      fi
    done
  ) &
  watchdog=$!
fi
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
"${launch[@]}" "${cmd[@]}"
BODY
  else
    # shellcheck disable=SC2016  # written into the batch script, expanded there
    echo '"${cmd[@]}"'
  fi
  cat <<'BODY'
status=$?
[ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null
echo "# ended with status $status at $(date '+%F %T')"
exit "$status"
BODY
}

# slurm_run_job SCRIPT_FILE_BASE BATCH_SCRIPT SBATCH_OPTION...: submit with sbatch --wait (the
# script on stdin), keep a copy of the script as SCRIPT_FILE_BASE-<job id>.sh, wait while
# watching the parent and beating the heartbeat. Sets slurm_job_id; returns sbatch's status.
slurm_run_job() {
  local base=$1 script=$2 status=0 saved=""
  shift 2
  slurm_job_id=""
  slurm_tmp=$(mktemp "${TMPDIR:-/tmp}/asrtools-sbatch.XXXXXX")
  sbatch "$@" >"$slurm_tmp" <<<"$script" &
  slurm_sbatch_pid=$!
  while kill -0 "$slurm_sbatch_pid" 2>/dev/null; do
    slurm_take_job_id
    if [ -n "$slurm_job_id" ] && [ -z "$saved" ]; then
      printf '%s\n' "$script" >"$base-$slurm_job_id.sh"
      saved=1
    fi
    if ! slurm_parent_alive; then
      trap - INT TERM HUP
      slurm_cancel "the process that started $slurm_prog ($slurm_parent) is gone"
      exit 1
    fi
    slurm_heartbeat_tick
    sleep 1 &
    wait $! || true  # returns at once when a trapped signal arrives
  done
  wait "$slurm_sbatch_pid" || status=$?
  slurm_sbatch_pid=""
  slurm_take_job_id
  [ -z "$slurm_job_id" ] || [ -n "$saved" ] || printf '%s\n' "$script" >"$base-$slurm_job_id.sh"
  rm -f -- "$slurm_tmp"
  slurm_tmp=""
  slurm_active=()  # the job has ended (sbatch --wait returned)
  return "$status"
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

# slurm_describe OPTION...: what the sbatch options ask for, in words (every resource named,
# "cluster default" where no option sets it).
slurm_describe() {
  local option nodes="" ntasks="" per_node="" cpus="" gpus="" mem="" time="" partition="" account="" extra=""
  for option in "$@"; do
    case $option in
      --nodes=*) nodes=${option#*=} ;;
      --ntasks=*) ntasks=${option#*=} ;;
      --ntasks-per-node=*) per_node=${option#*=} ;;
      --cpus-per-task=*) cpus=${option#*=} ;;
      --gpus-per-node=*) gpus=${option#*=} ;;
      --mem=*) mem=${option#*=} ;;
      --time=*) time=${option#*=} ;;
      --partition=*) partition=${option#*=} ;;
      --account=*) account=${option#*=} ;;
      --wait | --parsable | --export=* | --chdir=* | --job-name=* | --output=* | --open-mode=* | --array=*) ;;
      *) extra+=" $option" ;;
    esac
  done
  local text="${nodes:-1} node(s), "
  if [ -n "$per_node" ]; then text+="$per_node task(s) per node"; else text+="${ntasks:-1} task(s)"; fi
  text+=", ${cpus:-cluster-default} CPU(s) per task"
  if [ -n "$gpus" ]; then text+=", $gpus GPU(s) per node"; else text+=", no GPU"; fi
  text+=", memory ${mem:-cluster default}, time limit ${time:-cluster default}"
  text+=", partition ${partition:-cluster default}"
  [ -z "$account" ] || text+=", account $account"
  [ -z "$extra" ] || text+=", plus$extra"
  printf '%s' "$text"
}

# slurm_role_options ROLE CPUS_DEFAULT DEVICE: sbatch resource options of a ROLE job on DEVICE
# (cpu, cuda or "" when unknown) into opts; its processes per node for torchrun (0: none) into
# nproc_per_node.
slurm_role_options() {
  local role=$1 cpus_default=$2 device=$3 name option value
  for name in PARTITION:--partition ACCOUNT:--account TIME:--time MEM:--mem; do
    option=${name#*:}
    value=$(slurm_setting "$role" "${name%%:*}")
    [ -z "$value" ] || opts+=("$option=$value")
  done
  value=$(slurm_setting "$role" CPUS)
  value=${value:-$cpus_default}
  [ -z "$value" ] || opts+=(--cpus-per-task="$value")
  slurm_shape "$role" "$device"
  if [ "$role" = GPU ]; then
    opts+=(--nodes="$shape_nodes" --ntasks-per-node=1)
  else
    opts+=(--nodes=1 --ntasks=1)
  fi
  [ "$shape_gpus" = 0 ] || opts+=(--gpus-per-node="$shape_gpus")
  nproc_per_node=0
  [ $((shape_nodes * shape_nproc)) -le 1 ] || nproc_per_node=$shape_nproc
  local -a extra
  read -r -d '' -a extra <<<"$(slurm_setting "$role" EXTRA)" || true  # status 1 at end of input
  [ ${#extra[@]} -eq 0 ] || opts+=("${extra[@]}")
}

# slurm_submit ROLE JOB_NAME LOG_DIR ARRAY_SPEC CPUS_DEFAULT DEVICE COMMAND [ARGS...]: one job (or a
# job array over the tasks ARRAY_SPEC, e.g. 1,3) of COMMAND, waited for; exits on failure.
slurm_submit() {
  local role=$1 job_name=$2 log_dir=$3 array=$4 cpus_default=$5 device=$6
  shift 6
  local -a opts=(--wait --parsable --export=ALL --chdir="$PWD" --job-name="$job_name" --open-mode=append)
  local log_pattern="%x-%j.out" nproc_per_node
  if [ -n "$array" ]; then
    opts+=(--array="$array")
    log_pattern="%x-%A_%a.out"
  fi
  opts+=(--output="$log_dir/$log_pattern")
  slurm_role_options "$role" "$cpus_default" "$device"

  local what="job"
  [ -z "$array" ] || what="job array (task(s) $array of ${check_tasks})"
  [ "$nproc_per_node" = 0 ] || what+=" running torchrun with $nproc_per_node process(es) per node"
  echo "$slurm_prog: sbatch $job_name: $what; each: $(slurm_describe "${opts[@]}"); logs: $log_dir/" >&2

  local script status=0
  script=$(slurm_write_batch_script "$nproc_per_node" "$([ -n "$array" ] && echo 1 || echo 0)" \
           "$(printf '%q ' sbatch "${opts[@]}")< THIS_SCRIPT" "$@")
  slurm_run_job "$log_dir/$job_name" "$script" "${opts[@]}" || status=$?
  if [ "$status" -eq 0 ]; then
    echo "$slurm_prog: SLURM job $slurm_job_id ($job_name) done" >&2
    return 0
  fi
  if [ -z "$array" ]; then
    slurm_report_failure "$status" "$job_name" "$slurm_job_id" "$log_dir/$job_name-$slurm_job_id.out"
    exit "$status"
  fi
  # Which tasks failed: those whose units are still unfinished.
  slurm_check_stage "$@"
  local task logs=() first=""
  for task in "${check_pending[@]}"; do
    logs+=("$log_dir/$job_name-${slurm_job_id}_$task.out")
  done
  [ ${#logs[@]} -eq 0 ] || first=${logs[0]}
  echo "$slurm_prog: error: SLURM job array $slurm_job_id ($job_name) failed with status $status;" \
       "unfinished task(s): ${check_pending[*]:-none}; rerun to run only those; logs: ${logs[*]:-$log_dir/}" >&2
  if [ -n "$first" ] && [ -f "$first" ]; then
    echo "$slurm_prog: last lines of $first:" >&2
    tail -n 20 -- "$first" >&2
  fi
  exit "$status"
}

# slurm_main ROLE COMMAND [ARGS...]: run COMMAND as ROLE job(s) (CPU: no GPU; GPU: training on
# nodes x GPUs, under torchrun when more than one process; DECODE: one GPU per process), wait,
# return 0 or exit with the failing job's status.
slurm_main() {
  local role=$1
  shift
  [ $# -gt 0 ] || { echo "usage: $slurm_prog COMMAND [ARGS...]   (settings: docs/CLUSTER.md)" >&2; exit 2; }
  command -v sbatch >/dev/null || slurm_die "sbatch not found on PATH: run on a SLURM submit host"
  trap 'slurm_stop INT 130' INT
  trap 'slurm_stop TERM 143' TERM
  trap 'slurm_stop HUP 129' HUP
  trap slurm_cleanup EXIT

  slurm_orphan_timeout=${ASRTOOLS_SLURM_ORPHAN_TIMEOUT:-120}
  [[ $slurm_orphan_timeout =~ ^(0|[1-9][0-9]*)$ ]] ||
    slurm_die "ASRTOOLS_SLURM_ORPHAN_TIMEOUT must be a non-negative integer, got '$slurm_orphan_timeout'"
  local job_name log_dir
  job_name=$(slurm_job_name "$@")
  slurm_shape "$role" cuda
  slurm_check_world=$((shape_nodes * shape_nproc))
  slurm_check_stage "$@"
  slurm_shape "$role" "$check_device"
  if [ $((shape_nodes * shape_nproc)) != "$slurm_check_world" ]; then  # fewer processes without GPUs
    slurm_check_world=$((shape_nodes * shape_nproc))
    slurm_check_stage "$@"
  fi
  if [ "$check_state" = up-to-date ]; then
    echo "$slurm_prog: $job_name: up to date, not submitted" >&2
    return 0
  fi
  log_dir=$(slurm_setting "$role" LOG_DIR)
  if [ -z "$log_dir" ]; then
    log_dir=slurm_logs
    [ -z "$check_out_dir" ] || log_dir=$(dirname -- "$check_out_dir")/slurm_logs
  fi
  mkdir -p -- "$log_dir"
  log_dir=$(cd -- "$log_dir" && pwd)
  slurm_heartbeat="$log_dir/.runner-$(hostname)-$$.alive"
  slurm_heartbeat_tick

  if [ "$check_tasks" -gt 1 ]; then
    local array
    array=$(IFS=,; echo "${check_pending[*]}")
    if [ -n "$array" ]; then
      slurm_submit "$role" "$job_name" "$log_dir" "$array" 1 "$check_device" "$@"
    fi
    slurm_submit CPU "$job_name-merge" "$log_dir" "" 1 cpu "$@"
  else
    slurm_submit "$role" "$job_name" "$log_dir" "" "" "$check_device" "$@"
  fi
}
