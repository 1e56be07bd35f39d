# shellcheck shell=bash
# SLURM job submission shared by scripts/slurm/submit.sh (cpu_cmd), scripts/slurm/submit_gpu.sh
# (gpu_cmd) and scripts/slurm/submit_decode.sh (decode_cmd); sourced, not run. The entry
# scripts call `slurm_main ROLE COMMAND [ARGS...]`; docs/CLUSTER.md is the user's guide.
#
# For an `asrtools` stage command the runner first asks, here on the submit host,
# `asrtools --check ARGS...`: an up-to-date stage is not submitted at all; the answer also
# names the stage directory (job logs go to <its parent>/slurm_logs/; the job is named after
# the subcommand and the directory's last two path parts, e.g. train:exp/lstm_s7), the command's --device
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
# While it waits, the runner prints the job's state changes (`scontrol -o show job` every
# ASRTOOLS_SLURM_POLL seconds: PENDING with its reason, RUNNING, REQUEUED, ...); a failed job is
# reported with its final state (sacct, else scontrol), its log's tail and, last, the command
# that resumes the run. Every submitted job and its log are listed, one line each with the
# event (submitted, then its final state), in the index ASRTOOLS_SLURM_INDEX.
#
# Cancellation: the runner cancels (scancel) the jobs it submitted when it is interrupted
# (INT, TERM, HUP) and when the process that started it (run.sh) disappears, even by
# SIGKILL. Should the runner itself be killed by SIGKILL, every job watches a heartbeat file
# that the runner rewrites every 2 s and cancels itself (its whole array) once the heartbeat
# has been still for ASRTOOLS_SLURM_ORPHAN_TIMEOUT seconds. A heartbeat file left by a runner
# killed by SIGKILL is removed by its job when the job ends (the file has been still for
# 10 s) or by the next runner on that host (its pid is dead).
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
#   ASRTOOLS_SLURM_POLL       seconds between job state queries while waiting (default 5)
#   ASRTOOLS_SLURM_INDEX      the job index, a tab-separated file (default:
#                             slurm_logs/jobs.tsv in the submitting directory)
#   ASRTOOLS_STAGE            the recipe stage being run (exported by run.sh's log function):
#                             the resume command then starts there (--stage N)
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
slurm_out_fd=""          # reads what sbatch prints (an unlinked file: nothing is left behind)
slurm_job_id=""
slurm_job_label=""       # the job's name, for messages
slurm_array_tasks=()     # the array tasks of the job being waited for (none: a single job)
slurm_command=()         # the command the runner was given
slurm_last_poll=-1000
declare -A slurm_seen_state=() slurm_seen_restarts=() slurm_final_state=()
slurm_name_max=64        # job names are cut to this many characters (squeue, sacct show them whole)

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

