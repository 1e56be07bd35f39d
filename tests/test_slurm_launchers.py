"""Cluster job runners: scripts/slurm/submit{,_gpu,_decode}.sh, scripts/run_torchrun.sh, recipe cmd.sh.

SLURM is faked by small executables first on PATH: `sbatch` records its options and runs
the batch script (read from its standard input) with bash in a SLURM-like environment (from
`/`, so the script's own `cd` is what puts the job in the submitting directory), once per
array task for `--array`; `srun` runs its command once per node, `scontrol show hostnames`
expands the comma-separated node list, `scancel` records its arguments. A fake `asrtools`
answers `--check` as a test says and records every call. The end-to-end check runs a tiny
real `asrtools train` through the recipe's cmd.sh with real torchrun (2 gloo processes).
tests/test_slurm_cluster.py runs the same launchers on a real one-node SLURM cluster.
"""
from __future__ import annotations

import json
import os
import signal
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from asrtools.models.checkpoint import load_checkpoint

from test_train_helpers import make_corpus, train_cmd, train_env, write_config

REPO = Path(__file__).resolve().parents[1]
SUBMIT = REPO / "scripts" / "slurm" / "submit.sh"
SUBMIT_GPU = REPO / "scripts" / "slurm" / "submit_gpu.sh"
SUBMIT_DECODE = REPO / "scripts" / "slurm" / "submit_decode.sh"
RUN_TORCHRUN = REPO / "scripts" / "run_torchrun.sh"
CMD_SH = REPO / "egs" / "synth" / "asr" / "cmd.sh"
LOCAL_CLUSTER = REPO / "scripts" / "slurm" / "local_cluster.sh"
SCRIPTS = [REPO / "scripts" / "slurm" / "lib.sh", SUBMIT, SUBMIT_GPU, SUBMIT_DECODE, RUN_TORCHRUN, CMD_SH,
           LOCAL_CLUSTER]

FAKE_SBATCH = r'''
"""Fake sbatch: record the options, run the batch script (stdin) with bash, per array task, honour --wait."""
import json, os, subprocess, sys, time

FLAGS = {"--wait", "--parsable"}
state = os.environ["FAKE_SLURM_STATE"]
args, options, i = sys.argv[1:], {}, 0
while i < len(args) and args[i].startswith("-"):
    if "=" in args[i]:
        key, value = args[i].split("=", 1)
    elif args[i] in FLAGS:
        key, value = args[i], True
    else:
        key, value = args[i], args[i + 1]
        i += 1
    options[key] = value
    i += 1
script_text = open(args[i]).read() if i < len(args) else sys.stdin.read()
counter = os.path.join(state, "next_job_id")
job_id = int(open(counter).read()) if os.path.exists(counter) else 1000
tasks = [int(t) for t in options["--array"].split(",")] if "--array" in options else [None]
open(counter, "w").write(str(job_id + 1 + (len(tasks) if tasks != [None] else 0)))
with open(os.path.join(state, "sbatch.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "options": options, "script": script_text}) + "\n")
script = os.path.join(state, f"script-{job_id}.sh")
open(script, "w").write(script_text)

nodes = int(options.get("--nodes", "1"))
hosts = os.environ.get("FAKE_SLURM_HOSTS", ",".join(f"node{n + 1}" for n in range(nodes))).split(",")
name = options.get("--job-name", "sbatch")
print(job_id if "--parsable" in options else f"Submitted batch job {job_id}", flush=True)
time.sleep(float(os.environ.get("FAKE_SBATCH_SLEEP", "0")))
worst = 0
for n, task in enumerate(tasks):
    own_id = job_id if task is None else job_id + 1 + n
    env = dict(os.environ, SLURM_JOB_ID=str(own_id), SLURM_JOB_NAME=name, SLURM_NNODES=str(nodes),
               SLURM_JOB_NODELIST=",".join(hosts[:nodes]), SLURM_SUBMIT_DIR=os.getcwd())
    if task is not None:
        env.update(SLURM_ARRAY_JOB_ID=str(job_id), SLURM_ARRAY_TASK_ID=str(task))
    if "--cpus-per-task" in options:
        env["SLURM_CPUS_PER_TASK"] = options["--cpus-per-task"]
    output = options.get("--output", f"slurm-{job_id}.out").replace("%x", name).replace("%j", str(own_id))
    output = output.replace("%A", str(job_id)).replace("%a", str(task))
    output = os.path.join(options.get("--chdir", os.getcwd()), output)
    with open(output, "a" if options.get("--open-mode") == "append" else "w") as log:
        rc = subprocess.run(["bash", script], cwd="/", env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    worst = max(worst, rc if rc >= 0 else 128 - rc)
sys.exit(worst if "--wait" in options else 0)
'''

FAKE_SRUN = r'''
"""Fake srun: run the command once per node, concurrently, with SLURM_NODEID/SLURM_PROCID set."""
import json, os, subprocess, sys

args, options, i = sys.argv[1:], {}, 0
while args[i].startswith("-"):
    key, _, value = args[i].partition("=")
    options[key] = value
    i += 1
with open(os.path.join(os.environ["FAKE_SLURM_STATE"], "srun.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "options": options}) + "\n")
hosts = os.environ["SLURM_JOB_NODELIST"].split(",")
tasks = int(options.get("--ntasks", os.environ["SLURM_NNODES"]))
procs = [subprocess.Popen(args[i:], env=dict(os.environ, SLURM_NODEID=str(n), SLURM_PROCID=str(n),
                                              SLURMD_NODENAME=hosts[n]))
         for n in range(tasks)]
sys.exit(max(abs(p.wait()) for p in procs))
'''

