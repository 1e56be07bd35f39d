#!/usr/bin/env bash
# Kaldi-style option parsing for recipe scripts, to be sourced after defaults are set:
#
#   stage=0; stop_stage=100; nj=2
#   . scripts/parse_options.sh
#
# Each `--some-option VALUE` (or `--some-option=VALUE`) sets the existing shell variable
# `some_option`; unknown options are an error. `--help` prints the variables and their
# current values (and the script's leading comment block, if $help_message is set).
# If $po_options is set (a space-separated list of variable names) only those are options.
# Remaining positional arguments are left in "$@".
#
# Option values are only ever assigned to variables (printf -v), never evaluated.

__po_usage() {
  [ -n "${help_message:-}" ] && echo -e "$help_message"
  echo "Options (current values):"
  for __po_var in ${__po_known:-}; do
    printf "  --%-20s %s\n" "${__po_var//_/-}" "${!__po_var}"
  done
}

__po_known=""
for __po_var in $(compgen -v); do __po_known+="$__po_var "; done

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      help_message=${help_message:-}; __po_known=${po_options:-$__po_known}; __po_usage; exit 0 ;;
    --*=*)
      __po_name=${1%%=*}; __po_value=${1#*=}; shift ;;
    --*)
      __po_name=$1
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      __po_value=$2; shift 2 ;;
    *) break ;;
  esac
  __po_var=${__po_name#--}; __po_var=${__po_var//-/_}
  if [[ ! "$__po_var" =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]] || ! declare -p "$__po_var" >/dev/null 2>&1 \
     || { [ -n "${po_options:-}" ] && [[ " $po_options " != *" $__po_var "* ]]; }; then
    echo "$0: unknown option $__po_name (try --help)" >&2
    exit 1
  fi
  printf -v "$__po_var" '%s' "$__po_value"
done
unset __po_name __po_value __po_var
true
