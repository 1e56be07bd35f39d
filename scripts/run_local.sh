#!/usr/bin/env bash
# The local job runner used by recipes' cmd.sh: runs its arguments as one command,
# unchanged (no shell re-parsing), and returns its exit status. Stages write their own logs.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: run_local.sh COMMAND [ARGS...]" >&2; exit 2; }
exec "$@"