# slurm_stage_job_name SUFFIX COMMAND [ARGS...]: after slurm_check_stage, the name of a stage's
# job: its subcommand(s) plus SUFFIX (e.g. -merge) and the last two parts of the stage directory,
# e.g. "train:exp/lstm_s7", "data-features-merge:data/fbank", "decode:lstm/decode_test_greedy";
# the directory is cut from the left to fit slurm_name_max characters ("train:...34/lstm_s7"),
# so the distinguishing tail stays. Any other command: slurm_job_name plus SUFFIX.
slurm_stage_job_name() {
  local suffix=$1 name
  shift
  name=$(slurm_job_name "$@")$suffix
  if [ -z "$check_out_dir" ]; then
    printf '%s' "$name"
    return
  fi
  local verb=${name#asrtools-} dir base
  base=$(basename -- "$check_out_dir")
  dir=$(basename -- "$(dirname -- "$check_out_dir")")
  case $dir in / | . | "") ;; *) base="$dir/$base" ;; esac
  base=${base//[^A-Za-z0-9._\/+-]/_}
  name="$verb:$base"
  if [ ${#name} -gt "$slurm_name_max" ]; then
    local keep=$((slurm_name_max - ${#verb} - 4))
    name="$verb:...${base: -keep}"
  fi
  printf '%s' "$name"
}

# slurm_file_name JOB_NAME: the job name as a file name prefix (":" and "/" become "_").
slurm_file_name() {
  local name=${1//:/_}
  printf '%s' "${name//\//_}"
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

# slurm_take_job_id: once sbatch has printed the id of the job it submitted (on $slurm_out_fd),
# record it in slurm_job_id and slurm_active.
slurm_take_job_id() {
  local line
  [ -z "$slurm_job_id" ] && [ -n "$slurm_out_fd" ] && IFS= read -r line <&"$slurm_out_fd" 2>/dev/null || return 0
  [[ ${line%%;*} =~ ^[0-9]+$ ]] || return 0
  slurm_job_id=${line%%;*}
  slurm_active+=("$slurm_job_id")
}

# slurm_say MESSAGE...: one line on stderr, prefixed by the runner's name (never fails).
slurm_say() {
  echo "$slurm_prog: $*" >&2 || true
}

# slurm_field LINE KEY: the value of KEY=value in a line of `scontrol -o show job` ("" if none).
slurm_field() {
  local pattern="(^| )$2=([^ ]*)"
  if [[ $1 =~ $pattern ]]; then printf '%s' "${BASH_REMATCH[2]}"; fi
}

# slurm_job_lines JOB_ID: `scontrol -o show job JOB_ID`, one line per job (per array task);
# nothing when Slurm no longer knows the job or scontrol fails.
slurm_job_lines() {
  scontrol -o show job "$1" 2>/dev/null | grep '^JobId=' || true
}

# slurm_task_label LINE: the job (array task) a scontrol line is about, as squeue names it:
# 1234, 1234_2, or 1234_[1-3] for array tasks that have not started.
slurm_task_label() {
  local array task
  array=$(slurm_field "$1" ArrayJobId)
  task=$(slurm_field "$1" ArrayTaskId)
  if [ -z "$array" ]; then
    slurm_field "$1" JobId
  elif [[ $task =~ ^[0-9]+$ ]]; then
    printf '%s_%s' "$array" "$task"
  else
    printf '%s_[%s]' "$array" "$task"
  fi
}

# slurm_poll_states [FORCE]: print what changed in the state of the job being waited for (of
# each array task) since the last look, at most every ASRTOOLS_SLURM_POLL seconds (always with
# FORCE). A rising restart count is a requeue.
slurm_poll_states() {
  [ -n "$slurm_job_id" ] || return 0
  [ -n "${1:-}" ] || [ $((SECONDS - slurm_last_poll)) -ge "$slurm_poll" ] || return 0
  slurm_last_poll=$SECONDS
  local line label state reason restarts what start
  while IFS= read -r line; do
    label=$(slurm_task_label "$line")
    state=$(slurm_field "$line" JobState)
    reason=$(slurm_field "$line" Reason)
    restarts=$(slurm_field "$line" Restarts)
    [[ $restarts =~ ^[0-9]+$ ]] || restarts=0
    [ -n "$label" ] && [ -n "$state" ] || continue
    # The job was submitted with no restart: any restart, even one before the first look, is a requeue.
    if [ "$restarts" -gt "${slurm_seen_restarts[$label]:-0}" ]; then
      slurm_say "job $label ($slurm_job_label): REQUEUED (restart $restarts): Slurm holds it before it runs" \
                "again (BeginTime; 2 minutes by default), then it resumes from its finished work; still waiting"
      slurm_seen_state[$label]=REQUEUED
    fi
    slurm_seen_restarts[$label]=$restarts
    case $state in
      PENDING) what="PENDING (${reason:-no reason given})" ;;
      RUNNING) what="RUNNING on $(slurm_field "$line" NodeList)" ;;
      COMPLETING | COMPLETED) continue ;;  # the runner says "done" once the job has ended
      *) what=$state
         [ -z "$reason" ] || [ "$reason" = None ] || what+=" ($reason)" ;;
    esac
    [ "$what" != "${slurm_seen_state[$label]:-}" ] || continue
    [ "$state" != REQUEUED ] || [ "${slurm_seen_state[$label]:-}" != REQUEUED ] || continue
    slurm_seen_state[$label]=$what
    start=$(slurm_field "$line" StartTime)
    [ "$reason" != BeginTime ] || [[ ! $start =~ ^[0-9] ]] || what+=" until $start"
    slurm_say "job $label ($slurm_job_label): $what"
  done < <(slurm_job_lines "$slurm_job_id")
}

# slurm_final_states JOB_ID: how the job (each array task) ended, into slurm_final_state
# (label -> "STATE" or "STATE, exit code N:S"): from sacct where accounting is on, else from
# scontrol (Slurm keeps an ended job there for MinJobAge seconds, 300 by default).
slurm_final_states() {
  slurm_final_state=()
  local id state code line
  while IFS='|' read -r id state code; do
    [[ $id =~ ^[0-9] ]] || continue
    slurm_final_state[$id]="${state%% *}${code:+, exit code $code}"
  done < <(sacct -n -X -P -j "$1" -o JobID,State,ExitCode 2>/dev/null || true)
  [ ${#slurm_final_state[@]} -eq 0 ] || return 0
  while IFS= read -r line; do
    id=$(slurm_task_label "$line")
    state=$(slurm_field "$line" JobState)
    code=$(slurm_field "$line" ExitCode)
    [ -z "$id" ] || [ -z "$state" ] || slurm_final_state[$id]="$state${code:+, exit code $code}"
  done < <(slurm_job_lines "$1")
}

# slurm_state_hint STATE: what a person can do about a job that ended in STATE.
slurm_state_hint() {
  case $1 in
    TIMEOUT*) printf '%s' "; it reached its time limit: raise ASRTOOLS_SLURM_TIME" ;;
    OUT_OF_MEMORY*) printf '%s' "; it ran out of memory: raise ASRTOOLS_SLURM_MEM" ;;
    NODE_FAIL*) printf '%s' "; its node failed" ;;
    CANCELLED*) printf '%s' "; it was cancelled (scancel, an administrator, or its own watchdog)" ;;
    PREEMPTED*) printf '%s' "; it was preempted (ASRTOOLS_SLURM_EXTRA=--requeue lets Slurm requeue it)" ;;
  esac
}

