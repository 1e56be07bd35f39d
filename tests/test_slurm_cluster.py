"""The SLURM launchers on a real one-node SLURM cluster (Slurm + munge on 127.0.0.1).

The cluster is started by scripts/slurm/local_cluster.sh in $ASRTOOLS_TEST_SLURM_DIR
(scripts/test.sh sets it and stops the daemons again whatever happens to pytest) or in a
temporary directory, and stopped after this module. It has no GPU, so everything runs the
way a CPU-only cluster runs it: egs/synth/asr/run.sh with ASRTOOLS_LAUNCHER=slurm, the
corpus and features as job arrays, training as a 2-process `srun torchrun` job, and the
results are compared with the local launchers' byte for byte (weights bit for bit).
Cancellation: SIGKILL of run.sh, SIGKILL of the whole process group (runner included) and
Ctrl-C each leave no job in squeue. What a person follows: jobs named after their run (two
trainings side by side differ in squeue), the runner's state lines on a requeue, CANCELLED with
the command that resumes, and no heartbeat or other temporary file left after any of it.
"""
from __future__ import annotations

import hashlib
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
from test_train_helpers import TINY_CONFIG, make_corpus, train_cmd, write_config

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
        # The job index goes beside the cluster unless a test names its own (not into the checkout).
        yield {"SLURM_CONF": str(directory / "slurm.conf"), "ASRTOOLS_SLURM_INDEX": str(directory / "jobs.tsv")}
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
    env = _env(slurm, ASRTOOLS_LAUNCHER="slurm", ASRTOOLS_SLURM_NPROC="2", ASRTOOLS_SLURM_GPU_CPUS="2",
               ASRTOOLS_SLURM_INDEX=str(root / "jobs.tsv"))
    common = ["--data", root / "data", "--exp", root / "exp", "--models", "lstm", "--train-config", train_config,
              "--rtf-utts", "2", "--results-md", root / "RESULTS.md"]
    data_stages = _recipe(env, *common, "--stop-stage", "3", "--nj", "3")
    model_stages = _recipe(env, *common, "--stage", "4")
    return {"root": root, "env": env, "common": common, "data_stages": data_stages, "model_stages": model_stages}


def test_data_stages_as_job_arrays_equal_the_local_run(local_run, slurm_run):
    root, log = slurm_run["root"], slurm_run["data_stages"].stderr
    assert artifacts(root / "data") == artifacts(local_run / "data")  # --nj 3 on SLURM, 2 locally
    # Synthesis and features ran as arrays of three tasks, each then merged by one job.
    for stage, folder in (("synth", "synth"), ("features", "fbank")):
        assert f"sbatch data-{stage}:data/{folder}: job array (task(s) 1,2,3 of 3); each: 1 node(s), 1 task(s), " \
               f"1 CPU(s) per task, no GPU" in log
        assert f"sbatch data-{stage}-merge:data/{folder}: job;" in log
    logs = sorted(p.name for p in (root / "data" / "slurm_logs").iterdir())
    array_id = next(name.split("-")[-1][:-len(".sh")] for name in logs
                    if name.startswith("data-features_data_fbank-") and name.endswith(".sh"))
    for task in (1, 2, 3):
        task_log = (root / "data" / "slurm_logs" / f"data-features_data_fbank-{array_id}_{task}.out").read_text()
        assert f"--task {task} data features" in task_log and "# ended with status 0" in task_log
        assert f"# job {array_id}_{task} (job id " in task_log  # the id its file name and squeue use
        assert "\r" not in task_log  # plain progress lines, no redrawn bars
    # Per-experiment logs: only job logs and batch scripts named by job id, nothing temporary.
    assert all(name.endswith((".out", ".sh")) and not name.startswith(".") for name in logs), logs
    assert not (REPO / "egs" / "synth" / "asr" / "slurm_logs").exists()
    # One index lists every job of the run with its log.
    index = [line.split("\t") for line in (root / "jobs.tsv").read_text().splitlines()[1:]]
    assert [row[2:5] for row in index if row[3] == "data-features:data/fbank"] == \
        [[f"{array_id}_{t}", "data-features:data/fbank", "submitted"] for t in (1, 2, 3)] + \
        [[f"{array_id}_{t}", "data-features:data/fbank", "COMPLETED"] for t in (1, 2, 3)]
    assert all(Path(row[5]).is_file() for row in index)


