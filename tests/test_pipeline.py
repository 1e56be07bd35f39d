"""The stage contract: skip-if-done, rerun on change (incl. downstream), kill/resume, lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asrtools.errors import DataError, StageLockedError
from asrtools.pipeline import DONE_MARKER, INPROGRESS_MARKER, StageLock, atomic_path, read_marker, run_stage

WORKER = Path(__file__).with_name("stage_worker.py")


def write_stage(out_dir: Path, value: str, inputs=None, calls=None, **kwargs) -> bool:
    def body(ctx):
        if calls is not None:
            calls.append(ctx.out_dir.name)
        text = value
        for path in (inputs or {}).values():
            text += Path(path, "out.txt").read_text() if Path(path).is_dir() else Path(path).read_text()
        (ctx.out_dir / "out.txt").write_text(text)

    return run_stage(out_dir, "write", {"value": value}, inputs or {}, body, **kwargs)


def test_skip_when_up_to_date(tmp_path, caplog):
    calls = []
    assert write_stage(tmp_path / "a", "x", calls=calls)
    assert not write_stage(tmp_path / "a", "x", calls=calls)
    assert calls == ["a"]
    marker = read_marker(tmp_path / "a")
    assert marker["params"] == {"value": "x"} and "out.txt" in marker["outputs"]


def test_rerun_on_parameter_change_and_downstream(tmp_path):
    calls = []
    write_stage(tmp_path / "up", "x", calls=calls)
    write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"}, calls=calls)
    write_stage(tmp_path / "other", "o", calls=calls)
    calls.clear()
    # same parameters everywhere: nothing runs
    write_stage(tmp_path / "up", "x", calls=calls)
    write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"}, calls=calls)
    write_stage(tmp_path / "other", "o", calls=calls)
    assert calls == []
    # upstream parameter changes: upstream and downstream rerun, the unrelated stage does not
    write_stage(tmp_path / "up", "y", calls=calls)
    write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"}, calls=calls)
    write_stage(tmp_path / "other", "o", calls=calls)
    assert calls == ["up", "down"]
    assert (tmp_path / "down" / "out.txt").read_text() == "dy"


def test_upstream_rerun_with_identical_outputs_does_not_rerun_downstream(tmp_path):
    calls = []
    write_stage(tmp_path / "up", "x", calls=calls)
    write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"}, calls=calls)
    write_stage(tmp_path / "up", "x", calls=calls, force=True)
    write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"}, calls=calls)
    assert calls == ["up", "down", "up"]


def test_rerun_when_input_file_or_output_changes(tmp_path):
    calls = []
    source = tmp_path / "source.txt"
    source.write_text("1")
    write_stage(tmp_path / "s", "v", inputs={"src": source}, calls=calls)
    source.write_text("2")
    write_stage(tmp_path / "s", "v", inputs={"src": source}, calls=calls)
    assert (tmp_path / "s" / "out.txt").read_text() == "v2"
    (tmp_path / "s" / "out.txt").write_text("edited by hand")
    write_stage(tmp_path / "s", "v", inputs={"src": source}, calls=calls)
    assert calls == ["s", "s", "s"]
    assert (tmp_path / "s" / "out.txt").read_text() == "v2"


def test_failed_stage_leaves_no_marker_and_blocks_downstream(tmp_path):
    def fail(ctx):
        (ctx.out_dir / "half.txt").write_text("partial")
        raise DataError("bad input")

    with pytest.raises(DataError):
        run_stage(tmp_path / "up", "fail", {}, {}, fail)
    assert not (tmp_path / "up" / DONE_MARKER).exists()
    assert (tmp_path / "up" / INPROGRESS_MARKER).exists()
    with pytest.raises(DataError, match="incomplete"):
        write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "up"})
    with pytest.raises(DataError, match="does not exist"):
        write_stage(tmp_path / "down", "d", inputs={"up": tmp_path / "missing"})


def test_refuses_directory_not_made_by_asrtools(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("user data")
    with pytest.raises(DataError, match="did not make"):
        write_stage(mine, "x")
    assert (mine / "precious.txt").read_text() == "user data"


def test_lock_refuses_second_holder(tmp_path):
    with StageLock(tmp_path / "s"):
        with pytest.raises(StageLockedError, match="in use by pid"):
            write_stage(tmp_path / "s", "x")
    assert write_stage(tmp_path / "s", "x")


def test_lock_refuses_second_process(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, str(WORKER), str(out), "50", "0.2"])
    try:
        deadline = time.time() + 30
        while not (out / INPROGRESS_MARKER).exists() and time.time() < deadline:
            time.sleep(0.05)
        second = subprocess.run([sys.executable, str(WORKER), str(out), "50", "0.2"], capture_output=True, text=True)
        assert second.returncode != 0
        assert "stage directory is in use" in second.stderr
    finally:
        proc.kill()
        proc.wait()


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "f.jsonl.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".jsonl.gz") and tmp.parent == tmp_path
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_sigkill_and_resume_is_identical(tmp_path):
    reference = tmp_path / "ref" / "out"
    subprocess.run([sys.executable, str(WORKER), str(reference), "12", "0"], check=True, capture_output=True)

    out = tmp_path / "killed" / "out"
    proc = subprocess.Popen([sys.executable, str(WORKER), str(out), "12", "0.15"], stderr=subprocess.DEVNULL)
    log = out.parent / "computed.log"
    deadline = time.time() + 60
    while (not log.exists() or len(log.read_text().split()) < 4) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / DONE_MARKER).exists()
    before = log.read_text().split()
    assert 4 <= len(before) < 12

    resumed = subprocess.run([sys.executable, str(WORKER), str(out), "12", "0"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    computed = log.read_text().split()
    assert sorted(map(int, computed)) == list(range(12)), "every item computed exactly once"
    for i in range(12):
        assert (out / f"item-{i}.txt").read_bytes() == (reference / f"item-{i}.txt").read_bytes()
    ref_marker, marker = read_marker(reference), read_marker(out)
    assert marker["outputs_digest"] == ref_marker["outputs_digest"]
    assert not any(p.name.startswith(".tmp-") for p in out.iterdir())


def test_stage_log_file(tmp_path):
    write_stage(tmp_path / "s", "x")
    log = (tmp_path / "log" / "s.log").read_text()
    assert "[write]" in log and "done in" in log


def test_validate_runs_at_the_door_and_failing_leaves_the_directory_as_it_was(tmp_path):
    checks = []

    def ok():
        checks.append("ok")

    def bad():
        raise DataError("input x: bad")

    assert write_stage(tmp_path / "a", "x", validate=ok)
    assert not write_stage(tmp_path / "a", "x", validate=bad)  # up to date: no check, no run
    assert checks == ["ok"]
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.name != ".lock"}
    with pytest.raises(DataError, match="input x: bad"):
        write_stage(tmp_path / "a", "changed", validate=bad)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.name != ".lock"} == before
    with pytest.raises(DataError):
        write_stage(tmp_path / "new", "x", validate=bad)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [".lock"]
    assert not (tmp_path / "log" / "new.log").exists()


def test_marker_records_the_provenance_of_the_run(tmp_path):
    import torch

    from asrtools.utils.provenance import git_state

    def body(ctx):
        torch.set_num_threads(1)
        (ctx.out_dir / "out.txt").write_text("x")

    threads = torch.get_num_threads()
    try:
        run_stage(tmp_path / "a", "write", {}, {}, body)
    finally:
        torch.set_num_threads(threads)
    provenance = read_marker(tmp_path / "a")["provenance"]
    commit, dirty = git_state()
    assert (provenance["git_commit"], provenance["git_dirty"]) == (commit, dirty)
    assert provenance["torch"] == torch.__version__ and provenance["threads"] == 1  # as the body left it
    assert provenance["gpu"] is None and provenance["cpu_count"] == os.cpu_count()