# slurm_resume_command: the command that resumes the run, for the last line of a failure: the
# command line of the recipe script that started this runner (run.sh ...), with --stage
# $ASRTOOLS_STAGE when the recipe exported it, else this runner's own command line.
slurm_resume_command() {
  local -a words=() kept=()
  if [ -r "/proc/$slurm_parent/cmdline" ]; then
    mapfile -d '' -t words <"/proc/$slurm_parent/cmdline" 2>/dev/null || words=()
  fi
  case $(basename -- "${words[0]:-}") in
    bash | sh | dash | zsh | ksh) words=("${words[@]:1}") ;;
  esac
  if [ ${#words[@]} -gt 0 ] && [[ ${words[0]} == *.sh ]]; then
    local i=1
    kept=("${words[0]}")
    while [ "$i" -lt ${#words[@]} ]; do
      case ${words[i]} in
        --stage) if [ -n "${ASRTOOLS_STAGE:-}" ]; then i=$((i + 2)); continue; fi ;;
        --stage=*) if [ -n "${ASRTOOLS_STAGE:-}" ]; then i=$((i + 1)); continue; fi ;;
      esac
      kept+=("${words[i]}")
      i=$((i + 1))
    done
    [ -z "${ASRTOOLS_STAGE:-}" ] || kept+=(--stage "$ASRTOOLS_STAGE")
  else
    kept=("$0" "${slurm_command[@]}")
  fi
  printf '%q ' "${kept[@]}" | sed 's/ $//'
}

# slurm_index EVENT JOB LOG: append "time, run (host:pid of run.sh), job, name, EVENT, log" to the index.
slurm_index() {
  [ -n "$slurm_index_file" ] || return 0
  mkdir -p -- "$(dirname -- "$slurm_index_file")" 2>/dev/null || return 0
  [ -s "$slurm_index_file" ] || printf '# time\trun\tjob\tname\tevent\tlog\n' >>"$slurm_index_file" 2>/dev/null || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date '+%FT%T')" "$slurm_run_id" "$2" "$slurm_job_label" "$1" "$3" \
    >>"$slurm_index_file" 2>/dev/null || true
}

