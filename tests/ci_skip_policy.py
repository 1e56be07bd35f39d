"""No silent skips in CI: a pytest plugin (imported by tests/conftest.py).

On a developer's machine a test that needs an absent tool (sctk, the TTS voices, the k2
environment, ...) is skipped. Under ``ASRTOOLS_CI=1`` (set by ``.ci/run``) every skip is a
failure naming its reason, unless the reason starts with ``optional:`` -- for what may
legitimately be absent in CI (a GPU, or a module the k2 parity environment does not have).
xfail is left alone. Module-level skips (at collection) are caught too.
"""
from __future__ import annotations

import os

import pytest

CI_ENV = "ASRTOOLS_CI"
OPTIONAL = "optional:"
# Set by scripts/run_k2_parity.sh: this run is the k2 parity environment (k2 must import there).
K2_ENV = "ASRTOOLS_EXPECT_K2"


def in_ci() -> bool:
    """Whether skips must fail (``ASRTOOLS_CI=1``)."""
    return os.environ.get(CI_ENV) == "1"


def in_k2_env() -> bool:
    """Whether this run is scripts/run_k2_parity.sh's (Python 3.9 + torch 1.13 + k2)."""
    return os.environ.get(K2_ENV) == "1"


def optional_in_k2_env(reason: str) -> str:
    """`reason`, marked optional when running in the k2 parity environment (which lacks it)."""
    return f"{OPTIONAL} {reason}" if in_k2_env() else reason


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return message[len("Skipped: "):] if message.startswith("Skipped: ") else message


def _fail_if_required(report) -> None:
    if not in_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason.startswith(OPTIONAL):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI ({CI_ENV}=1), where nothing may be missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: D103  (pytest hook)
    outcome = yield
    _fail_if_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # noqa: D103  (pytest hook)
    outcome = yield
    _fail_if_required(outcome.get_result())
