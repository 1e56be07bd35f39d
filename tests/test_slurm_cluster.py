"""The SLURM launchers on a real one-node SLURM cluster (Slurm + munge on 127.0.0.1).

The cluster is started by scripts/slurm/local_cluster.sh in $ASRTOOLS_TEST_SLURM_DIR
(scripts/test.sh sets it and stops the daemons again whatever happens to pytest) or in a
temporary directory, and stopped after this module. It has no GPU, so everything runs the
way a CPU-only cluster runs it: egs/synth/asr/run.sh with ASRTOOLS_LAUNCHER=slurm, the
corpus and features as job arrays, training as a 2-process `srun torchrun` job, and the
results are compared with the local launchers' byte for byte (weights bit for bit).
Cancellation: SIGKILL of run.sh, SIGKILL of the whole process group (runner included) and
Ctrl-C each leave no job in squeue.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import REPO, needs_tts
from test_recipe_data import artifacts
from test_train_helpers import TINY_CONFIG

pytestmark = needs_tts
RUN_SH = REPO / "egs" / "synth" / "asr" / "run.sh"
SUBMIT = REPO / "scripts" / "slurm" / "submit.sh"
LOCAL_CLUSTER = REPO / "scripts" / "slurm" / "local_cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Dict[str, str]:
    """A running one-node cluster: the environment that reaches it (SLURM_CONF)."""
    missing = subprocess.run([str(LOCAL_CLUSTER), "check"], capture_output=True, text=True)
    if missing.returncode != 0:
        pytest.skip(f"slurm: a local SLURM cluster cannot start here: {missing.stdout.strip()}")
    directory = Path(os.environ.get("ASRTOOLS_TEST_SLURM_DIR") or tmp_path_factory.mktemp("slurm"))
    start = subprocess.run([str(LOCAL_CLUSTER), "start", str(directory), "4"], capture_output=True, text=True)
    assert start.returncode == 0, start.stderr
    daemons = {name: int((directory / f"{name}.pid").read_text()) for name in ("slurmctld", "slurmd", "munge/munged")}
    try:
        yield {"SLURM_CONF": str(directory / "slurm.conf")}
    finally:
        stop = subprocess.run([str(LOCAL_CLUSTER), "stop", str(directory)], capture_output=True, text=True)
        assert stop.returncode == 0, stop.stderr
        for name, pid in daemons.items():  # stopped by their pid files: none is left running
            status = Path(f"/proc/{pid}/status")
            assert not status.exists() or "zombie" in status.read_text(), f"{name} (pid {pid}) still runs"


def _env(slurm: Dict[str, str], **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRTOOLS_SLURM", "SLURM_", "ASRTOOLS_LAUNCHER"))}
    env.update(slurm, OMP_NUM_THREADS="1", **extra)
    return env


def _recipe(env: Dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(["nice", "-n", "5", str(RUN_SH), "--corpus-preset", "tiny", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _squeue(env: Dict[str, str]) -> List[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def _wait_for(predicate, timeout: float, what: str) -> float:
    start = time.time()
    while not predicate():
        assert time.time() - start < timeout, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
    return time.time() - start


@pytest.fixture(scope="module")
def train_config(tmp_path_factory) -> Path:
    conf = tmp_path_factory.mktemp("conf") / "train_tiny.yaml"
    conf.write_text(yaml.safe_dump({**TINY_CONFIG, "num_epochs": 1, "average_last_n": 1,
                                    "data": {**TINY_CONFIG["data"], "max_duration": 20.0}}))
    return conf


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, train_config) -> Path:
    """The whole tiny recipe with the local launchers (training: 2 processes under torchrun)."""
    root = tmp_path_factory.mktemp("local")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRTOOLS_SLURM", "SLURM_"))}
    env.update(ASRTOOLS_LAUNCHER="torchrun", ASRTOOLS_NPROC="2", OMP_NUM_THREADS="1")
    _recipe(env, "--data", root / "data", "--exp", root / "exp", "--models", "lstm", "--train-config", train_config,
            "--rtf-utts", "2", "--results-md", root / "RESULTS.md")
    return root


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory, train_config) -> Dict[str, object]:
    """The same recipe with ASRTOOLS_LAUNCHER=slurm on the CPU-only cluster: stages 0-3 with
    --nj 3 (three array tasks), then 4-7 with a 2-process training job."""
    root = tmp_path_factory.mktemp("slurm_run")
    env = _env(slurm, ASRTOOLS_LAUNCHER="slurm", ASRTOOLS_SLURM_NPROC="2", ASRTOOLS_SLURM_GPU_CPUS="2")
    common = ["--data", root / "data", "--exp", root / "exp", "--models", "lstm", "--train-config", train_config,
              "--rtf-utts", "2", "--results-md", root / "RESULTS.md"]
    data_stages = _recipe(env, *common, "--stop-stage", "3", "--nj", "3")
    model_stages = _recipe(env, *common, "--stage", "4")
    return {"root": root, "env": env, "common": common, "data_stages": data_stages, "model_stages": model_stages}


def test_data_stages_as_job_arrays_equal_the_local_run(local_run, slurm_run):
    root, log = slurm_run["root"], slurm_run["data_stages"].stderr
    assert artifacts(root / "data") == artifacts(local_run / "data")  # --nj 3 on SLURM, 2 locally
    # Synthesis and features ran as arrays of three tasks, each then merged by one job.
    for stage in ("synth", "features"):
        assert f"sbatch asrtools-data-{stage}: job array (task(s) 1,2,3 of 3); each: 1 node(s), 1 task(s), " \
               f"1 CPU(s) per task, no GPU" in log
        assert f"sbatch asrtools-data-{stage}-merge: job;" in log
    logs = sorted(p.name for p in (root / "data" / "slurm_logs").iterdir())
    array_id = next(name.split("-")[-1][:-len(".sh")] for name in logs
                    if name.startswith("asrtools-data-features-") and name.endswith(".sh") and "merge" not in name)
    for task in (1, 2, 3):
        task_log = (root / "data" / "slurm_logs" / f"asrtools-data-features-{array_id}_{task}.out").read_text()
        assert f"--task {task} data features" in task_log and "# ended with status 0" in task_log
    # Per-experiment logs: only job logs and batch scripts named by job id, nothing temporary.
    assert all(name.endswith((".out", ".sh")) and not name.startswith(".") for name in logs), logs
    assert not (REPO / "egs" / "synth" / "asr" / "slurm_logs").exists()


def test_cpu_training_under_srun_torchrun_equals_the_local_run(local_run, slurm_run):
    import torch

    root, log = slurm_run["root"], slurm_run["model_stages"].stderr
    assert "sbatch asrtools-train: job running torchrun with 2 process(es) per node; " \
           "each: 1 node(s), 1 task(s) per node, 2 CPU(s) per task, no GPU" in log
    (script,) = (root / "exp" / "slurm_logs").glob("asrtools-train-*.sh")
    assert "--gpus-per-node" not in script.read_text()
    job_log = script.with_suffix(".out").read_text()
    assert "# launcher: srun" in job_log and "--nproc_per_node=2" in job_log
    ours = torch.load(root / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    theirs = torch.load(local_run / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for decode in ("decode_dev_greedy", "decode_test_greedy", "decode_test_streaming"):
        def recogs(run: Path) -> List[dict]:
            rows = [json.loads(line) for line in (run / "exp" / "lstm" / decode / "recogs.jsonl").open()]
            return [{k: v for k, v in row.items() if k != "decode_seconds"} for row in rows]

        assert recogs(root) == recogs(local_run)
        wer = "exp/lstm/{}/wer/wer.json".format(decode)
        assert json.loads((root / wer).read_text())["total"] == json.loads((local_run / wer).read_text())["total"]
    cohorts = "exp/lstm/decode_test_greedy/cohorts/cohorts.json"
    assert (root / cohorts).read_bytes() == (local_run / cohorts).read_bytes()
    assert (root / "RESULTS.md").is_file()


def test_rerun_submits_nothing(slurm_run):
    env, root = slurm_run["env"], slurm_run["root"]
    jobs_before = sorted((root / "exp" / "slurm_logs").iterdir()) + sorted((root / "data" / "slurm_logs").iterdir())
    proc = _recipe(env, *slurm_run["common"])
    assert "sbatch" not in proc.stderr and "running" not in proc.stderr, proc.stderr[-3000:]
    # Every stage was checked on the submit host (asrtools logs it) and none was submitted.
    checked = proc.stderr.count("up to date, nothing to do")
    assert checked >= 14 and proc.stderr.count("up to date, not submitted") == checked
    jobs_after = sorted((root / "exp" / "slurm_logs").iterdir()) + sorted((root / "data" / "slurm_logs").iterdir())
    assert jobs_after == jobs_before


def test_sigkill_of_run_sh_cancels_its_job_and_the_rerun_finishes(slurm, slurm_run, tmp_path):
    env = _env(slurm, ASRTOOLS_LAUNCHER="slurm")
    data = tmp_path / "data"
    args = ["nice", "-n", "5", str(RUN_SH), "--corpus-preset", "tiny", "--data", str(data), "--stop-stage", "0"]
    run_sh = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        _wait_for(lambda: any(line.endswith(" RUNNING") for line in _squeue(env)), 120, "a running job")
        os.kill(run_sh.pid, signal.SIGKILL)
        seconds = _wait_for(lambda: not _squeue(env), 30, "an empty squeue")
    finally:
        if run_sh.poll() is None:
            run_sh.kill()
        stderr = run_sh.communicate()[1]
    assert "is gone: cancelling SLURM job(s)" in stderr, stderr
    print(f"squeue empty {seconds:.1f} s after SIGKILL of run.sh")
    _recipe(env, "--data", data, "--stop-stage", "0")
    expected = {k: v for k, v in artifacts(slurm_run["root"] / "data").items() if k.startswith("synth/")}
    assert {k: v for k, v in artifacts(data).items() if k.startswith("synth/")} == expected
    assert not any(p.name.startswith(".") for p in (data / "slurm_logs").iterdir())


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_killed_process_group_leaves_no_job(slurm, tmp_path, signum):
    """Ctrl-C reaches the runner, which cancels its job; SIGKILL of the whole group (runner
    included) stops its heartbeat, and the job cancels itself."""
    env = _env(slurm, ASRTOOLS_SLURM_ORPHAN_TIMEOUT="4", ASRTOOLS_SLURM_LOG_DIR=str(tmp_path / "logs"))
    # SIGINT as from a terminal: a test run started in the background (`cmd &` without job control)
    # inherits SIGINT ignored, and a shell cannot trap a signal ignored at its start.
    group = subprocess.Popen(["bash", "-c", '"$@"; echo after', "_", str(SUBMIT), "sleep", "300"], env=env,
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(lambda: any(line.endswith(" RUNNING") for line in _squeue(env)), 60, "a running job")
        os.killpg(group.pid, signum)
        seconds = _wait_for(lambda: not _squeue(env), 60, "an empty squeue")
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
        group.communicate()
    print(f"squeue empty {seconds:.1f} s after {signal.Signals(signum).name} of the process group")
    (log,) = (tmp_path / "logs").glob("sleep-*.out")
    if signum == signal.SIGKILL:
        assert "# the submitting runner is gone" in log.read_text()
    assert not any(p.name.startswith(".") for p in (tmp_path / "logs").iterdir())
