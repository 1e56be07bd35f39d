"""The stage contract: fingerprinted done-markers, resume, locking and per-stage logs.

Every recipe stage is one `asrtools` subcommand that calls `run_stage`. A stage owns one
output directory:

- It is fingerprinted by its name, its parameters and the fingerprints of its inputs (an
  upstream stage directory contributes the digest of its *outputs*). A matching
  `.done.json` marker means "up to date": the stage says so and does nothing.
- On a changed parameter or input the old marker is removed first (so no downstream stage
  can consume the stale outputs), the directory's old outputs are deleted, and the stage
  runs again. Downstream stages then see a new input fingerprint and rerun in turn.
- While running, `.inprogress.json` holds the fingerprint. A run killed at any moment
  resumes from the files already finished if the fingerprint still matches (stage bodies
  write each item atomically, see `asrtools.pipeline.atomic`), or starts clean if not.
- `.lock` (flock) refuses a second process on the same directory.
- Log records go to the console and to `<parent>/log/<dir name>.log`.
- Inputs can be checked at the door (`validate`) before the directory is touched.
- The marker records the provenance (commit, torch, CPU/GPU, threads) of the run that made
  the outputs (`asrtools.utils.provenance`).
- A directory that is not empty and carries neither marker was not made by asrtools: the
  stage refuses to touch it rather than overwrite the user's files.

The process-wide `StageMode` (set by `asrtools --check` / `asrtools --task I`) changes what a
stage call does: in check mode it decides whether the stage is up to date and raises
`StageChecked` with the answer instead of running anything (a job runner asks this on the
submit host before submitting a job); task mode runs one task of a sharded stage
(`asrtools.pipeline.sharding`).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import asrtools
from asrtools.errors import ConfigError, DataError
from asrtools.pipeline.atomic import atomic_write_json, remove_stale_tmp
from asrtools.pipeline.fingerprint import (
    CONTROL_PREFIX,
    DONE_MARKER,
    fingerprint_input,
    hash_json,
    output_manifest,
    outputs_digest,
    read_marker,
)
from asrtools.pipeline.lock import LOCK_PREFIX, StageLock
from asrtools.utils.provenance import provenance

INPROGRESS_MARKER = ".inprogress.json"

logger = logging.getLogger("asrtools")


@dataclasses.dataclass
class StageContext:
    """What a stage body receives.

    Attributes:
      out_dir: the stage's output directory (exists, locked, holds no stale outputs).
      params: the stage parameters (JSON-serialisable mapping).
      fingerprint: the stage fingerprint being computed.
      resumed: True if finished items from a killed run with the same fingerprint remain.
      log: the logger to report progress to (console + stage log file).
    """

    out_dir: Path
    params: Dict[str, Any]
    fingerprint: str
    resumed: bool
    log: logging.Logger


@dataclasses.dataclass(frozen=True)
class StageMode:
    """What stage calls do in this process.

    Attributes:
      check: decide whether the stage is up to date and raise `StageChecked`; run nothing.
      task: run only this task (1-based) of a sharded stage; None runs whole stages.
    """

    check: bool = False
    task: Optional[int] = None


_MODE: contextvars.ContextVar[StageMode] = contextvars.ContextVar("asrtools_stage_mode", default=StageMode())


def current_stage_mode() -> StageMode:
    """The `StageMode` in effect (whole-stage runs unless `stage_mode` says otherwise)."""
    return _MODE.get()


@contextlib.contextmanager
def stage_mode(mode: StageMode) -> Iterator[None]:
    """Run the enclosed stage calls in `mode`."""
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


@dataclasses.dataclass
class StageStatus:
    """The answer of a stage call in check mode.

    Attributes:
      name: the stage name, e.g. "data features".
      out_dir: the stage directory (absolute).
      up_to_date: True when a run would do nothing.
      reason: why it would run ("" when up to date).
      num_tasks: the tasks of a sharded stage (1 for a stage that runs as one process).
      pending_tasks: the 1-based tasks that still have work (a sharded stage that is not up
        to date; empty when only the merge is left).
    """

    name: str
    out_dir: Path
    up_to_date: bool
    reason: str = ""
    num_tasks: int = 1
    pending_tasks: List[int] = dataclasses.field(default_factory=list)


class StageChecked(Exception):
    """Raised by a stage call in check mode, carrying its `StageStatus`; the CLI reports it."""

    def __init__(self, status: StageStatus) -> None:
        super().__init__(f"{status.name}: {'up to date' if status.up_to_date else 'needs to run'}")
        self.status = status


def stage_log_path(out_dir: Path, task: Optional[int] = None) -> Path:
    """Where a stage's log file lives: `<parent>/log/<dir name>.log`.

    Args:
      out_dir: the stage directory.
      task: a sharded stage's task, logged to `<parent>/log/<dir name>.task-<task>.log`
        (tasks may run on different machines, which must not append to one file).
    """
    out_dir = Path(out_dir)
    suffix = f".task-{task}" if task is not None else ""
    return out_dir.parent / "log" / f"{out_dir.name}{suffix}.log"


def _check_inputs(inputs: Mapping[str, Path]) -> Dict[str, str]:
    fingerprints = {}
    for name, path in inputs.items():
        path = Path(path)
        if not path.exists():
            raise DataError(f"input {name}: {path} does not exist")
        if path.is_dir() and (path / INPROGRESS_MARKER).exists() and not (path / DONE_MARKER).exists():
            raise DataError(
                f"input {name}: {path} is incomplete (its stage did not finish); run that stage first"
            )
        fingerprints[name] = fingerprint_input(path)
    return fingerprints


def _outputs_unchanged(out_dir: Path, marker: Dict[str, Any]) -> bool:
    """Cheap check (size + mtime) that nobody touched the outputs since the marker."""
    recorded = marker.get("outputs", {})
    current = {}
    for rel in recorded:
        path = out_dir / rel
        if not path.is_file():
            return False
        stat = path.stat()
        current[rel] = (stat.st_size, stat.st_mtime_ns)
    return all(current[rel] == (e["size"], e["mtime_ns"]) for rel, e in recorded.items())


def _why_stale(marker: Dict[str, Any], params: Dict[str, Any], inputs: Dict[str, str]) -> str:
    if not marker:
        return "not run yet"
    old_params = marker.get("params", {})
    changed = sorted(k for k in set(old_params) | set(params) if old_params.get(k) != params.get(k))
    if changed:
        return "parameters changed: " + ", ".join(changed)
    old_inputs = marker.get("inputs", {})
    changed = sorted(k for k in set(old_inputs) | set(inputs) if old_inputs.get(k) != inputs.get(k))
    if changed:
        return "inputs changed: " + ", ".join(changed)
    return "outputs were modified since the stage finished"


def _has_outputs(out_dir: Path) -> bool:
    return out_dir.is_dir() and any(not p.name.startswith(CONTROL_PREFIX) for p in out_dir.iterdir())


def _clear_outputs(out_dir: Path) -> None:
    for path in out_dir.iterdir():
        if path.name.startswith(LOCK_PREFIX):  # held locks must keep their files
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _inprogress_record(out_dir: Path) -> Dict[str, Any]:
    """`.inprogress.json` of `out_dir` ({} if missing or unreadable)."""
    try:
        record = json.loads((Path(out_dir) / INPROGRESS_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def inprogress_fingerprint(out_dir: Path) -> Optional[str]:
    """The fingerprint of the run in progress (or killed) in `out_dir`, if any."""
    return _inprogress_record(out_dir).get("fingerprint")


def started_by_tasks(out_dir: Path, fingerprint: str) -> bool:
    """Whether the unfinished run with this fingerprint in `out_dir` was started by the tasks of
    a sharded stage (`asrtools --task I`): its whole-stage command then continues their work
    (merges it) as planned, which is no sign of an interrupted run."""
    record = _inprogress_record(out_dir)
    return record.get("fingerprint") == fingerprint and bool(record.get("by_tasks"))


def prepare_stage_dir(out_dir: Path, fingerprint: str, log: logging.Logger, by_tasks: bool = False) -> bool:
    """Make `out_dir` ready to run; return True when continuing an unfinished run's items.

    Call with the stage lock held exclusively (no other process writes into `out_dir`):
    a stale done-marker is removed, then either the run in progress with the same
    fingerprint continues (its leftover temporary files are deleted) or every old output is
    deleted and `.inprogress.json` records the new fingerprint.

    Args:
      by_tasks: the caller is a task of a sharded stage (recorded, so that the whole-stage
        command that merges the tasks' work does not report it as an interrupted run).
    """
    progress = out_dir / INPROGRESS_MARKER
    had_marker = (out_dir / DONE_MARKER).exists()
    if had_marker:
        (out_dir / DONE_MARKER).unlink()
    if progress.exists():
        record = _inprogress_record(out_dir)
        if record.get("fingerprint") == fingerprint:
            removed = remove_stale_tmp(out_dir)
            if record.get("by_tasks"):
                log.info("continuing the work of the stage's tasks in %s", out_dir)
                if removed:
                    log.warning("%s: %d partial files of an interrupted task dropped", out_dir, removed)
            else:
                log.info("resuming an interrupted run in %s (%d partial files dropped)", out_dir, removed)
            return True
    elif not had_marker and _has_outputs(out_dir):
        raise DataError(
            f"{out_dir}: directory has files that asrtools did not make; "
            "refusing to overwrite them (choose another output directory)"
        )
    _clear_outputs(out_dir)
    atomic_write_json(progress, {"fingerprint": fingerprint, "started": time.time(), "by_tasks": by_tasks})
    return False


class StageLogFile:
    """Attach a file handler for the stage log to the `asrtools` logger while active."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handler: Optional[logging.Handler] = None

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.handler.setLevel(logging.INFO)
        if logger.getEffectiveLevel() > logging.INFO:  # the stage log always gets progress
            logger.setLevel(logging.INFO)
        logger.addHandler(self.handler)

    def __exit__(self, *exc: Any) -> None:
        if self.handler is not None:
            logger.removeHandler(self.handler)
            self.handler.close()


@dataclasses.dataclass
class StageEvaluation:
    """Where a stage stands before it runs (see `evaluate_stage`)."""

    params: Dict[str, Any]
    input_fingerprints: Dict[str, str]
    fingerprint: str
    up_to_date: bool
    reason: str


def evaluate_stage(out_dir: Path, name: str, params: Mapping[str, Any], inputs: Mapping[str, Path],
                   force: bool = False) -> StageEvaluation:
    """Fingerprint a stage and compare it with its done-marker (call with the stage lock held).

    Args:
      out_dir: the stage directory.
      name, params, inputs, force: as for `run_stage`.

    Returns:
      The normalised parameters, input fingerprints, stage fingerprint, whether it is up to
      date and, if not, why it has to run.
    """
    out_dir = Path(out_dir)
    params = json.loads(json.dumps(dict(params), default=str))
    input_fps = _check_inputs(inputs)
    fingerprint = hash_json({"stage": name, "params": params, "inputs": input_fps})
    marker = read_marker(out_dir)
    up_to_date = not force and marker.get("fingerprint") == fingerprint and _outputs_unchanged(out_dir, marker)
    reason = ""
    if not up_to_date:
        reason = "forced" if force else _why_stale(marker, params, input_fps)
        if not marker and (out_dir / INPROGRESS_MARKER).exists():
            if started_by_tasks(out_dir, fingerprint):
                reason = "continuing the work of its tasks"
            else:
                reason = "an earlier run did not finish"
    return StageEvaluation(params, input_fps, fingerprint, up_to_date, reason)


def _report_check(name: str, out_dir: Path, evaluation: StageEvaluation, **sharding: Any) -> StageChecked:
    """Log the answer of check mode and wrap it in the exception that carries it to the CLI."""
    if evaluation.up_to_date:
        logger.info("[%s] %s: up to date, nothing to do", name, out_dir)
    else:
        logger.info("[%s] %s: needs to run (%s)", name, out_dir, evaluation.reason)
    status = StageStatus(name, out_dir.resolve(), evaluation.up_to_date, evaluation.reason, **sharding)
    return StageChecked(status)


def run_whole_stage(
    out_dir: Path,
    name: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Path],
    body: Callable[[StageContext], None],
    force: bool = False,
    check_sharding: Optional[Callable[[StageContext], Dict[str, Any]]] = None,
    validate: Optional[Callable[[], None]] = None,
) -> bool:
    """`run_stage` without the task-mode guard; sharded stages call it for their whole run.

    Args:
      check_sharding: in check mode, for a stage that is not up to date: the sharding
        fields of its `StageStatus` (`num_tasks`, `pending_tasks`), given a context whose
        `resumed` says whether finished items would be kept.
      Others: as for `run_stage`.
    """
    out_dir = Path(out_dir)
    mode = current_stage_mode()
    # A check takes the lock to see whether a job is still running the stage, but creates nothing.
    lock = contextlib.nullcontext() if mode.check and not out_dir.is_dir() else StageLock(out_dir)
    with lock:
        evaluation = evaluate_stage(out_dir, name, params, inputs, force)
        params = evaluation.params
        fingerprint = evaluation.fingerprint
        if mode.check:
            sharding: Dict[str, Any] = {}
            if check_sharding is not None and not evaluation.up_to_date:
                resumable = inprogress_fingerprint(out_dir) == fingerprint
                sharding = check_sharding(StageContext(out_dir, params, fingerprint, resumable, logger))
            raise _report_check(name, out_dir, evaluation, **sharding)
        if evaluation.up_to_date:
            logger.info("[%s] %s: up to date, nothing to do", name, out_dir)
            return False
        if validate is not None:
            validate()
        with StageLogFile(stage_log_path(out_dir)):
            logger.info("[%s] %s: running (%s)", name, out_dir, evaluation.reason)
            start = time.time()
            resumed = prepare_stage_dir(out_dir, fingerprint, logger)
            body(StageContext(out_dir, params, fingerprint, resumed, logger))
            remove_stale_tmp(out_dir)
            outputs = output_manifest(out_dir)
            atomic_write_json(
                out_dir / DONE_MARKER,
                {
                    "stage": name,
                    "fingerprint": fingerprint,
                    "params": params,
                    "inputs": evaluation.input_fingerprints,
                    "outputs": outputs,
                    "outputs_digest": outputs_digest(outputs),
                    "asrtools_version": asrtools.__version__,
                    "provenance": provenance(),
                    "seconds": round(time.time() - start, 3),
                },
            )
            (out_dir / INPROGRESS_MARKER).unlink()
            logger.info("[%s] %s: done in %.1f s", name, out_dir, time.time() - start)
    return True


