"""Sharded stages: work split into units that N tasks run independently, then merged.

Kaldi's `JOB=1:N` habit on top of the stage contract. A sharded stage describes its work
as a `ShardedWork`: a deterministic list of *units* (a feature shard, an utterance to
synthesise, a block of cuts to decode), each written atomically by `run_units` and
recognisable as finished and valid by `unit_done`, an optional one-time `setup`, and a
`merge` that combines the finished units into the stage's outputs. Task I of N owns the
units I-1, I-1+N, I-1+2N, ... (round robin), so what a unit writes never depends on N and the
merged result is byte-identical whatever the number of tasks.

`run_sharded_stage` runs such a stage in one of three ways (`asrtools.pipeline.stage.StageMode`):

- whole (default): lock, fingerprint, skip if up to date, set up, run every unfinished
  unit in N local processes (one per task), merge, write the done-marker;
- task I (`asrtools --task I ...`, a SLURM array task): take the stage lock *shared*,
  prepare the directory and set up once (the first task does it under `.lock.setup`,
  the others wait), run task I's unfinished units, write no marker. Tasks run
  concurrently, on any machines that share the directory;
- check (`asrtools --check ...`): report whether the stage is up to date and which tasks
  still have work, so a job runner submits only those, then the whole-stage command,
  which finds every unit done and only merges (it owns the done-marker).
"""
from __future__ import annotations

import abc
import contextlib
import ctypes
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from asrtools import errors
from asrtools.errors import ConfigError
from asrtools.pipeline.atomic import atomic_write_json
from asrtools.pipeline.lock import LOCK_PREFIX, StageLock, WaitLock
from asrtools.pipeline.stage import (
    DONE_MARKER,
    StageContext,
    StageLogFile,
    current_stage_mode,
    evaluate_stage,
    inprogress_fingerprint,
    prepare_stage_dir,
    run_whole_stage,
    stage_log_path,
)
from asrtools.utils.progress import progress

SETUP_MARKER = ".setup.json"
SETUP_LOCK = LOCK_PREFIX + ".setup"

logger = logging.getLogger("asrtools")

Progress = Callable[[int], None]


class ShardedWork(abc.ABC):
    """A stage's work as numbered units that independent processes can run in any order.

    A stage builds it from its parameters and inputs (`plan(ctx)` in `run_sharded_stage`);
    every process that builds it must get the same units in the same order. Building it
    must not write anything: check mode builds it on the submit host.
    """

    label = "units"  # progress bar title

    @abc.abstractmethod
    def num_units(self) -> int:
        """How many units there are."""

    @abc.abstractmethod
    def unit_done(self, index: int) -> bool:
        """Whether unit `index` is finished and its output valid (a rerun skips it)."""

    @abc.abstractmethod
    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        """Run these units here, one after another, writing each unit's output atomically.

        Args:
          indices: the units to run (unfinished ones, in increasing order).
          progress: call with a count of items (`unit_size` units) as they finish.
          processes: how many processes run units on this machine at the same time;
            share CPU threads accordingly.
        """

    @abc.abstractmethod
    def merge(self) -> None:
        """Combine the finished units into the stage's outputs (every unit is done)."""

    def setup(self) -> None:
        """Work every unit needs, done once per stage run before any unit (default: none)."""

    def unit_size(self, index: int) -> int:
        """Items in unit `index`, for progress bars (default 1)."""
        return 1


def task_units(num_units: int, num_tasks: int, task: int) -> List[int]:
    """The units task `task` (1-based) of `num_tasks` owns: every num_tasks-th, from task - 1."""
    return list(range(task - 1, num_units, num_tasks))


def pending_tasks(work: ShardedWork, num_tasks: int, resumable: bool) -> List[int]:
    """The 1-based tasks that own at least one unit still to run.

    Args:
      work: the planned work.
      num_tasks: N.
      resumable: finished units would be kept; otherwise every unit counts as unfinished.
    """
    pending = []
    for task in range(1, num_tasks + 1):
        units = task_units(work.num_units(), num_tasks, task)
        if any(not resumable or not work.unit_done(k) for k in units):
            pending.append(task)
    return pending