# slurm_sweep_heartbeats DIR: remove the heartbeat files that runners on this host killed by
# SIGKILL left in DIR (their pid is dead).
slurm_sweep_heartbeats() {
  local file pid host
  host=$(hostname)
  for file in "$1"/.runner-"$host"-*.alive; do
    [ -f "$file" ] || continue
    pid=${file##*-}
    pid=${pid%.alive}
    [[ $pid =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null || rm -f -- "$file"
  done
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
job=${SLURM_JOB_ID:-?} about=""  # an array task by the name its log file and squeue use: <array id>_<task>
if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
  job="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID:-?}" about="job id ${SLURM_JOB_ID:-?}; "
fi
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
  echo "# requeued: attempt $((SLURM_RESTART_COUNT + 1)) starts here; the attempt above was stopped by the requeue" \
       "(any traceback just above is that stop, not a crash) and this one resumes from its finished work"
fi
echo "# job $job ($about${SLURM_JOB_NAME:-?}) on $(hostname), started $(date '+%F %T') in $PWD"
printf '# command:'; printf ' %q' "${cmd[@]}"; echo
# Slurm stops a job with SIGTERM (scancel, requeue, preemption, time limit), then SIGKILL.
trap 'echo "# SIGTERM at $(date "+%F %T"): Slurm is stopping this job (scancel, requeue, preemption or time limit);" \
           "output just above is its processes being stopped, not a crash"' TERM
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
# A runner killed by SIGKILL leaves its heartbeat behind: remove it once it has been still for 10 s.
if [ -n "$heartbeat" ] && [ -f "$heartbeat" ]; then
  changed=$(stat -c %Y -- "$heartbeat" 2>/dev/null) || changed=""
  [ -z "$changed" ] || [ $(($(date +%s) - changed)) -lt 10 ] || rm -f -- "$heartbeat"
fi
echo "# ended with status $status at $(date '+%F %T')"
exit "$status"
BODY
}

# slurm_job_logs BASE: the log file(s) of the job just submitted (one per array task), one a line.
slurm_job_logs() {
  local task
  if [ ${#slurm_array_tasks[@]} -eq 0 ]; then
    printf '%s\n' "$1-$slurm_job_id.out"
  else
    for task in "${slurm_array_tasks[@]}"; do printf '%s\n' "$1-${slurm_job_id}_$task.out"; done
  fi
}

# slurm_submitted BASE: say which job id was submitted and where it logs; list it in the index.
slurm_submitted() {
  local log logs=() task
  mapfile -t logs < <(slurm_job_logs "$1")
  if [ ${#slurm_array_tasks[@]} -eq 0 ]; then
    slurm_say "job $slurm_job_id ($slurm_job_label) submitted; log: ${logs[0]}"
    slurm_index submitted "$slurm_job_id" "${logs[0]}"
  else
    slurm_say "job array $slurm_job_id ($slurm_job_label) submitted; logs: ${logs[0]%_*}_<task>.out"
    for log in "${logs[@]}"; do
      task=${log##*_}
      slurm_index submitted "${slurm_job_id}_${task%.out}" "$log"
    done
  fi
}

# slurm_run_job SCRIPT_FILE_BASE BATCH_SCRIPT SBATCH_OPTION...: submit with sbatch --wait (the
# script on stdin), keep a copy of the script as SCRIPT_FILE_BASE-<job id>.sh, wait while
# watching the parent and beating the heartbeat. Sets slurm_job_id; returns sbatch's status.
slurm_run_job() {
  local base=$1 script=$2 status=0 saved=""
  shift 2
  slurm_job_id=""
  # sbatch's output goes to a file that is unlinked at once: the runner reads it through its
  # own descriptor, and no file is left behind, even when the runner is killed by SIGKILL.
  local tmp write_fd
  tmp=$(mktemp "${TMPDIR:-/tmp}/asrtools-sbatch.XXXXXX")
  exec {write_fd}>"$tmp" {slurm_out_fd}<"$tmp"
  rm -f -- "$tmp"
  sbatch "$@" >&"$write_fd" <<<"$script" &
  slurm_sbatch_pid=$!
  while kill -0 "$slurm_sbatch_pid" 2>/dev/null; do
    slurm_take_job_id
    if [ -n "$slurm_job_id" ] && [ -z "$saved" ]; then
      printf '%s\n' "$script" >"$base-$slurm_job_id.sh"
      saved=1
      slurm_submitted "$base"
    fi
    if ! slurm_parent_alive; then
      trap - INT TERM HUP
      slurm_cancel "the process that started $slurm_prog ($slurm_parent) is gone"
      exit 1
    fi
    slurm_heartbeat_tick
    slurm_poll_states
    sleep 1 &
    wait $! || true  # returns at once when a trapped signal arrives
  done
  wait "$slurm_sbatch_pid" || status=$?
  slurm_sbatch_pid=""
  slurm_take_job_id
  slurm_poll_states force  # a state the last polls missed (e.g. a short requeue hold)
  if [ -n "$slurm_job_id" ] && [ -z "$saved" ]; then
    printf '%s\n' "$script" >"$base-$slurm_job_id.sh"
    slurm_submitted "$base"
  fi
  exec {write_fd}>&- {slurm_out_fd}<&-
  slurm_out_fd=""
  slurm_active=()  # the job has ended (sbatch --wait returned)
  return "$status"
}

# slurm_show_tail LOG: the last 20 lines of a job's log, if it exists.
slurm_show_tail() {
  if [ -f "$1" ]; then
    echo "$slurm_prog: last lines of $1:" >&2
    tail -n 20 -- "$1" >&2
  fi
}

# slurm_report_failure STATUS JOB_NAME JOB_ID LOG: say which job failed, how it ended, show its
# log's tail, and end with the command that resumes the run.
slurm_report_failure() {
  local status=$1 job_name=$2 job_id=$3 log=$4
  if [ -z "$job_id" ]; then
    echo "$slurm_prog: error: sbatch failed (status $status) for $job_name; nothing was submitted" >&2
    slurm_say "to resume: $(slurm_resume_command)"
    return
  fi
  local state=${slurm_final_state[$job_id]:-}
  if [ -n "$state" ]; then
    echo "$slurm_prog: error: SLURM job $job_id ($job_name) ended $state$(slurm_state_hint "$state"); log: $log" >&2
  else
    echo "$slurm_prog: error: SLURM job $job_id ($job_name) failed with status $status; log: $log" >&2
  fi
  state=${state%%,*}
  slurm_index "${state:-failed}" "$job_id" "$log"
  slurm_show_tail "$log"
  slurm_say "to resume: $(slurm_resume_command)"
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
  local base nproc_per_node
  base=$log_dir/$(slurm_file_name "$job_name")
  slurm_job_label=$job_name
  slurm_array_tasks=()
  if [ -n "$array" ]; then
    opts+=(--array="$array")
    IFS=, read -r -a slurm_array_tasks <<<"$array"
    opts+=(--output="$base-%A_%a.out")
  else
    opts+=(--output="$base-%j.out")
  fi
  slurm_role_options "$role" "$cpus_default" "$device"

  local what="job"
  [ -z "$array" ] || what="job array (task(s) $array of ${check_tasks})"
  [ "$nproc_per_node" = 0 ] || what+=" running torchrun with $nproc_per_node process(es) per node"
  echo "$slurm_prog: sbatch $job_name: $what; each: $(slurm_describe "${opts[@]}"); logs: $log_dir/" >&2

  local script status=0
  script=$(slurm_write_batch_script "$nproc_per_node" "$([ -n "$array" ] && echo 1 || echo 0)" \
           "$(printf '%q ' sbatch "${opts[@]}")< THIS_SCRIPT" "$@")
  slurm_seen_state=() slurm_seen_restarts=()
  slurm_run_job "$base" "$script" "${opts[@]}" || status=$?
  local log logs=()
  [ -z "$slurm_job_id" ] || mapfile -t logs < <(slurm_job_logs "$base")
  if [ "$status" -eq 0 ]; then
    echo "$slurm_prog: SLURM job $slurm_job_id ($job_name) done" >&2
    for log in "${logs[@]}"; do slurm_index COMPLETED "$(slurm_log_job "$log")" "$log"; done
    return 0
  fi
  [ -z "$slurm_job_id" ] || slurm_final_states "$slurm_job_id"
  if [ -z "$array" ]; then
    slurm_report_failure "$status" "$job_name" "$slurm_job_id" "${logs[0]:-}"
    exit "$status"
  fi
  # Which tasks failed: those whose units are still unfinished.
  slurm_check_stage "$@"
  local task failed=() states=() first="" label
  for task in "${check_pending[@]}"; do
    label=${slurm_job_id}_$task
    failed+=("$base-${label}.out")
    states+=("$task${slurm_final_state[$label]:+ (${slurm_final_state[$label]}$(slurm_state_hint "${slurm_final_state[$label]}"))}")
  done
  for log in "${logs[@]}"; do
    label=$(slurm_log_job "$log")
    slurm_index "${slurm_final_state[$label]:-ended}" "$label" "$log"
  done
  [ ${#failed[@]} -eq 0 ] || first=${failed[0]}
  local listed="" item
  for item in "${states[@]}"; do listed+="${listed:+, }$item"; done
  echo "$slurm_prog: error: SLURM job array $slurm_job_id ($job_name) failed with status $status;" \
       "unfinished task(s): ${listed:-none}; rerun to run only those; logs: ${failed[*]:-$log_dir/}" >&2
  slurm_show_tail "$first"
  slurm_say "to resume: $(slurm_resume_command)"
  exit "$status"
}

# slurm_log_job LOG: the job (array task) a log file of slurm_job_logs belongs to: 1234 or 1234_2.
slurm_log_job() {
  local job=${1##*-}
  printf '%s' "${job%.out}"
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

  slurm_command=("$@")
  slurm_orphan_timeout=${ASRTOOLS_SLURM_ORPHAN_TIMEOUT:-120}
  [[ $slurm_orphan_timeout =~ ^(0|[1-9][0-9]*)$ ]] ||
    slurm_die "ASRTOOLS_SLURM_ORPHAN_TIMEOUT must be a non-negative integer, got '$slurm_orphan_timeout'"
  slurm_poll=${ASRTOOLS_SLURM_POLL:-5}
  [[ $slurm_poll =~ ^[1-9][0-9]*$ ]] || slurm_die "ASRTOOLS_SLURM_POLL must be a positive integer, got '$slurm_poll'"
  slurm_index_file=${ASRTOOLS_SLURM_INDEX-$PWD/slurm_logs/jobs.tsv}
  slurm_run_id="$(hostname):$slurm_parent"
  local job_name log_dir
  slurm_shape "$role" cuda
  slurm_check_world=$((shape_nodes * shape_nproc))
  slurm_check_stage "$@"
  slurm_shape "$role" "$check_device"
  if [ $((shape_nodes * shape_nproc)) != "$slurm_check_world" ]; then  # fewer processes without GPUs
    slurm_check_world=$((shape_nodes * shape_nproc))
    slurm_check_stage "$@"
  fi
  job_name=$(slurm_stage_job_name "" "$@")
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
  slurm_sweep_heartbeats "$log_dir"
  slurm_heartbeat="$log_dir/.runner-$(hostname)-$$.alive"
  slurm_heartbeat_tick

  if [ "$check_tasks" -gt 1 ]; then
    local array
    array=$(IFS=,; echo "${check_pending[*]}")
    if [ -n "$array" ]; then
      slurm_submit "$role" "$job_name" "$log_dir" "$array" 1 "$check_device" "$@"
    fi
    slurm_submit CPU "$(slurm_stage_job_name -merge "$@")" "$log_dir" "" 1 cpu "$@"
  else
    slurm_submit "$role" "$job_name" "$log_dir" "" "" "$check_device" "$@"
  fi
}
