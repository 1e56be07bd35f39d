"""Sharded stages (asrtools.pipeline.sharding) and the stage modes behind `asrtools --check` / `--task`.

A toy stage writes one file per unit and records every unit it computes, so the tests see
which process did what: a whole run in N local processes, single tasks (as SLURM array
tasks run them), check mode's answer, locks between tasks and whole runs, and failures.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest
from click.testing import CliRunner

from asrtools.cli import CHECK_NEEDS_RUN, CHECK_NOT_A_STAGE, cli
from asrtools.errors import ConfigError, DataError, StageLockedError
from asrtools.pipeline import DONE_MARKER, StageChecked, StageLock, StageMode, read_marker, stage_mode
from asrtools.pipeline.atomic import atomic_write_text
from asrtools.pipeline.sharding import ShardedWork, run_sharded_stage, task_units

from conftest import needs_tts, run_asrtools


class ToyWork(ShardedWork):
    """Unit k writes unit-<k>.txt; merge concatenates them; `fail` makes one unit raise."""

    def __init__(self, out_dir: Path, num_units: int, value: str, fail: int = -1, crash: int = -1) -> None:
        self.out_dir, self.units, self.value, self.fail, self.crash = out_dir, num_units, value, fail, crash

    def num_units(self) -> int:
        return self.units

    def unit_done(self, index: int) -> bool:
        return (self.out_dir / f"unit-{index}.txt").is_file()

    def setup(self) -> None:
        with open(self.out_dir.parent / "setups.log", "a") as log:
            log.write(f"{os.getpid()}\n")

    def run_units(self, indices: Sequence[int], progress, processes: int) -> None:
        for index in indices:
            if index == self.fail:
                raise DataError(f"unit {index}: bad input")
            if index == self.crash:
                raise ZeroDivisionError("a bug")
            atomic_write_text(self.out_dir / f"unit-{index}.txt", f"{self.value} {index}\n")
            with open(self.out_dir.parent / "computed.log", "a") as log:
                log.write(f"{index} {os.getpid()} {processes}\n")
            progress(1)

    def merge(self) -> None:
        text = "".join((self.out_dir / f"unit-{k}.txt").read_text() for k in range(self.units))
        atomic_write_text(self.out_dir / "all.txt", text)


def toy_stage(out_dir: Path, num_tasks: int, value: str = "v", num_units: int = 7, **kwargs) -> bool:
    fail, crash = kwargs.pop("fail", -1), kwargs.pop("crash", -1)
    return run_sharded_stage(out_dir, "toy", {"value": value, "units": num_units}, {},
                             lambda ctx: ToyWork(ctx.out_dir, num_units, value, fail, crash), num_tasks, **kwargs)


def computed(root: Path) -> List[List[int]]:
    log = root / "computed.log"
    return [list(map(int, line.split())) for line in log.read_text().splitlines()] if log.exists() else []


def check(out_dir: Path, num_tasks: int, **kwargs):
    with stage_mode(StageMode(check=True)), pytest.raises(StageChecked) as checked:
        toy_stage(out_dir, num_tasks, **kwargs)
    return checked.value.status


def test_task_units_are_round_robin_and_cover_every_unit():
    assert task_units(7, 3, 1) == [0, 3, 6] and task_units(7, 3, 2) == [1, 4] and task_units(7, 3, 3) == [2, 5]
    assert task_units(2, 3, 3) == []
    for n in (1, 2, 5, 9):
        assert sorted(k for t in range(1, n + 1) for k in task_units(7, n, t)) == list(range(7))


def test_merge_after_tasks_is_no_false_alarm_but_a_killed_run_is_reported(tmp_path, caplog):
    out = tmp_path / "s"
    for task in (1, 2):
        with stage_mode(StageMode(task=task)):
            toy_stage(out, 2)
    assert check(out, 2).reason == "continuing the work of its tasks"
    caplog.clear()
    with caplog.at_level("INFO", logger="asrtools"):
        assert toy_stage(out, 2)  # the merge job
    text = caplog.text
    assert "continuing the work of the stage's tasks" in text
    assert "did not finish" not in text and "interrupted" not in text
    # A whole run that was killed (no tasks involved) is still reported as one.
    killed = tmp_path / "k"
    with pytest.raises(DataError):
        toy_stage(killed, 1, fail=3)
    assert check(killed, 1).reason == "an earlier run did not finish"
    caplog.clear()
    with caplog.at_level("INFO", logger="asrtools"):
        assert toy_stage(killed, 1)
    assert "an earlier run did not finish" in caplog.text and "resuming an interrupted run" in caplog.text


def test_result_does_not_depend_on_the_number_of_processes(tmp_path):
    assert toy_stage(tmp_path / "one" / "s", 1)
    assert toy_stage(tmp_path / "three" / "s", 3)
    assert (tmp_path / "one" / "s" / "all.txt").read_text() == (tmp_path / "three" / "s" / "all.txt").read_text()
    assert read_marker(tmp_path / "one" / "s")["outputs_digest"] == read_marker(tmp_path / "three" / "s")["outputs_digest"]
    # Three processes, each with its task's units, told that three run at once; set-up ran once.
    runs = computed(tmp_path / "three")
    assert sorted(k for k, _, _ in runs) == list(range(7))
    by_pid = {}
    for unit, pid, processes in runs:
        by_pid.setdefault(pid, []).append(unit)
        assert processes == 3
    assert sorted(map(sorted, by_pid.values())) == [[0, 3, 6], [1, 4], [2, 5]]
    assert len((tmp_path / "three" / "setups.log").read_text().split()) == 1
    assert not toy_stage(tmp_path / "three" / "s", 3)  # up to date: nothing runs
    assert toy_stage(tmp_path / "three" / "s", 2) is False  # the task count is no parameter


def test_tasks_then_merge_as_slurm_runs_them(tmp_path):
    out = tmp_path / "s"
    status = check(out, 3)
    assert (status.up_to_date, status.num_tasks, status.pending_tasks) == (False, 3, [1, 2, 3])
    assert not out.exists()  # a check creates nothing
    with stage_mode(StageMode(task=2)):
        assert toy_stage(out, 3)
    assert sorted(k for k, _, _ in computed(tmp_path)) == [1, 4]
    assert not (out / DONE_MARKER).exists() and not (out / "all.txt").exists()
    assert check(out, 3).pending_tasks == [1, 3]  # what a failed or unfinished array reruns
    for task in (1, 3):
        with stage_mode(StageMode(task=task)):
            toy_stage(out, 3)
    assert check(out, 3).pending_tasks == []  # only the merge is left
    before = len(computed(tmp_path))
    assert toy_stage(out, 3)  # the whole-stage command merges and writes the marker
    assert len(computed(tmp_path)) == before == 7
    assert len((tmp_path / "setups.log").read_text().split()) == 1
    assert toy_stage(tmp_path / "ref" / "s", 1)
    assert (out / "all.txt").read_text() == (tmp_path / "ref" / "s" / "all.txt").read_text()
    assert check(out, 3).up_to_date
    with stage_mode(StageMode(task=1)):
        assert not toy_stage(out, 3)  # a task of an up-to-date stage does nothing


def test_changed_parameters_restart_the_tasks_from_scratch(tmp_path):
    out = tmp_path / "s"
    with stage_mode(StageMode(task=1)):
        toy_stage(out, 2, value="old")
    with stage_mode(StageMode(task=2)):
        toy_stage(out, 2, value="new")  # a new fingerprint: the old units are deleted
    assert sorted(p.name for p in out.glob("unit-*")) == ["unit-1.txt", "unit-3.txt", "unit-5.txt"]
    assert check(out, 2, value="new").pending_tasks == [1]


def test_locks_between_tasks_and_whole_runs(tmp_path):
    out = tmp_path / "s"
    with stage_mode(StageMode(task=1)):
        toy_stage(out, 2)
    with StageLock(out, shared=True):  # a task of this run still works: siblings may run, a merge may not
        with stage_mode(StageMode(task=2)):
            assert toy_stage(out, 2)
        with pytest.raises(StageLockedError, match="in use by pid"):
            toy_stage(out, 2)
        with pytest.raises(StageLockedError):  # nor may a run with other parameters clean up
            with stage_mode(StageMode(task=1)):
                toy_stage(out, 2, value="other")
        with pytest.raises(StageLockedError):  # and a check says a job still works here
            check(out, 2)
    with StageLock(out):  # a whole run works: no task may start
        with pytest.raises(StageLockedError):
            with stage_mode(StageMode(task=2)):
                toy_stage(out, 2)


def test_bad_task_numbers_and_unsharded_stages(tmp_path):
    from asrtools.pipeline import run_stage

    with stage_mode(StageMode(task=4)), pytest.raises(ConfigError, match=r"--task 4: 'toy' runs as 3 task"):
        toy_stage(tmp_path / "s", 3)
    with stage_mode(StageMode(task=1)), pytest.raises(ConfigError, match="'plain' is not a sharded stage"):
        run_stage(tmp_path / "p", "plain", {}, {}, lambda ctx: None)
    with pytest.raises(ConfigError, match="must be >= 1"):
        toy_stage(tmp_path / "z", 0)


def test_a_failing_process_stops_the_stage_with_its_one_line_error(tmp_path):
    with pytest.raises(DataError, match="^unit 4: bad input$"):
        toy_stage(tmp_path / "s", 3, fail=4)
    assert not (tmp_path / "s" / DONE_MARKER).exists()
    assert 4 not in [k for k, _, _ in computed(tmp_path)]
    assert toy_stage(tmp_path / "s", 3)  # a rerun resumes: finished units are kept, none is computed twice
    assert sorted(k for k, _, _ in computed(tmp_path)) == list(range(7))
    assert (tmp_path / "s" / "all.txt").read_text() == "".join(f"v {k}\n" for k in range(7))
    with pytest.raises(RuntimeError, match=r"(?s)task 3 failed: Traceback.*ZeroDivisionError: a bug"):  # a bug: its traceback
        toy_stage(tmp_path / "t", 3, crash=5)


@needs_tts  # planning the corpus reads the text sources that scripts/setup_env.sh installs with the voices
def test_check_command_line(tmp_path):
    args = ["data", "synth", "--preset", "tiny", "--out-dir", str(tmp_path / "synth"), "-j", "3"]
    result = CliRunner().invoke(cli, ["--check", *args])
    assert result.exit_code == CHECK_NEEDS_RUN, result.output
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines == {"state": "run", "stage": "data synth", "out_dir": str((tmp_path / "synth").resolve()),
                     "tasks": "3", "pending": "1 2 3"}
    result = CliRunner().invoke(cli, ["--check", "data", "validate", str(tmp_path)])
    assert result.exit_code == CHECK_NOT_A_STAGE and "'data validate' is not a stage command" in result.output
    result = CliRunner().invoke(cli, ["--check", "--task", "1", *args])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["--check", "decode", "--exp-dir", str(tmp_path), "--cuts", "c", "--bpe-model",
                                      "b", "--out-dir", str(tmp_path / "d"), "--device", "cuda"])
    assert result.exit_code == 1 and "input checkpoint" in result.output  # the check validates the inputs


@needs_tts
def test_feature_tasks_in_separate_processes_equal_one_process(tiny_corpus, tmp_path):
    """`asrtools --task I data features` in concurrent processes, then the merge: byte-identical."""
    manifests = str(tiny_corpus / "manifests")
    common = ["data", "features", "--manifest-dir", manifests, "--set", "shard_size=5", "-j", "3"]
    run_asrtools([*common[:-2], "-j", "1", "--out-dir", str(tmp_path / "one")])
    tasks = [subprocess.Popen([sys.executable, "-m", "asrtools.cli.main", "--task", str(t), *common,
                               "--out-dir", str(tmp_path / "three")], stderr=subprocess.PIPE, text=True)
             for t in (1, 2, 3)]
    for proc in tasks:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    merged = run_asrtools(["--check", *common, "--out-dir", str(tmp_path / "three")], check=False)
    assert merged.returncode == CHECK_NEEDS_RUN and "pending=\n" in merged.stdout
    run_asrtools([*common, "--out-dir", str(tmp_path / "three")])
    one, three = read_marker(tmp_path / "one"), read_marker(tmp_path / "three")
    assert len([k for k in one["outputs"] if k.endswith(".lca")]) >= 3
    for rel, entry in one["outputs"].items():
        ours = (tmp_path / "three" / rel).read_bytes()
        if rel.endswith(".jsonl.gz"):  # the manifests name their own feature files
            import gzip

            ours = gzip.decompress(ours).replace(str(tmp_path / "three").encode(), str(tmp_path / "one").encode())
            assert ours == gzip.decompress((tmp_path / "one" / rel).read_bytes()), rel
        else:
            assert three["outputs"][rel]["sha256"] == entry["sha256"], rel


def test_input_checks_run_in_a_forked_child_and_raise_the_same_error_here():
    from asrtools.errors import ConfigError
    from asrtools.pipeline.sharding import call_in_forked_child

    parent = os.getpid()
    seen = []

    def check() -> None:
        seen.append(os.getpid())
        if os.getpid() != parent:
            raise ConfigError("--chunk-frames 30 must be a positive multiple of 4")

    with pytest.raises(ConfigError, match="^--chunk-frames 30 must be a positive multiple of 4$"):
        call_in_forked_child(check)
    assert seen == []  # it ran in the child: nothing it did (e.g. torch's thread pool) is in this process
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        call_in_forked_child(lambda: 1 / 0)
    call_in_forked_child(lambda: None)