def run_sharded_stage(
    out_dir: Path,
    name: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, Path],
    plan: Callable[[StageContext], ShardedWork],
    num_tasks: int,
    force: bool = False,
    validate: Optional[Callable[[], None]] = None,
) -> bool:
    """Run a sharded stage as a whole, as one task, or check it (see the module docstring).

    Args:
      out_dir: the stage directory.
      name: the stage name, e.g. "data features".
      params: every parameter that affects the outputs (not `num_tasks`: outputs do not
        depend on it).
      inputs: named input files or directories.
      plan: builds the work from the stage context (it must not write).
      num_tasks: N, the number of tasks (local processes, or array tasks under SLURM).
      force: rerun even if the done-marker matches.
      validate: checks the inputs at the door, as for `run_stage` (in a whole run; neither
        in check mode nor in one task of an array).

    Returns:
      True if anything ran, False if the stage was up to date.
    """
    if num_tasks < 1:
        raise ConfigError(f"{name}: the number of jobs must be >= 1, got {num_tasks}")
    task = current_stage_mode().task
    if task is not None:
        return _run_task(Path(out_dir), name, params, inputs, plan, num_tasks, task, force)

    def body(ctx: StageContext) -> None:
        work = plan(ctx)
        _setup_once(ctx, work)
        run_work(work, num_tasks, name)

    def check_sharding(ctx: StageContext) -> Dict[str, Any]:
        return {"num_tasks": num_tasks, "pending_tasks": pending_tasks(plan(ctx), num_tasks, ctx.resumed)}

    checked = None if validate is None else (lambda: call_in_forked_child(validate))
    return run_whole_stage(Path(out_dir), name, params, inputs, body, force, check_sharding, checked)


def call_in_forked_child(fn: Callable[[], None]) -> None:
    """Run `fn` in a forked child process; its `AsrtoolsError` is raised here as the same error.

    A sharded stage forks its task processes after checking its inputs. A check that builds a
    model runs torch ops, which start torch's OpenMP thread pool, and a pool inherited through
    fork deadlocks the children; checking in a throw-away child keeps this process fork-safe.
    """
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)

    def child() -> None:
        try:
            fn()
            writer.send(None)
        except errors.AsrtoolsError as err:
            writer.send((type(err).__name__, str(err)))
        except BaseException:  # a bug: keep its traceback
            writer.send(("", traceback.format_exc()))

    process = context.Process(target=child, name="check-inputs")
    process.start()
    writer.close()
    try:
        outcome = reader.recv()
    except EOFError:
        outcome = ("", "the input check died")
    finally:
        reader.close()
        process.join()
    if outcome is not None:
        _raise_relayed(*outcome, "checking the inputs failed")


def _raise_relayed(kind: str, message: str, what: str) -> None:
    """Raise here the error a child process reported: an `AsrtoolsError` (named by `kind`) as
    the same one-line error, anything else as a RuntimeError "`what`: `message`"."""
    error_class = getattr(errors, kind, None)
    if isinstance(error_class, type) and issubclass(error_class, errors.AsrtoolsError):
        raise error_class(message)
    raise RuntimeError(f"{what}: {message}")


def run_work(work: ShardedWork, num_tasks: int, name: str = "") -> None:
    """Run every unfinished unit of `work` here, task by task in `num_tasks` processes, then merge.

    The body of a whole sharded stage (after `setup`); also usable outside the stage
    machinery, e.g. on a directory whose units a test prepared.

    Args:
      work: the planned work.
      num_tasks: N; task I runs the unfinished units of `task_units(..., N, I)`.
      name: the stage name for the log line.
    """
    todo = {t: [k for k in task_units(work.num_units(), num_tasks, t) if not work.unit_done(k)]
            for t in range(1, num_tasks + 1)}
    todo = {t: units for t, units in todo.items() if units}
    if todo:
        left = sum(len(units) for units in todo.values())
        logger.info("[%s] %d of %d units to run in %d process(es)", name, left, work.num_units(), len(todo))
        run_tasks_locally(work, todo)
    work.merge()


def _setup_once(ctx: StageContext, work: ShardedWork) -> None:
    """Run `work.setup()` unless this run (fingerprint) already did (`.setup.json`)."""
    marker = ctx.out_dir / SETUP_MARKER
    try:
        done = json.loads(marker.read_text()).get("fingerprint") == ctx.fingerprint
    except (OSError, ValueError, AttributeError):
        done = False
    if not done:
        work.setup()
        atomic_write_json(marker, {"fingerprint": ctx.fingerprint})


