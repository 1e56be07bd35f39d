# Sourced by run.sh: puts the asrtools environment on PATH, creating it on first use.
ASRTOOLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export ASRTOOLS_ROOT
if [ ! -x "$ASRTOOLS_ROOT/.venv/bin/asrtools" ]; then
  echo "path.sh: no environment at $ASRTOOLS_ROOT/.venv yet; running scripts/setup_env.sh" >&2
  "$ASRTOOLS_ROOT/scripts/setup_env.sh" >&2
fi
export PATH="$ASRTOOLS_ROOT/.venv/bin:$ASRTOOLS_ROOT/scripts:$PATH"
export PYTHONUNBUFFERED=1