def test_cpu_training_under_srun_torchrun_equals_the_local_run(local_run, slurm_run):
    import torch

    root, log = slurm_run["root"], slurm_run["model_stages"].stderr
    assert "sbatch train:exp/lstm: job running torchrun with 2 process(es) per node; " \
           "each: 1 node(s), 1 task(s) per node, 2 CPU(s) per task, no GPU" in log
    (script,) = (root / "exp" / "slurm_logs").glob("train_exp_lstm-*.sh")
    assert "--gpus-per-node" not in script.read_text()
    job_log = script.with_suffix(".out").read_text()
    assert "# launcher: srun" in job_log and "--nproc_per_node=2" in job_log
    ours = torch.load(root / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    theirs = torch.load(local_run / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # Byte for byte, too: a sha256 check of a reproduced run passes.
    digests = [hashlib.sha256((run / "exp" / "lstm" / "averaged.pt").read_bytes()).hexdigest()
               for run in (root, local_run)]
    assert digests[0] == digests[1]
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


def _job_names(env: Dict[str, str]) -> List[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%j"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def _dot_files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_two_trainings_side_by_side_differ_in_squeue_by_name(slurm, tmp_path):
    """Two seeds' trainings in the queue at once (held, so that neither ends before the other is
    queued): `squeue -o %j` tells them apart; released, both train."""
    corpus = make_corpus(tmp_path / "data", num_train=6)
    config = write_config(tmp_path / "c.yaml", {"num_epochs": 1})
    env = _env(slurm, ASRTOOLS_SLURM_INDEX=str(tmp_path / "jobs.tsv"), ASRTOOLS_SLURM_EXTRA="--hold",
               ASRTOOLS_SLURM_POLL="1", ASRTOOLS_RNNT_BACKEND="native")
    runners = []
    for seed in (7, 8):
        cmd = [str(REPO / "scripts" / "slurm" / "submit_gpu.sh"),
               *train_cmd(config, corpus, tmp_path / "exp" / f"lstm_s{seed}"), "--set", f"seed={seed}"]
        runners.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True))
    names = {"train:exp/lstm_s7", "train:exp/lstm_s8"}
    try:
        _wait_for(lambda: names <= set(_job_names(env)), 180, "both trainings in squeue at once")
        time.sleep(3)  # the runners look every second: each sees its job held
        jobs = [line.split()[0] for line in _squeue(env)]
        subprocess.run(["scontrol", "release", *jobs], env=env, check=True)
        errors = [runner.communicate(timeout=300)[1] for runner in runners]
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
    assert [runner.returncode for runner in runners] == [0, 0], errors
    for seed, stderr in zip((7, 8), errors):
        assert f"(train:exp/lstm_s{seed}): PENDING (JobHeldUser)" in stderr, stderr[-1500:]
        assert (tmp_path / "exp" / f"lstm_s{seed}" / "averaged.pt").is_file()
    assert _dot_files(tmp_path / "exp" / "slurm_logs") == []


def test_requeued_job_is_followed_in_the_runner_output(slurm, tmp_path):
    """`scontrol requeue`: the runner says REQUEUED and PENDING (BeginTime: the local cluster holds a
    requeued job 20 s, Slurm's default is 120 s), keeps waiting, and the rerun job succeeds."""
    logs = tmp_path / "logs"
    env = _env(slurm, ASRTOOLS_SLURM_POLL="1", ASRTOOLS_SLURM_LOG_DIR=str(logs),
               ASRTOOLS_SLURM_INDEX=str(tmp_path / "jobs.tsv"))
    runner = subprocess.Popen([str(SUBMIT), "sleep", "5"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(line.endswith(" RUNNING") for line in _squeue(env)), 60, "a running job")
        job = _squeue(env)[0].split()[0]
        subprocess.run(["scontrol", "requeue", job], env=env, check=True)
        stderr = runner.communicate(timeout=240)[1]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, stderr
    prefix = f"submit.sh: job {job} (sleep): "
    states = [line[len(prefix):].split(":")[0].split(" (")[0] for line in stderr.splitlines() if line.startswith(prefix)]
    assert states[-3:] == ["REQUEUED", "PENDING", "RUNNING on localhost"], stderr
    assert f"{prefix}PENDING (BeginTime) until " in stderr
    log = (logs / f"sleep-{job}.out").read_text()
    assert "DUE TO JOB REQUEUE" in log and "# SIGTERM at " in log  # the stop of attempt 1, said to be no crash
    assert "# requeued: attempt 2 starts here" in log and log.count("# ended with status 0") == 1
    assert _dot_files(logs) == []


def test_cancelled_job_says_cancelled_and_the_command_that_resumes(slurm, tmp_path):
    logs = tmp_path / "logs"
    (tmp_path / "run.sh").write_text(f'#!/usr/bin/env bash\nexport ASRTOOLS_STAGE=3\n{SUBMIT} sleep 300 || exit $?\n')
    env = _env(slurm, ASRTOOLS_SLURM_POLL="1", ASRTOOLS_SLURM_LOG_DIR=str(logs),
               ASRTOOLS_SLURM_INDEX=str(tmp_path / "jobs.tsv"))
    runner = subprocess.Popen(["bash", "run.sh", "--stage", "1", "--nj", "2"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(line.endswith(" RUNNING") for line in _squeue(env)), 60, "a running job")
        job = _squeue(env)[0].split()[0]
        subprocess.run(["scancel", job], env=env, check=True)
        stderr = runner.communicate(timeout=60)[1]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode != 0
    assert f"submit.sh: job {job} (sleep): CANCELLED" in stderr
    assert f"submit.sh: error: SLURM job {job} (sleep) ended CANCELLED" in stderr
    assert stderr.splitlines()[-1] == "submit.sh: to resume: run.sh --nj 2 --stage 3"
    assert _dot_files(logs) == []


def test_job_of_a_sigkilled_runner_finishes_and_leaves_no_heartbeat(slurm, tmp_path):
    logs = tmp_path / "logs"
    env = _env(slurm, ASRTOOLS_SLURM_LOG_DIR=str(logs), ASRTOOLS_SLURM_INDEX=str(tmp_path / "jobs.tsv"))
    runner = subprocess.Popen([str(SUBMIT), "sleep", "14"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: any(line.endswith(" RUNNING") for line in _squeue(env)), 60, "a running job")
        assert len(_dot_files(logs)) == 1  # the runner's heartbeat
        os.kill(runner.pid, signal.SIGKILL)  # the runner only: its job goes on and finishes
        runner.wait()
        _wait_for(lambda: not _squeue(env), 60, "the job to finish")
    finally:
        if runner.poll() is None:
            runner.kill()
    (log,) = logs.glob("sleep-*.out")
    assert "# ended with status 0" in log.read_text()
    assert _dot_files(logs) == []