FAKE_SCONTROL = r'''
"""Fake scontrol: `scontrol show hostnames a,b,c`, and `scontrol -o show job ID`, which prints the
next answer of the JSON list in $FAKE_SCONTROL_JOBS (the last one again once they run out;
{id} becomes ID) and records the call; nothing without FAKE_SCONTROL_JOBS."""
import json, os, sys

if sys.argv[1:3] == ["show", "hostnames"]:
    print("\n".join(sys.argv[3].split(",")))
    sys.exit(0)
assert sys.argv[1:4] == ["-o", "show", "job"], sys.argv
state = os.environ["FAKE_SLURM_STATE"]
with open(os.path.join(state, "scontrol.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
if "FAKE_SCONTROL_JOBS" not in os.environ:
    sys.exit(1)
answers = json.loads(os.environ["FAKE_SCONTROL_JOBS"])
counter = os.path.join(state, "scontrol_calls")
calls = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(calls + 1))
print(answers[min(calls, len(answers) - 1)].replace("{id}", sys.argv[4]))
'''

FAKE_SACCT = r'''
"""Fake sacct: as on a cluster without accounting storage, unless $FAKE_SACCT gives its output."""
import os, sys

if "FAKE_SACCT" not in os.environ:
    print("sacct: error: Slurm accounting storage is disabled", file=sys.stderr)
    sys.exit(1)
print(os.environ["FAKE_SACCT"])
'''

FAKE_SCANCEL = r'''
"""Fake scancel: record the arguments."""
import json, os, sys

with open(os.path.join(os.environ["FAKE_SLURM_STATE"], "scancel.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
'''

# A fake `asrtools`: `--check` answers from $FAKE_CHECK (JSON: exit status and report fields,
# `device` taken from the command's --device when not given); every call is recorded.
FAKE_ASRTOOLS = r'''
"""Fake asrtools: answer --check from FAKE_CHECK, record calls, exit FAKE_TASK_STATUS_<I> for --task I."""
import json, os, sys

args = sys.argv[1:]
state = os.environ["FAKE_SLURM_STATE"]
with open(os.path.join(state, "asrtools.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "world_size": os.environ.get("ASRTOOLS_CHECK_WORLD_SIZE")}) + "\n")
if args[:1] == ["--check"]:
    answer = json.loads(os.environ.get("FAKE_CHECK", "{}"))
    calls = os.path.join(state, "checks")
    count = int(open(calls).read()) if os.path.exists(calls) else 0
    open(calls, "w").write(str(count + 1))
    answer = {**answer, **answer.get("later", {})} if count and "later" in answer else answer
    if answer.get("status", 3) in (0, 3):
        device = args[args.index("--device") + 1] if "--device" in args else answer.get("device")
        print(f"state={'up-to-date' if answer.get('status', 3) == 0 else 'run'}")
        print("stage=fake")
        print(f"out_dir={answer.get('out_dir', os.path.join(os.getcwd(), 'stage'))}")
        print(f"tasks={answer.get('tasks', 1)}")
        print(f"pending={answer.get('pending', '')}")
        if device:
            print(f"device={device}")
    else:
        print(answer.get("error", "asrtools: error: fake"), file=sys.stderr)
    sys.exit(answer.get("status", 3))
if args[:1] == ["--task"]:
    sys.exit(int(os.environ.get(f"FAKE_TASK_STATUS_{args[1]}", "0")))
'''

FAKE_TORCHRUN = r'''
"""Fake torchrun: record argv (and the SLURM node), then run the command after --no-python once."""
import json, os, subprocess, sys

args = sys.argv[1:]
with open(os.path.join(os.environ["FAKE_SLURM_STATE"], "torchrun.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "node": os.environ.get("SLURM_NODEID")}) + "\n")
sys.exit(subprocess.run(args[args.index("--no-python") + 1:]).returncode)
'''

# Writes {"argv": its arguments after the output path, "cwd": ..., "node": SLURM_NODEID} as a JSON line.
ARGV_DUMPER = ("import json, os, sys; f = open(sys.argv[1], 'a'); "
               "f.write(json.dumps({'argv': sys.argv[2:], 'cwd': os.getcwd(), "
               "'node': os.environ.get('SLURM_NODEID')}) + '\\n')")

# Words a shell would split, expand, glob or execute; each must reach the job as one argument.
TRICKY_ARGS = ["two words", "it's", 'say "hi"', "$HOME", "${PATH}", "$(touch pwned)", "`touch pwned2`",
               "a;b", "x && y", "*", "?[a-z]*", "", " lead", "tab\there", "new\nline", "back\\slash",
               "--opt=a b", "-", "#not-a-comment", "100%", "!!"]


def _write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _python_tool(path: Path, source: str) -> Path:
    return _write_executable(path, f"#!{sys.executable}\n{source}")


