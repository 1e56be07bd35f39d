# The recipes' log function, sourced by every egs/*/*/run.sh:
#
#   log "stage 4: train"     # prints "HH:MM:SS [run.sh] stage 4: train"
#
# A message starting with "stage N:" also exports ASRTOOLS_STAGE=N: the SLURM runner
# (scripts/slurm/lib.sh) ends a failed job's message with the run.sh command that resumes,
# starting at that stage.
log() {
  echo "$(date '+%H:%M:%S') [run.sh] $*"
  if [[ $* =~ ^stage\ ([0-9]+): ]]; then export ASRTOOLS_STAGE=${BASH_REMATCH[1]}; fi
}
