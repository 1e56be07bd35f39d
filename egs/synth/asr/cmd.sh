# Sourced by run.sh: how stage commands are launched.
# Local (default): run the command directly. On a SLURM cluster, point these at the
# batch wrappers in scripts/slurm/ (added with the cluster support).
export cpu_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh"
export gpu_cmd="$ASRTOOLS_ROOT/scripts/run_local.sh"