def run_stage(
    out_dir: Path,
    name: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Path],
    body: Callable[[StageContext], None],
    force: bool = False,
    validate: Optional[Callable[[], None]] = None,
) -> bool:
    """Run `body` as a resumable, fingerprinted stage writing into `out_dir`.

    Args:
      out_dir: the stage's output directory (created if missing).
      name: the stage name as shown to users, e.g. "data synth".
      params: every parameter that affects the outputs (JSON-serialisable).
      inputs: named input files or directories; their content fingerprints enter the
        stage fingerprint, and an unfinished upstream stage directory is refused.
      body: the work; it writes outputs into `ctx.out_dir`, each file atomically, and
        skips items already finished when `ctx.resumed` is True.
      force: rerun even if the done-marker matches.
      validate: checks the inputs at the door: called once the stage is known to need a
        run, before anything in `out_dir` is touched (no marker removed, no output cleared,
        nothing logged), so a bad input fails with its one-line error and leaves the
        directory as it was. Bodies keep what it loads (e.g. in a closure).

    Returns:
      True if the stage ran, False if it was already up to date.

    Raises:
      StageChecked: in check mode (`StageMode.check`), instead of running anything.
      ConfigError: in task mode: this stage is not sharded.
    """
    mode = current_stage_mode()
    if mode.task is not None:
        raise ConfigError(f"--task {mode.task}: '{name}' is not a sharded stage; run it without --task")
    return run_whole_stage(out_dir, name, params, inputs, body, force, validate=validate)
