#!/usr/bin/env bash
# The test command (README, CI): set up the environment if needed, then run the tests.
#
#   scripts/test.sh                 # everything (k2 parity in its own py3.9 env when possible)
#   scripts/test.sh tests/test_pipeline.py -k lock     # extra args go to pytest
#   ASRTOOLS_SKIP_K2=1 scripts/test.sh                  # skip the k2 parity env
#
# CI mode (ASRTOOLS_CI=1, set by .ci/run): nothing may be missing. A test skipped for a
# missing tool fails (unless its reason starts with "optional:", see tests/ci_skip_policy.py),
# the k2 parity environment must build (a missing python3.9 is an error), ASRTOOLS_SKIP_K2 is
# refused, and the audit packages (scripts/setup_audit_env.sh) and Resemblyzer
# (scripts/setup_sv_ref_env.sh: the external speaker encoder of `asrtools sv embed` and
# `asrtools cohorts embed`) are installed so that the real-Whisper and Resemblyzer tests run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
ci=${ASRTOOLS_CI:-0}

if [ "$ci" = 1 ] && [ "${ASRTOOLS_SKIP_K2:-0}" = 1 ]; then
  echo "[test.sh] error: ASRTOOLS_SKIP_K2=1 is not allowed in CI mode (ASRTOOLS_CI=1)" >&2
  exit 1
fi

"$repo/scripts/setup_env.sh"
if [ "$ci" = 1 ]; then
  "$repo/scripts/setup_audit_env.sh"
  "$repo/scripts/setup_sv_ref_env.sh"
fi

# tests/test_slurm_cluster.py starts a private one-node SLURM cluster in this directory;
# whatever happens to pytest, its daemons are stopped (by their pid files) when this script ends.
slurm_dir=$(mktemp -d "${TMPDIR:-/tmp}/asrtools-slurm.XXXXXX")
export ASRTOOLS_TEST_SLURM_DIR=$slurm_dir
stop_slurm() {
  if [ -f "$slurm_dir/slurm.conf" ]; then
    "$repo/scripts/slurm/local_cluster.sh" stop "$slurm_dir" >/dev/null 2>&1 || true
  fi
  rm -rf -- "$slurm_dir"
}
trap stop_slurm EXIT

status=0
if [ "${ASRTOOLS_SKIP_K2:-0}" != 1 ] && [ -x "$repo/scripts/run_k2_parity.sh" ] && [ $# -eq 0 ]; then
  echo "[test.sh] k2 parity (real k2 1.23.4 in .venv-k2)"
  "$repo/scripts/run_k2_parity.sh" || status=$?
fi

echo "[test.sh] pytest"
set +e
"$repo/.venv/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "[test.sh] error: pytest collected no tests" >&2
  exit 1
fi
[ $rc -eq 0 ] || exit $rc
exit $status