def _run_task(out_dir: Path, name: str, params: Mapping[str, Any], inputs: Mapping[str, Path],
              plan: Callable[[StageContext], ShardedWork], num_tasks: int, task: int, force: bool) -> bool:
    if task > num_tasks:
        raise ConfigError(f"--task {task}: '{name}' runs as {num_tasks} task(s) (-j {num_tasks})")
    with contextlib.ExitStack() as held:
        # Tasks pass here one at a time: the first prepares the directory and sets up, the
        # others find it done. Only then do they take the stage lock (shared), so a sibling
        # waiting here never blocks the first one's exclusive hold for the preparation.
        with WaitLock(out_dir / SETUP_LOCK):
            evaluation = evaluate_stage(out_dir, name, params, inputs, force)
            if evaluation.up_to_date:
                logger.info("[%s] %s: up to date, nothing to do", name, out_dir)
                return False
            fresh = inprogress_fingerprint(out_dir) != evaluation.fingerprint or (out_dir / DONE_MARKER).exists()
            # Refused while a whole-stage run works here, or (to prepare) while tasks of a
            # run with other parameters still do.
            lock = held.enter_context(StageLock(out_dir, shared=not fresh))
            held.enter_context(StageLogFile(stage_log_path(out_dir, task)))
            if fresh:
                logger.info("[%s] %s: running (%s)", name, out_dir, evaluation.reason)
                prepare_stage_dir(out_dir, evaluation.fingerprint, logger, by_tasks=True)
                lock.downgrade()
            ctx = StageContext(out_dir, evaluation.params, evaluation.fingerprint, True, logger)
            work = plan(ctx)
            _setup_once(ctx, work)
        units = [k for k in task_units(work.num_units(), num_tasks, task) if not work.unit_done(k)]
        logger.info("[%s] %s: task %d/%d: %d unit(s) to run", name, out_dir, task, num_tasks, len(units))
        with progress(total=sum(work.unit_size(k) for k in units), desc=f"{work.label} (task {task}/{num_tasks})") \
                as bar:
            work.run_units(units, bar.update, 1)
        logger.info("[%s] %s: task %d/%d done; the stage is complete once "
                    "the command runs without --task", name, out_dir, task, num_tasks)
    return True


def run_tasks_locally(work: ShardedWork, todo: Dict[int, List[int]]) -> None:
    """Run each task's units, one process per task (here when there is only one).

    Children are forked, so they share the planned work without pickling it; the model
    or other heavy state of a task should be created in `run_units`. A child dies with
    this process (even on SIGKILL); the first failure stops the others and is raised here:
    an `AsrtoolsError` as the same one-line error, anything else with the child's traceback.

    Args:
      work: the planned work (already set up).
      todo: task -> the units it must run.
    """
    total = sum(work.unit_size(k) for units in todo.values() for k in units)
    if len(todo) == 1:
        with progress(total=total, desc=work.label) as bar:
            work.run_units(next(iter(todo.values())), bar.update, 1)
        return
    context = multiprocessing.get_context("fork")
    children: List[Tuple[int, Any, multiprocessing.connection.Connection]] = []
    failure: Optional[Tuple[int, str, str]] = None
    try:
        for task, units in todo.items():
            reader, writer = context.Pipe(duplex=False)
            child = context.Process(target=_task_child, args=(work, units, writer, len(todo), os.getpid()),
                                    name=f"task-{task}", daemon=False)
            child.start()
            writer.close()
            children.append((task, child, reader))
        with progress(total=total, desc=work.label) as bar:
            open_readers = {reader: task for task, _, reader in children}
            while open_readers and failure is None:
                for reader in multiprocessing.connection.wait(list(open_readers)):
                    try:
                        kind, value = reader.recv()
                    except EOFError:
                        del open_readers[reader]
                        continue
                    if kind == "progress":
                        bar.update(value)
                    elif kind == "error":
                        failure = (open_readers[reader], *value)
                        break
        for task, child, _ in children:
            if failure is not None:
                child.terminate()
            child.join()
            if failure is None and child.exitcode != 0:
                failure = (task, "", f"exited with status {child.exitcode}")
    finally:
        for _, child, reader in children:
            if child.is_alive():
                child.terminate()
                child.join()
            reader.close()
    if failure is not None:
        task, kind, message = failure
        _raise_relayed(kind, message, f"task {task} failed")


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _task_child(work: ShardedWork, units: List[int], writer: Any, processes: int, parent: int) -> None:
    _die_with_parent(parent)
    try:
        work.run_units(units, lambda n: writer.send(("progress", n)), processes)
    except errors.AsrtoolsError as err:
        writer.send(("error", (type(err).__name__, " ".join(str(err).split()))))
        sys.exit(1)
    except BaseException:  # a bug: hand the traceback to the parent
        writer.send(("error", ("", traceback.format_exc())))
        sys.exit(1)
    finally:
        writer.close()