def _records(state: Path, tool: str) -> List[dict]:
    path = state / f"{tool}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def cluster(tmp_path) -> Dict[str, Path]:
    """Fake SLURM tools in `bin`, a fake torchrun in `torchrun_bin`, their records in `state`."""
    bin_dir, torchrun_dir, state = tmp_path / "bin", tmp_path / "torchrun_bin", tmp_path / "state"
    for folder in (bin_dir, torchrun_dir, state):
        folder.mkdir()
    _python_tool(bin_dir / "sbatch", FAKE_SBATCH)
    _python_tool(bin_dir / "srun", FAKE_SRUN)
    _python_tool(bin_dir / "scontrol", FAKE_SCONTROL)
    _python_tool(bin_dir / "scancel", FAKE_SCANCEL)
    _python_tool(bin_dir / "sacct", FAKE_SACCT)
    _python_tool(torchrun_dir / "torchrun", FAKE_TORCHRUN)
    work = tmp_path / "submit dir $x"  # the job must cd to a directory whose name needs quoting
    work.mkdir()
    return {"bin": bin_dir, "torchrun_bin": torchrun_dir, "state": state, "work": work}


def _env(cluster: Dict[str, Path], settings: Optional[Dict[str, str]] = None, fake_torchrun: bool = False,
         base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a submission: fakes first on PATH, no inherited launcher settings."""
    env = {k: v for k, v in (base or os.environ).items()
           if not k.startswith(("ASRTOOLS_SLURM", "SLURM_", "ASRTOOLS_LAUNCHER", "ASRTOOLS_NPROC", "CUDA_VISIBLE"))}
    path = [str(cluster["bin"]), *([str(cluster["torchrun_bin"])] if fake_torchrun else []),
            str(Path(sys.executable).parent), env.get("PATH", "")]
    env.update(PATH=os.pathsep.join(path), FAKE_SLURM_STATE=str(cluster["state"]), OMP_NUM_THREADS="1")
    env.update(settings or {})
    return env


def _run(cmd: List[str], env: Dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_scripts_are_executable_and_parse():
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
    for script in (SUBMIT, SUBMIT_GPU, SUBMIT_DECODE, RUN_TORCHRUN, LOCAL_CLUSTER):
        assert os.access(script, os.X_OK), script
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-x", "-s", "bash", *map(str, SCRIPTS)], check=True, cwd=REPO)


def test_arguments_reach_the_job_unchanged(cluster):
    out = cluster["work"] / "argv.jsonl"
    cmd = [sys.executable, "-c", ARGV_DUMPER, out, *TRICKY_ARGS]
    result = _run([SUBMIT, *cmd], _env(cluster), cluster["work"])
    assert result.returncode == 0, result.stderr
    (job,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert job["argv"] == TRICKY_ARGS
    assert job["cwd"] == str(cluster["work"])
    assert not any((cluster["work"] / name).exists() for name in ("pwned", "pwned2"))
    # The batch script and the job log sit side by side under slurm_logs/, named after the job;
    # the index lists the job and its log.
    name = Path(sys.executable).name
    logs = cluster["work"] / "slurm_logs"
    assert sorted(p.name for p in logs.iterdir()) == ["jobs.tsv", f"{name}-1000.out", f"{name}-1000.sh"]
    assert "# ended with status 0" in (logs / f"{name}-1000.out").read_text()
    index = [line.split("\t") for line in (logs / "jobs.tsv").read_text().splitlines()]
    assert index[0][0] == "# time" and [row[2:] for row in index[1:]] == [
        ["1000", name, event, str(logs / f"{name}-1000.out")] for event in ("submitted", "COMPLETED")]
    assert _records(cluster["state"], "srun") == []


def test_failing_job_status_propagates(cluster):
    result = _run([SUBMIT, "bash", "-c", "echo boom-$1; exit 3", "_", "x"], _env(cluster), cluster["work"])
    assert result.returncode == 3
    log = cluster["work"] / "slurm_logs" / "bash-1000.out"
    assert f"SLURM job 1000 (bash) failed with status 3; log: {log}" in result.stderr
    assert "boom-x" in result.stderr  # the log's tail is shown
    # The last line: the command that resumes (here: this runner's command, no recipe started it).
    assert result.stderr.splitlines()[-1] == f"submit.sh: to resume: {SUBMIT} bash -c echo\\ boom-\\$1\\;\\ exit\\ 3 _ x"


def _fake_asrtools(cluster: Dict[str, Path]) -> None:
    _python_tool(cluster["bin"] / "asrtools", FAKE_ASRTOOLS)


def test_sbatch_options_come_from_the_environment(cluster):
    _fake_asrtools(cluster)
    settings = {"ASRTOOLS_SLURM_PARTITION": "short", "ASRTOOLS_SLURM_GPU_PARTITION": "gpu",
                "ASRTOOLS_SLURM_TIME": "0:30:00", "ASRTOOLS_SLURM_MEM": "8G", "ASRTOOLS_SLURM_CPUS": "3",
                "ASRTOOLS_SLURM_ACCOUNT": "asr", "ASRTOOLS_SLURM_GPUS": "1",
                "ASRTOOLS_SLURM_EXTRA": " --qos=high\t--constraint=a100 "}
    env = _env(cluster, settings)
    gpu = _run([SUBMIT_GPU, "asrtools", "train", "--config", "c.yaml"], env, cluster["work"])
    cpu = _run([SUBMIT, "asrtools", "score", "wer", "--ref", "r.jsonl"], env, cluster["work"])
    decode_env = _env(cluster, {**settings, "ASRTOOLS_SLURM_GPUS": "4", "ASRTOOLS_SLURM_DECODE_TIME": "0:10:00"})
    decode = _run([SUBMIT_DECODE, "asrtools", "decode", "--device", "cuda"], decode_env, cluster["work"])
    assert gpu.returncode == 0 and cpu.returncode == 0 and decode.returncode == 0, \
        gpu.stderr + cpu.stderr + decode.stderr

    gpu_call, cpu_call, decode_call = _records(cluster["state"], "sbatch")
    # Logs go beside the stage directory that `asrtools --check` names (<work>/stage).
    common = {"--time": "0:30:00", "--mem": "8G", "--cpus-per-task": "3", "--account": "asr",
              "--qos": "high", "--constraint": "a100", "--export": "ALL", "--wait": True,
              "--chdir": str(cluster["work"])}
    logs = cluster["work"] / "slurm_logs"
    # Named after the subcommand and the stage directory's last two parts (<work>/stage).
    gpu_only = {"--job-name": "train:submit_dir__x/stage", "--partition": "gpu", "--gpus-per-node": "1",
                "--nodes": "1", "--output": str(logs / "train_submit_dir__x_stage-%j.out")}
    cpu_only = {"--job-name": "score-wer:submit_dir__x/stage", "--partition": "short", "--nodes": "1",
                "--ntasks": "1", "--output": str(logs / "score-wer_submit_dir__x_stage-%j.out")}
    assert {**common, **gpu_only}.items() <= gpu_call["options"].items()
    assert {**common, **cpu_only}.items() <= cpu_call["options"].items()
    assert "--gpus-per-node" not in cpu_call["options"]
    # A decode job: one GPU whatever ASRTOOLS_SLURM_GPUS says, the GPU partition, its own time.
    decode_only = {"--job-name": "decode:submit_dir__x/stage", "--partition": "gpu", "--gpus-per-node": "1",
                   "--nodes": "1", "--ntasks": "1", "--time": "0:10:00"}
    assert {**common, **decode_only}.items() <= decode_call["options"].items()
    assert _records(cluster["state"], "srun") == []  # one GPU: no torchrun
    assert (logs / "train_submit_dir__x_stage-1000.out").is_file()
    assert (logs / "score-wer_submit_dir__x_stage-1001.out").is_file()
    assert (logs / "decode_submit_dir__x_stage-1002.out").is_file()
    assert f"job 1000 (train:submit_dir__x/stage) submitted; log: {logs / 'train_submit_dir__x_stage-1000.out'}" \
        in gpu.stderr
    # What each job asks for is printed.
    assert ("each: 1 node(s), 1 task(s) per node, 3 CPU(s) per task, 1 GPU(s) per node, memory 8G, "
            "time limit 0:30:00, partition gpu, account asr, plus --qos=high --constraint=a100") in gpu.stderr
    assert "3 CPU(s) per task, no GPU, memory 8G, time limit 0:30:00, partition short" in cpu.stderr


@pytest.mark.parametrize("runner, settings, gpus, nproc", [
    (SUBMIT_GPU, {"ASRTOOLS_SLURM_GPUS": "4"}, None, 1),  # --device cpu: no GPU, one process
    (SUBMIT_GPU, {"ASRTOOLS_SLURM_GPUS": "4", "ASRTOOLS_SLURM_NPROC": "2"}, None, 2),  # CPU DDP
    (SUBMIT_DECODE, {}, None, 1),
])
def test_cpu_device_asks_for_no_gpu(cluster, runner, settings, gpus, nproc):
    _fake_asrtools(cluster)
    env = _env(cluster, settings, fake_torchrun=True)
    result = _run([runner, "asrtools", "train", "--device", "cpu"], env, cluster["work"])
    assert result.returncode == 0, result.stderr
    (job,) = _records(cluster["state"], "sbatch")
    assert job["options"].get("--gpus-per-node") == gpus
    assert "no GPU" in result.stderr
    torchruns = _records(cluster["state"], "torchrun")
    assert [t["argv"][1] for t in torchruns] == ([f"--nproc_per_node={nproc}"] if nproc > 1 else [])
    # The check fingerprints training with the world size the job will have.
    checks = [c for c in _records(cluster["state"], "asrtools") if c["argv"][0] == "--check"]
    assert checks[-1]["world_size"] == str(nproc)


def test_up_to_date_stage_is_not_submitted(cluster):
    _fake_asrtools(cluster)
    result = _run([SUBMIT, "asrtools", "data", "features", "-j", "4"],
                  _env(cluster, {"FAKE_CHECK": json.dumps({"status": 0})}), cluster["work"])
    assert result.returncode == 0, result.stderr
    assert "data-features:submit_dir__x/stage: up to date, not submitted" in result.stderr
    assert _records(cluster["state"], "sbatch") == []
    assert not (cluster["work"] / "slurm_logs").exists()


def test_check_error_stops_before_submitting(cluster):
    _fake_asrtools(cluster)
    check = {"status": 1, "error": "asrtools: error: input manifests: m does not exist"}
    result = _run([SUBMIT, "asrtools", "data", "features"], _env(cluster, {"FAKE_CHECK": json.dumps(check)}),
                  cluster["work"])
    assert result.returncode == 1
    assert result.stderr.strip() == check["error"]
    assert _records(cluster["state"], "sbatch") == []


def test_command_that_is_no_stage_is_submitted_as_it_is(cluster):
    _fake_asrtools(cluster)
    result = _run([SUBMIT, "asrtools", "data", "validate", "m"], _env(cluster, {"FAKE_CHECK": json.dumps({"status": 4})}),
                  cluster["work"])
    assert result.returncode == 0, result.stderr
    (job,) = _records(cluster["state"], "sbatch")
    assert "--array" not in job["options"]
    assert [c["argv"] for c in _records(cluster["state"], "asrtools")][-1] == ["data", "validate", "m"]


def test_sharded_stage_runs_pending_tasks_as_an_array_then_merges(cluster):
    _fake_asrtools(cluster)
    env = _env(cluster, {"FAKE_CHECK": json.dumps({"tasks": 3, "pending": "1 3"}), "ASRTOOLS_SLURM_GPUS": "2"})
    cmd = ["asrtools", "decode", "--device", "cuda", "--out-dir", "a b", "-j", "3"]
    result = _run([SUBMIT_DECODE, *cmd], env, cluster["work"])
    assert result.returncode == 0, result.stderr
    array, merge = _records(cluster["state"], "sbatch")
    # One GPU and one CPU per array task; the merge job is a one-CPU job without GPU.
    logs = cluster["work"] / "slurm_logs"
    assert {"--array": "1,3", "--gpus-per-node": "1", "--cpus-per-task": "1", "--job-name": "decode:submit_dir__x/stage",
            "--output": str(logs / "decode_submit_dir__x_stage-%A_%a.out")}.items() <= array["options"].items()
    assert "--array" not in merge["options"] and "--gpus-per-node" not in merge["options"]
    assert {"--cpus-per-task": "1", "--job-name": "decode-merge:submit_dir__x/stage"}.items() \
        <= merge["options"].items()
    runs = [c["argv"] for c in _records(cluster["state"], "asrtools") if c["argv"][0] != "--check"]
    assert runs == [["--task", "1", *cmd[1:]], ["--task", "3", *cmd[1:]], cmd[1:]]
    assert sorted(p.name for p in logs.iterdir()) == [
        "decode-merge_submit_dir__x_stage-1003.out", "decode-merge_submit_dir__x_stage-1003.sh",
        "decode_submit_dir__x_stage-1000.sh", "decode_submit_dir__x_stage-1000_1.out",
        "decode_submit_dir__x_stage-1000_3.out", "jobs.tsv"]
    # The array task's log header names it as its file does (<array id>_<task>).
    assert "# job 1000_3 (job id 1002; decode:submit_dir__x/stage)" in \
        (logs / "decode_submit_dir__x_stage-1000_3.out").read_text()
    index = [line.split("\t")[2:] for line in (cluster["work"] / "slurm_logs" / "jobs.tsv").read_text().splitlines()]
    assert [row[:3] for row in index[1:]] == [
        ["1000_1", "decode:submit_dir__x/stage", "submitted"], ["1000_3", "decode:submit_dir__x/stage", "submitted"],
        ["1000_1", "decode:submit_dir__x/stage", "COMPLETED"], ["1000_3", "decode:submit_dir__x/stage", "COMPLETED"],
        ["1003", "decode-merge:submit_dir__x/stage", "submitted"],
        ["1003", "decode-merge:submit_dir__x/stage", "COMPLETED"]]
    assert "job array (task(s) 1,3 of 3); each: 1 node(s), 1 task(s), 1 CPU(s) per task, 1 GPU(s) per node" \
        in result.stderr


def test_failed_array_task_is_named_and_nothing_is_merged(cluster):
    _fake_asrtools(cluster)
    check = {"tasks": 3, "pending": "1 2 3", "later": {"pending": "2"}}
    env = _env(cluster, {"FAKE_CHECK": json.dumps(check), "FAKE_TASK_STATUS_2": "7"})
    result = _run([SUBMIT, "asrtools", "data", "features", "-j", "3"], env, cluster["work"])
    assert result.returncode == 7
    (array,) = _records(cluster["state"], "sbatch")
    log = cluster["work"] / "slurm_logs" / "data-features_submit_dir__x_stage-1000_2.out"
    assert ("SLURM job array 1000 (data-features:submit_dir__x/stage) failed with status 7; unfinished task(s): 2; "
            f"rerun to run only those; logs: {log}") in result.stderr
    assert result.stderr.splitlines()[-1] == f"submit.sh: to resume: {SUBMIT} asrtools data features -j 3"


def _wait_for(predicate, timeout: float = 30.0) -> None:
    import time

    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_runner_cancels_its_job_when_its_parent_is_killed(cluster):
    _fake_asrtools(cluster)
    env = _env(cluster, {"FAKE_SBATCH_SLEEP": "60"})
    parent = subprocess.Popen(["bash", "-c", '"$@"; echo never', "_", str(SUBMIT), "asrtools", "train"],
                              env=env, cwd=cluster["work"], stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (cluster["state"] / "sbatch.jsonl").exists())
        os.kill(parent.pid, 9)  # SIGKILL: nothing can be trapped
        _wait_for(lambda: _records(cluster["state"], "scancel") == [["1000"]])
    finally:
        parent.kill()
        parent.wait()
    logs = cluster["work"] / "slurm_logs"
    _wait_for(lambda: not any(p.name.startswith(".runner-") for p in logs.iterdir()))
    assert sorted(p.name for p in logs.iterdir()) == ["jobs.tsv", "train_submit_dir__x_stage-1000.sh"]


@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143), (1, 129)])
def test_interrupted_runner_cancels_its_job(cluster, signum, status):
    _fake_asrtools(cluster)
    # A shell cannot trap a signal ignored when it starts (e.g. SIGHUP under nohup, SIGINT in a
    # background job): give the runner default handlers, as a terminal's foreground job has.
    runner = subprocess.Popen([str(SUBMIT), "asrtools", "train"], env=_env(cluster, {"FAKE_SBATCH_SLEEP": "60"}),
                              cwd=cluster["work"], stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    _wait_for(lambda: (cluster["work"] / "slurm_logs" / "train_submit_dir__x_stage-1000.sh").exists())
    os.kill(runner.pid, signum)
    _, stderr = runner.communicate(timeout=30)
    assert runner.returncode == status, stderr
    assert _records(cluster["state"], "scancel") == [["1000"]]
    assert "cancelling SLURM job(s) 1000" in stderr


def test_jobs_are_named_after_the_stage_directory_so_runs_differ_in_squeue(cluster):
    _fake_asrtools(cluster)
    work = cluster["work"]
    long_dir = work / "exp" / ("a_very_long_experiment_name_" * 3 + "seed7") / "decode_test_greedy_chunk32"
    names = []
    for out_dir in (work / "exp" / "lstm", work / "exp" / "lstm_s7", long_dir):
        env = _env(cluster, {"FAKE_CHECK": json.dumps({"out_dir": str(out_dir)})})
        result = _run([SUBMIT, "asrtools", "train", "--exp-dir", out_dir], env, work)
        assert result.returncode == 0, result.stderr
        names.append(_records(cluster["state"], "sbatch")[-1]["options"]["--job-name"])
    assert names[:2] == ["train:exp/lstm", "train:exp/lstm_s7"]  # two seeds side by side
    assert len(names[2]) == 64 and names[2].startswith("train:...") and names[2].endswith("_seed7/decode_test_greedy_chunk32")
    logs = sorted(p.name for p in (work / "exp" / "slurm_logs").iterdir())
    assert logs[:4] == ["train_exp_lstm-1000.out", "train_exp_lstm-1000.sh", "train_exp_lstm_s7-1001.out",
                        "train_exp_lstm_s7-1001.sh"]


REQUEUE_ANSWERS = [  # what `scontrol -o show job` says on successive polls
    "JobId={id} JobName=x JobState=PENDING Reason=Priority Restarts=0 NodeList=(null)",
    "JobId={id} JobName=x JobState=RUNNING Reason=None Restarts=0 NodeList=node1",
    "JobId={id} JobName=x JobState=PENDING Reason=BeginTime Restarts=1 StartTime=2026-01-01T10:02:00 NodeList=(null)",
    "JobId={id} JobName=x JobState=RUNNING Reason=None Restarts=1 NodeList=node1",
]


def test_runner_prints_state_changes_and_requeues_as_they_happen(cluster):
    _fake_asrtools(cluster)
    env = _env(cluster, {"FAKE_SBATCH_SLEEP": "6", "ASRTOOLS_SLURM_POLL": "1",
                         "FAKE_SCONTROL_JOBS": json.dumps(REQUEUE_ANSWERS)})
    result = _run([SUBMIT, "asrtools", "train"], env, cluster["work"])
    assert result.returncode == 0, result.stderr
    prefix = "submit.sh: job 1000 (train:submit_dir__x/stage): "
    states = [line[len(prefix):] for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert states[:3] == ["PENDING (Priority)", "RUNNING on node1",
                          "REQUEUED (restart 1): Slurm holds it before it runs again (BeginTime; 2 minutes by default), "
                          "then it resumes from its finished work; still waiting"]
    assert states[3:] == ["PENDING (BeginTime) until 2026-01-01T10:02:00", "RUNNING on node1"]
    assert ["-o", "show", "job", "1000"] in _records(cluster["state"], "scontrol")


@pytest.mark.parametrize("sacct, expected", [
    (None, "ended CANCELLED, exit code 0:15; it was cancelled (scancel, an administrator, or its own watchdog)"),
    ("1000|TIMEOUT|0:0", "ended TIMEOUT, exit code 0:0; it reached its time limit: raise ASRTOOLS_SLURM_TIME"),
])
def test_failed_job_says_how_it_ended_and_ends_with_the_resume_command(cluster, sacct, expected):
    # A recipe script that exported its stage, started as `bash run.sh --stage 2 --nj 3 "a b"`.
    _write_executable(cluster["work"] / "run.sh",
                      f'#!/usr/bin/env bash\nexport ASRTOOLS_STAGE=4\n{SUBMIT} bash -c "exit 143" || exit $?\n')
    answers = ["JobId={id} JobState=RUNNING Reason=None Restarts=0 NodeList=node1",
               "JobId={id} JobState=CANCELLED Reason=None Restarts=0 ExitCode=0:15 NodeList=node1"]
    settings = {"FAKE_SBATCH_SLEEP": "2", "ASRTOOLS_SLURM_POLL": "1", "FAKE_SCONTROL_JOBS": json.dumps(answers)}
    if sacct:
        settings["FAKE_SACCT"] = sacct
    result = _run(["bash", "run.sh", "--stage", "2", "--nj", "3", "a b"], _env(cluster, settings), cluster["work"])
    assert result.returncode == 143
    log = cluster["work"] / "slurm_logs" / "bash-1000.out"
    assert f"submit.sh: error: SLURM job 1000 (bash) {expected}; log: {log}" in result.stderr
    assert "submit.sh: job 1000 (bash): RUNNING on node1" in result.stderr
    assert result.stderr.splitlines()[-1] == "submit.sh: to resume: run.sh --nj 3 a\\ b --stage 4"
    (last,) = [line for line in (cluster["work"] / "slurm_logs" / "jobs.tsv").read_text().splitlines()][-1:]
    assert last.split("\t")[2:] == ["1000", "bash", expected.split(",")[0].split()[1], str(log)]


def test_heartbeat_of_a_sigkilled_runner_is_removed_by_its_job_and_by_the_next_runner(cluster):
    _fake_asrtools(cluster)
    logs = cluster["work"] / "slurm_logs"
    runner = subprocess.Popen([str(SUBMIT), "asrtools", "train"], env=_env(cluster, {"FAKE_SBATCH_SLEEP": "3"}),
                              cwd=cluster["work"], stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(lambda: logs.is_dir() and any(p.name.startswith(".runner-") for p in logs.iterdir()))
    (heartbeat,) = [p for p in logs.iterdir() if p.name.startswith(".runner-")]
    os.kill(runner.pid, signal.SIGKILL)  # the runner only: its sbatch goes on, the job runs
    runner.wait()
    os.utime(heartbeat, (heartbeat.stat().st_atime - 60, heartbeat.stat().st_mtime - 60))  # still for a minute
    log = logs / "train_submit_dir__x_stage-1000.out"
    _wait_for(lambda: log.exists() and "# ended with status 0" in log.read_text())
    assert not heartbeat.exists()
    assert not any(p.name.startswith(".") for p in logs.iterdir())
    # A heartbeat whose job had ended before it went still: the next runner on the host removes it.
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = logs / f".runner-{socket.gethostname()}-{dead.pid}.alive"
    left.write_text("1 2\n")
    assert _run([SUBMIT, "asrtools", "train"], _env(cluster), cluster["work"]).returncode == 0
    assert not any(p.name.startswith(".") for p in logs.iterdir())


def test_bad_gpu_count_is_a_one_line_error(cluster):
    result = _run([SUBMIT_GPU, "asrtools", "train"], _env(cluster, {"ASRTOOLS_SLURM_GPUS": "two"}), cluster["work"])
    assert result.returncode == 1
    assert result.stderr.strip() == \
        "submit_gpu.sh: error: ASRTOOLS_SLURM_GPUS must be a non-negative integer, got 'two'"
    assert _records(cluster["state"], "sbatch") == []


def test_multi_node_training_runs_under_srun_and_torchrun(cluster):
    out = cluster["work"] / "argv.jsonl"
    cmd = [sys.executable, "-c", ARGV_DUMPER, out, *TRICKY_ARGS]
    settings = {"ASRTOOLS_SLURM_GPUS": "2", "ASRTOOLS_SLURM_NODES": "2", "ASRTOOLS_SLURM_CPUS": "4"}
    result = _run([SUBMIT_GPU, *cmd], _env(cluster, settings, fake_torchrun=True), cluster["work"])
    assert result.returncode == 0, result.stderr

    (sbatch,) = _records(cluster["state"], "sbatch")
    assert {k: sbatch["options"][k] for k in ("--nodes", "--ntasks-per-node", "--gpus-per-node")} == \
        {"--nodes": "2", "--ntasks-per-node": "1", "--gpus-per-node": "2"}
    (srun,) = _records(cluster["state"], "srun")
    assert srun["options"] == {"--nodes": "2", "--ntasks": "2", "--ntasks-per-node": "1",
                               "--kill-on-bad-exit": "1", "--cpus-per-task": "4"}
    torchruns = _records(cluster["state"], "torchrun")
    assert sorted(t["node"] for t in torchruns) == ["0", "1"]
    launcher = ["--nnodes=2", "--nproc_per_node=2", "--rdzv_backend=c10d", "--rdzv_endpoint=node1:16000",
                "--rdzv_id=1000", "--no-python"]
    for record in torchruns:
        assert record["argv"] == launcher + [str(c) for c in cmd]
    jobs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(j["node"] for j in jobs) == ["0", "1"]
    assert all(j["argv"] == TRICKY_ARGS and j["cwd"] == str(cluster["work"]) for j in jobs)


@pytest.mark.parametrize("settings, nvidia_smi_gpus, nproc", [
    ({"ASRTOOLS_NPROC": "3"}, 8, "3"),
    ({"CUDA_VISIBLE_DEVICES": "0,3"}, 8, "2"),
    ({"CUDA_VISIBLE_DEVICES": ""}, 8, "1"),
    ({}, 4, "4"),
    ({}, None, "1"),  # nvidia-smi fails: no GPU
])
def test_local_torchrun_runner_counts_visible_gpus(cluster, settings, nvidia_smi_gpus, nproc):
    lines = "".join(f"echo 'GPU {i}: Fake GPU (UUID: GPU-{i})'\n" for i in range(nvidia_smi_gpus or 0))
    _write_executable(cluster["bin"] / "nvidia-smi", f"#!/usr/bin/env bash\n{lines}exit {0 if nvidia_smi_gpus else 9}\n")
    result = _run([RUN_TORCHRUN, "true", "a b"], _env(cluster, settings, fake_torchrun=True), cluster["work"])
    assert result.returncode == 0, result.stderr
    (record,) = _records(cluster["state"], "torchrun")
    assert record["argv"] == ["--standalone", f"--nproc_per_node={nproc}", "--no-python", "true", "a b"]


@pytest.mark.parametrize("launcher, cpu_runner, gpu_runner, decode_runner", [
    ("", "scripts/run_local.sh", "scripts/run_local.sh", "scripts/run_local.sh"),
    ("local", "scripts/run_local.sh", "scripts/run_local.sh", "scripts/run_local.sh"),
    ("torchrun", "scripts/run_local.sh", "scripts/run_torchrun.sh", "scripts/run_local.sh"),
    ("slurm", "scripts/slurm/submit.sh", "scripts/slurm/submit_gpu.sh", "scripts/slurm/submit_decode.sh"),
])
def test_cmd_sh_selects_the_runners(cluster, launcher, cpu_runner, gpu_runner, decode_runner):
    env = _env(cluster, {"ASRTOOLS_ROOT": str(REPO), "ASRTOOLS_LAUNCHER": launcher})
    script = 'set -euo pipefail; . "$1"; echo "$cpu_cmd"; echo "$gpu_cmd"; echo "$decode_cmd"'
    result = _run(["bash", "-c", script, "_", CMD_SH], env, cluster["work"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(REPO / r) for r in (cpu_runner, gpu_runner, decode_runner)]


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_run_sh_submits_nothing_for_a_stage_whose_input_is_missing(cluster, device):
    # No experiment exists: the check on the submit host fails with asrtools' one-line error.
    env = _env(cluster, {"ASRTOOLS_LAUNCHER": "slurm"})
    run_sh = REPO / "egs" / "synth" / "asr" / "run.sh"
    result = _run([run_sh, "--stage", "5", "--stop-stage", "5", "--models", "lstm", "--device", device,
                   "--data", cluster["work"] / "data", "--exp", cluster["work"] / "exp"], env, cluster["work"],
                  timeout=120)
    assert result.returncode == 1
    assert f"asrtools: error: input checkpoint: {cluster['work'] / 'exp' / 'lstm' / 'averaged.pt'} does not exist" \
        in result.stderr
    assert _records(cluster["state"], "sbatch") == []


def test_unknown_launcher_stops_run_sh_with_one_line_error(cluster):
    env = _env(cluster, {"ASRTOOLS_LAUNCHER": "pbs"})
    result = _run([REPO / "egs" / "synth" / "asr" / "run.sh", "--stage", "99", "--stop-stage", "0"], env, cluster["work"])
    assert result.returncode == 1
    assert result.stderr.strip() == \
        "cmd.sh: error: unknown ASRTOOLS_LAUNCHER='pbs' (expected local, torchrun or slurm)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_slurm_training_end_to_end_with_real_torchrun(cluster, tmp_path):
    """The recipe's gpu_cmd under ASRTOOLS_LAUNCHER=slurm: 2 gloo processes on CPU, no GPU asked for."""
    corpus = make_corpus(tmp_path / "data", num_train=12)
    config = write_config(tmp_path / "c.yaml", {"num_epochs": 1, "save_every_n_steps": 1,
                                                "data": {"max_duration": 0.8}})
    exp = tmp_path / "exp"
    settings = {"ASRTOOLS_ROOT": str(REPO), "ASRTOOLS_LAUNCHER": "slurm", "ASRTOOLS_SLURM_NPROC": "2",
                "FAKE_SLURM_HOSTS": "localhost", "ASRTOOLS_TORCHRUN_PORT": str(_free_port())}
    env = _env(cluster, settings, base=train_env())
    stage = 'set -euo pipefail; . "$1"; shift; $gpu_cmd "$@"'
    cmd = ["nice", "-n", "10", "bash", "-c", stage, "_", CMD_SH, *train_cmd(config, corpus, exp)]
    result = _run(cmd, env, cluster["work"], timeout=240)
    name = f"train:{tmp_path.name}/exp"  # the stage directory's last two parts
    log = tmp_path / "slurm_logs" / f"train_{tmp_path.name}_exp-1000.out"  # beside the experiment directory
    assert result.returncode == 0, result.stderr + (log.read_text()[-3000:] if log.exists() else "")

    (job,) = _records(cluster["state"], "sbatch")
    assert "--gpus-per-node" not in job["options"]
    (srun,) = _records(cluster["state"], "srun")
    assert f"--rdzv_endpoint=localhost:{settings['ASRTOOLS_TORCHRUN_PORT']}" in srun["argv"]
    assert "--nproc_per_node=2" in srun["argv"]
    ckpt = load_checkpoint(exp / "epoch-1.pt")
    assert len(ckpt["rank_states"]) == 2
    assert (exp / "averaged.pt").is_file()
    assert "# ended with status 0" in log.read_text()
    # A rerun finds the two-process training up to date on the submit host and submits nothing.
    again = _run(cmd, env, cluster["work"], timeout=240)
    assert again.returncode == 0 and f"{name}: up to date, not submitted" in again.stderr, again.stderr
    assert len(_records(cluster["state"], "sbatch")) == 1
