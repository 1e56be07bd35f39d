#!/usr/bin/env bash
# Build (or complete) the small k2 parity environment at <repo>/.venv-k2, idempotently.
#
#   scripts/setup_k2_env.sh                          # find Python 3.9, build .venv-k2
#   ASRTOOLS_K2_PYTHON=/path/to/python3.9 scripts/setup_k2_env.sh
#
# PyPI has k2 for CPU use only as k2==1.23.4 (wheel k2-1.23.4-py3.9-none-any.whl), built for
# Python 3.9 and torch==1.13.1; torch 1.13 was built against numpy 1.x, hence numpy<2.
# The venv holds: torch 1.13.1, k2 1.23.4, numpy<2, pytest, click, pyyaml, and asrtools itself
# (editable, no deps). Every step checks first and says "ok" when there is nothing to do.
# Wheels are kept in a wheel cache ($ASRTOOLS_K2_WHEELHOUSE, default ~/.cache/asrtools/k2-wheels)
# and installed from there without the network: pip's own HTTP cache stays empty when the
# registry answers "Cache-Control: no-store", so it cannot be relied on for the 2 GB of torch.
#
# Exit status: 0 when the venv is ready; 3 when no Python 3.9 exists (message "skipped: no
# Python 3.9"), so callers can tell "nothing to test against" from a failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv-k2"

say() { echo "[setup_k2_env] $*"; }

works() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 9) else 1)' >/dev/null 2>&1; }

# A Python 3.9 interpreter: explicit override, then pyenv's install (its `python3.9` shim fails
# unless PYENV_VERSION is set, so use the real binary), then python3.9 on PATH.
find_python39() {
  local candidate
  if [ -n "${ASRTOOLS_K2_PYTHON:-}" ]; then
    works "$ASRTOOLS_K2_PYTHON" && { echo "$ASRTOOLS_K2_PYTHON"; return 0; }
    say "ASRTOOLS_K2_PYTHON=$ASRTOOLS_K2_PYTHON is not a working Python 3.9" >&2
    return 1
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.9.*/bin/python3.9; do
      works "$candidate" && { echo "$candidate"; return 0; }
    done
  fi
  candidate=$(command -v python3.9 2>/dev/null || true)
  works "$candidate" && { echo "$candidate"; return 0; }
  return 1
}

if [ -x "$venv/bin/python" ] && works "$venv/bin/python"; then
  say "ok: $venv exists ($("$venv/bin/python" --version 2>&1))"
else
  if ! python39=$(find_python39); then
    say "skipped: no Python 3.9 (set ASRTOOLS_K2_PYTHON to one)"
    exit 3
  fi
  say "creating $venv with $python39 ($("$python39" --version 2>&1))"
  rm -rf "$venv"
  "$python39" -m venv "$venv"
fi
wheelhouse=${ASRTOOLS_K2_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/asrtools/k2-wheels}
# shellcheck source=lib/wheelhouse.sh
source "$repo/scripts/lib/wheelhouse.sh"

if have torch 1.13.1; then
  say "ok: torch 1.13.1"
else
  say "installing torch==1.13.1"
  wheelhouse_install "torch==1.13.1"
fi

stack=("k2==1.23.4" "numpy<2" "pytest" "click" "pyyaml")
install_missing "ok: ${stack[*]} present" "torch==1.13.1" "${stack[@]}"
install_asrtools_editable

if "$venv/bin/python" -c "import k2, torch; assert torch.__version__.startswith('1.13.1')" 2>/dev/null; then
  say "k2 environment ready: $venv ($("$venv/bin/python" -c 'import sys; from importlib.metadata import version as v; print("python", sys.version.split()[0], "torch", v("torch"), "k2", v("k2"), "numpy", v("numpy"))'))"
else
  say "error: $venv is built but 'import k2' fails:" >&2
  "$venv/bin/python" -c "import k2" >&2 || true
  exit 1
fi
