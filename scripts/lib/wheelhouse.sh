# Pinned installs into a venv through a wheel house; sourced by scripts/setup_env.sh and
# scripts/setup_k2_env.sh.
#
# The caller sets `venv` (the environment folder), `wheelhouse` (the wheel folder) and `repo`
# (the asrtools checkout), and defines `say MESSAGE...`. pip's own HTTP cache does not keep
# wheels on these machines (the registry answers "Cache-Control: no-store"), so each wheel is
# downloaded once into the wheel house and every later environment (a fresh clone, CI) installs
# from it without touching the network.

# venv_pip ARGS...: the venv's pip. The site pip.conf lists local index folders that may not
# exist; their warnings are noise.
venv_pip() {
  "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# wheelhouse_install SPEC...: install from the wheel house alone; fill it from the registry
# first when it lacks a wheel.
wheelhouse_install() {
  mkdir -p "$wheelhouse"
  if venv_pip install -q --no-index --find-links "$wheelhouse" "$@" >/dev/null 2>&1; then
    say "  installed from the wheel house $wheelhouse"
    return 0
  fi
  say "  downloading into the wheel house $wheelhouse: $*"
  venv_pip download -q -d "$wheelhouse" "$@"
  venv_pip install -q --no-index --find-links "$wheelhouse" "$@"
}

# have NAME WANT: is NAME installed in the venv at WANT ("*": any version; "1.2.3": that
# version, also with a "+local" tag; "<2": a major version below 2)? Read from pip's metadata,
# not by importing (importing torch is slow).
have() { "$venv/bin/python" - "$1" "$2" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
name, want = sys.argv[1], sys.argv[2]
try:
    got = version(name)
except PackageNotFoundError:
    sys.exit(1)
if want == "*" or got == want or got.startswith(want + "+"):
    sys.exit(0)
if want.startswith("<"):  # "<2": any major version below 2
    sys.exit(0 if int(got.split(".")[0]) < int(want[1:]) else 1)
sys.exit(1)
PY
}

# find_missing SPEC...: set the array `missing` to the SPECs ("name==1.2.3", "name<2" or
# "name") that `have` does not find installed.
find_missing() {
  local spec name ver
  missing=()
  for spec in "$@"; do
    case "$spec" in
      *==*) name=${spec%%==*}; ver=${spec#*==} ;;
      *"<"*) name=${spec%%<*}; ver="<${spec#*<}" ;;
      *) name=$spec; ver="*" ;;
    esac
    have "$name" "$ver" || missing+=("$spec")
  done
}

# install_missing OK_LINE PIN SPEC...: install the SPECs that are missing, together with PIN
# (the torch already installed, so that the resolver can never swap that build); say OK_LINE
# when none is missing.
install_missing() {
  local ok_line=$1 pin=$2
  shift 2
  find_missing "$@"
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    wheelhouse_install "${missing[@]}" "$pin"
  else
    say "$ok_line"
  fi
}

# install_asrtools_editable: install this checkout ($repo) into the venv, editable and without
# dependencies, unless the venv's asrtools already comes from it.
install_asrtools_editable() {
  if have asrtools "*" && (cd / && "$venv/bin/python" -c "import asrtools, sys; sys.exit(0 if asrtools.__file__.startswith('$repo/') else 1)") 2>/dev/null; then
    say "ok: asrtools installed (editable) from $repo"
  else
    say "installing asrtools (editable, no deps) from $repo"
    venv_pip install -q --no-deps --no-build-isolation -e "$repo"
  fi
}
