#!/usr/bin/env bash
# Install the optional external speaker-verification reference into <repo>/.venv, idempotently.
#
#   scripts/setup_sv_ref_env.sh
#
# Resemblyzer 0.1.4 ships its pretrained GE2E speaker encoder (pretrained.pt, 17 MB) inside
# the wheel, so nothing is downloaded at run time (`asrtools sv embed --external resemblyzer`,
# `asrtools cohorts embed --encoder resemblyzer`). scripts/test.sh runs it in CI mode.
# It imports webrtcvad and librosa. PyPI has only a source distribution of webrtcvad, so its
# binary fork webrtcvad-wheels (same `webrtcvad` module) is installed and resemblyzer itself
# with --no-deps (its other declared dependency, the `typing` backport, must not be installed
# on Python 3). torch is passed as a constraint so that pip can never replace it. Wheels go
# through the same wheel house as scripts/setup_env.sh. Measured: about 235 MB installed
# (llvmlite and numba, which librosa needs, are 210 MB of it), 15 s from the wheel house.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
wheelhouse=${ASRTOOLS_WHEELHOUSE:-$HOME/.cache/asrtools/wheels}

say() { echo "[setup_sv_ref_env] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "error: $venv does not exist; run scripts/setup_env.sh first" >&2
  exit 1
fi
mkdir -p "$wheelhouse"

deps=("librosa==0.11.0" "webrtcvad-wheels==2.0.14.post1")
main="resemblyzer==0.1.4"

have() { "$venv/bin/python" - "$1" "$2" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$venv/bin/python" -c 'from importlib.metadata import version; print("torch==" + version("torch"))' >"$constraints"

install() {  # install [--no-deps] SPEC...: from the wheel house, downloading into it when needed
  local local_install=("$venv/bin/pip" install -q --no-index --find-links "$wheelhouse" -c "$constraints")
  if ! "${local_install[@]}" "$@" >/dev/null 2>&1; then
    say "downloading into the wheel house $wheelhouse: $*"
    "$venv/bin/pip" download -q -d "$wheelhouse" -c "$constraints" --only-binary=:all: "$@"
    "${local_install[@]}" "$@"
  fi
}

missing=()
for spec in "${deps[@]}"; do have "${spec%%==*}" "${spec#*==}" || missing+=("$spec"); done
if [ ${#missing[@]} -gt 0 ]; then install "${missing[@]}"; say "installed: ${missing[*]}"; fi
if have resemblyzer 0.1.4; then
  say "ok: ${deps[*]} $main present"
else
  install --no-deps "$main"
  say "installed: $main"
fi

"$venv/bin/python" - <<'PY'
from pathlib import Path
import resemblyzer
weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
if not weights.is_file():
    raise SystemExit(f"[setup_sv_ref_env] error: {weights} is missing")
print(f"[setup_sv_ref_env] ok: Resemblyzer encoder weights at {weights}")
PY
