#!/usr/bin/env bash
# A real one-node SLURM cluster on 127.0.0.1 (Debian's Slurm 22.05 + munge, no systemd), for the
# tests and for trying the SLURM launchers on one machine. Everything (config, munge key and
# socket, state, spool, logs, pid files) lives in one private directory; ports are free ones
# picked at start, so several clusters can run side by side.
#
#   scripts/slurm/local_cluster.sh start DIR [CPUS]   # start munged, slurmctld, slurmd; wait until the node is idle
#   export SLURM_CONF=DIR/slurm.conf                  # then sbatch, srun, squeue, scancel ... use it
#   scripts/slurm/local_cluster.sh stop DIR           # cancel every job, stop the daemons by their pid files
#   scripts/slurm/local_cluster.sh check              # exit 0 if this machine can run one, else say why
#
# CPUS (default: this machine's CPUs) is what the node advertises; more than the machine has
# is allowed (SlurmdParameters=config_overrides). Needs root (slurmd starts jobs as their
# user; munged is run as root with --force) and the Debian packages munge, slurmctld, slurmd
# and slurm-client (scripts/setup_env.sh installs them). How each setting was found:
# ../shared/notes/slurm-localhost.md; docs/CLUSTER.md.
set -euo pipefail

prog=$(basename "$0")
die() { echo "$prog: error: $*" >&2; exit 1; }

# missing_piece: empty when this machine can run a cluster, else what is missing.
missing_piece() {
  local tool
  for tool in munged mungekey slurmctld slurmd sbatch srun squeue scancel scontrol sinfo; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 ||
      { echo "$tool not installed (Debian packages munge slurmctld slurmd slurm-client; scripts/setup_env.sh)"; return; }
  done
  [ "$(id -u)" = 0 ] || { echo "not root (slurmd must run as root to start jobs)"; return; }
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free TCP port found"
}

write_config() {
  local dir=$1 cpus=$2 ctld_port slurmd_port
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  [ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$((ctld_port + 1))
  mkdir -p "$dir/state" "$dir/spool" "$dir/cgroup" "$dir/munge"
  cat >"$dir/slurm.conf" <<EOF
# Written by $prog: a private one-node cluster on 127.0.0.1.
ClusterName=asrtools-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job is held this long before it may run again (default 120 s).
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=20
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups and no accounting database (job state and exit codes: scontrol show job, jobcomp.txt).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Start queued and dependent jobs within about a second; sbatch --wait polls every 2 s.
SchedulerParameters=bf_interval=1
MinJobAge=5
KillWait=5
ReturnToService=2
# A request bigger than the node fails at submission; a job whose dependency failed is cancelled.
EnforcePartLimits=ALL
DependencyParameters=kill_invalid_depend
SlurmdParameters=config_overrides
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmd 22.05 always loads a cgroup plugin; an empty, unmounted hierarchy lets it start.
  cat >"$dir/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=$dir/cgroup
CgroupAutomount=no
EOF
}

# pid_of DIR NAME: the pid in DIR/NAME.pid when that process is alive.
pid_of() {
  local pid
  pid=$(cat "$1/$2.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  local dir=$1 cpus=${2:-$(nproc)}
  [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "CPUS must be a positive integer, got '$cpus'"
  local why
  why=$(missing_piece)
  [ -z "$why" ] || die "cannot start a local SLURM cluster: $why"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if pid_of "$dir" slurmctld >/dev/null || pid_of "$dir" slurmd >/dev/null || pid_of "$dir/munge" munged >/dev/null; then
    die "$dir: a cluster is already running there (stop it first: $prog stop $dir)"
  fi
  write_config "$dir" "$cpus"
  export SLURM_CONF=$dir/slurm.conf
  PATH="$PATH:/usr/sbin:/sbin"

  rm -f "$dir/munge/munge.key"
  mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null
  chmod 0400 "$dir/munge/munge.key"
  # --force: munged refuses to run as root otherwise; only root talks to this socket.
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    || die "munged did not start; see $dir/munge/munged.log"
  slurmctld -f "$SLURM_CONF" || die "slurmctld did not start; see $dir/slurmctld.log"
  slurmd -f "$SLURM_CONF" -N localhost || die "slurmd did not start; see $dir/slurmd.log"

  local state=""
  for _ in $(seq 150); do
    state=$(sinfo -h -N -n localhost -o %T 2>/dev/null || true)
    case $state in idle*) break ;; esac
    sleep 0.2
  done
  case $state in
    idle*) echo "$prog: cluster up in $dir (node localhost, $cpus CPUs); export SLURM_CONF=$SLURM_CONF" ;;
    *) stop "$dir" >/dev/null 2>&1 || true
       die "the node did not become idle (state '${state:-unknown}'); see $dir/slurmctld.log and $dir/slurmd.log" ;;
  esac
}

# stop_pid DIR NAME: SIGTERM the daemon of DIR/NAME.pid, SIGKILL it after 10 s.
stop_pid() {
  local pid
  pid=$(pid_of "$1" "$2") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  local dir=$1
  [ -f "$dir/slurm.conf" ] || die "$dir: no local cluster there (no slurm.conf)"
  export SLURM_CONF=$dir/slurm.conf
  if pid_of "$dir" slurmctld >/dev/null; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do  # let cancelled jobs end before slurmd goes
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid "$dir" slurmd
  stop_pid "$dir" slurmctld
  stop_pid "$dir/munge" munged
  echo "$prog: cluster in $dir stopped"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: $prog start DIR [CPUS]"; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || die "usage: $prog stop DIR"; stop "$2" ;;
  check) why=$(missing_piece); [ -z "$why" ] || { echo "$why"; exit 1; } ;;
  *) echo "usage: $prog start DIR [CPUS] | stop DIR | check" >&2; exit 2 ;;
esac
