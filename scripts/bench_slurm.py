#!/usr/bin/env python3
"""Measure egs/synth/asr on a real one-node SLURM cluster without GPUs, against the local launchers.

Starts a private cluster with scripts/slurm/local_cluster.sh (4 advertised CPUs), then runs
the tiny recipe (`--corpus-preset tiny`, one LSTM with a 1-epoch tiny training config, `--nj 2`):

  local   ASRTOOLS_LAUNCHER=torchrun ASRTOOLS_NPROC=2 run.sh   (training: 2 gloo processes)
  SLURM   ASRTOOLS_LAUNCHER=slurm ASRTOOLS_SLURM_NPROC=2 run.sh (nothing else set: CPU stages as
          jobs, synthesis/features/decoding as job arrays + merge jobs, training as one
          2-process `srun torchrun` job without GPU)
  rerun   the SLURM command again (every stage up to date: nothing may be submitted)
  SIGKILL run.sh under SLURM on a fresh data directory, killed by SIGKILL while its first
          job runs; then the time until squeue is empty, and the rerun to the end of stage 0

It checks that both runs give byte-identical data stages (paths aside), bit-identical model
weights and identical recognitions, and writes a table of wall times per stage into the
"## Measured on a local one-node cluster" section of docs/CLUSTER.md (other sections are
kept). Wall times include job scheduling and each job's interpreter start-up, on a shared
2-core machine: compare the columns, not the absolute numbers.

Usage (heavy: run it under the shared CPU lock):
  flock /work/cpu.lock .venv/bin/python scripts/bench_slurm.py --out docs/CLUSTER.md
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

REPO = Path(__file__).resolve().parents[1]
RUN_SH = REPO / "egs" / "synth" / "asr" / "run.sh"
LOCAL_CLUSTER = REPO / "scripts" / "slurm" / "local_cluster.sh"
SECTION = "## Measured on a local one-node cluster"
STAGE_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) \[run\.sh\] (stage \d+|done)")

# A tiny LSTM transducer that trains one epoch on the tiny corpus in seconds (tests use the same).
TINY_TRAIN = {
    "model": {"encoder": "lstm", "encoder_params": {"hidden_dim": 48, "num_layers": 1, "subsampling_dim": 32,
                                                    "subsampling_channels": 8, "dropout": 0.0},
              "decoder_dim": 24, "joiner_dim": 32, "context_size": 2},
    "optim": {"lr": 5.0e-3, "scheduler": "constant", "warmup_steps": 5, "clip_grad_norm": 5.0},
    "data": {"max_duration": 20.0, "num_buckets": 2, "min_cut_duration": 0.0, "spec_augment": {"enabled": False}},
    "loss": {"warm_steps": 20, "prune_range": 4},
    "num_epochs": 1, "average_last_n": 1, "save_every_n_steps": 0, "log_every_n_steps": 5, "tensorboard": False,
}


def _clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRTOOLS_SLURM", "SLURM_", "ASRTOOLS_LAUNCHER"))}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _recipe(env: Dict[str, str], root: Path, conf: Path, *extra: str) -> Tuple[float, str]:
    args = [str(RUN_SH), "--corpus-preset", "tiny", "--data", str(root / "data"), "--exp", str(root / "exp"),
            "--models", "lstm", "--train-config", str(conf), "--rtf-utts", "2", "--results-md",
            str(root / "RESULTS.md"), "--nj", "2", *extra]
    start = time.time()
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"bench_slurm: run.sh failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return seconds, proc.stdout


def _stage_times(log: str) -> Dict[str, float]:
    """Seconds per `stage N` (from one stage line of run.sh to the next; stages 4-6 of one model)."""
    marks: List[Tuple[str, int]] = []
    for line in log.splitlines():
        match = STAGE_LINE.match(line)
        if match:
            h, m, s, what = match.groups()
            marks.append((what, int(h) * 3600 + int(m) * 60 + int(s)))
    times: Dict[str, float] = {}
    for (what, start), (_, end) in zip(marks, marks[1:]):
        times[what] = times.get(what, 0) + (end - start) % 86400
    return times


def _jobs(log: str) -> Dict[str, int]:
    """SLURM jobs submitted per stage (an array counts its tasks), from the runners' lines."""
    jobs: Dict[str, int] = {}
    stage = None
    for line in log.splitlines():
        match = STAGE_LINE.match(line)
        if match:
            stage = match.group(4)
        array = re.search(r": sbatch \S+: job array \(task\(s\) ([0-9,]+) of", line)
        if array:
            jobs[stage] = jobs.get(stage, 0) + len(array.group(1).split(","))
        elif re.search(r": sbatch \S+: job", line):
            jobs[stage] = jobs.get(stage, 0) + 1
    return jobs


def _artifacts(data: Path) -> Dict[str, bytes]:
    out = {}
    for stage in ("synth", "manifests", "fbank", "lang_bpe"):
        for path in sorted((data / stage).rglob("*")):
            rel = path.relative_to(data)
            if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                blob = path.read_bytes()
                if path.name.endswith(".gz"):
                    blob = gzip.decompress(blob).replace(str(data.resolve()).encode(), b"DATA")
                out[str(rel)] = blob
    return out


def _recogs(root: Path) -> List[dict]:
    rows = []
    for decode in ("decode_dev_greedy", "decode_test_greedy", "decode_test_streaming"):
        for line in (root / "exp" / "lstm" / decode / "recogs.jsonl").read_text().splitlines():
            rows.append({k: v for k, v in json.loads(line).items() if k != "decode_seconds"})
    return rows


def _check_equal(local: Path, slurm: Path) -> List[str]:
    import torch

    checks = []
    assert _artifacts(local / "data") == _artifacts(slurm / "data"), "data stages differ"
    checks.append(f"data stages 0-3: {len(_artifacts(local / 'data'))} files byte-identical")
    ours = torch.load(slurm / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    theirs = torch.load(local / "exp" / "lstm" / "averaged.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), "weights differ"
    checks.append(f"averaged.pt: {len(ours)} tensors bit-identical")
    assert _recogs(local) == _recogs(slurm), "recognitions differ"
    checks.append(f"recognitions: {len(_recogs(local))} identical (decode times aside)")
    return checks


def _squeue(env: Dict[str, str]) -> List[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def _sigkill(env: Dict[str, str], root: Path) -> Tuple[float, float]:
    """SIGKILL run.sh while its first job runs; seconds until squeue is empty, and of the rerun."""
    args = [str(RUN_SH), "--corpus-preset", "tiny", "--data", str(root / "data"), "--stop-stage", "0"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while not any(line.endswith(" RUNNING") for line in _squeue(env)):
        assert time.time() < deadline, "no job started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    while _squeue(env):
        assert time.time() < killed + 60, "jobs survived"
        time.sleep(0.1)
    empty = time.time() - killed
    proc.wait()
    start = time.time()
    rerun = subprocess.run(args, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return empty, time.time() - start


def _table(local_log: str, slurm_log: str, rerun_log: str) -> str:
    local, slurm, rerun = _stage_times(local_log), _stage_times(slurm_log), _stage_times(rerun_log)
    jobs, rerun_jobs = _jobs(slurm_log), _jobs(rerun_log)
    names = {"stage 0": "0 synthesise", "stage 1": "1 manifests", "stage 2": "2 features", "stage 3": "3 BPE",
             "stage 4": "4 train", "stage 5": "5 decode (dev, test x3)", "stage 6": "6 score", "stage 7": "7 RTF + table"}
    rows = ["| stage | local (s) | SLURM (s) | SLURM jobs | rerun (s) | rerun jobs |", "|---|---:|---:|---:|---:|---:|"]
    for key, name in names.items():
        rows.append(f"| {name} | {local.get(key, 0):.0f} | {slurm.get(key, 0):.0f} | {jobs.get(key, 0)} | "
                    f"{rerun.get(key, 0):.0f} | {rerun_jobs.get(key, 0)} |")
    rows.append(f"| total | {sum(local.values()):.0f} | {sum(slurm.values()):.0f} | {sum(jobs.values())} | "
                f"{sum(rerun.values()):.0f} | {sum(rerun_jobs.values())} |")
    return "\n".join(rows)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help=f"write the table into this Markdown file's {SECTION!r} section")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (printed)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="asrtools-bench-slurm-"))
    cluster = work / "cluster"
    subprocess.run([str(LOCAL_CLUSTER), "start", str(cluster), "4"], check=True)
    try:
        conf = work / "train_tiny.yaml"
        conf.write_text(yaml.safe_dump(TINY_TRAIN))
        print("[bench] local launchers ...", file=sys.stderr, flush=True)
        local_s, local_log = _recipe(_clean_env(ASRTOOLS_LAUNCHER="torchrun", ASRTOOLS_NPROC="2"), work / "local", conf)
        slurm_env = _clean_env(ASRTOOLS_LAUNCHER="slurm", ASRTOOLS_SLURM_NPROC="2",
                               SLURM_CONF=str(cluster / "slurm.conf"), ASRTOOLS_SLURM_INDEX=str(work / "jobs.tsv"))
        print("[bench] SLURM ...", file=sys.stderr, flush=True)
        slurm_s, slurm_log = _recipe(slurm_env, work / "slurm", conf)
        print("[bench] SLURM rerun ...", file=sys.stderr, flush=True)
        rerun_s, rerun_log = _recipe(slurm_env, work / "slurm", conf)
        if "sbatch " in rerun_log:
            sys.exit("bench_slurm: the rerun submitted jobs")
        checks = _check_equal(work / "local", work / "slurm")
        print("[bench] SIGKILL ...", file=sys.stderr, flush=True)
        empty_s, resume_s = _sigkill(slurm_env, work / "killed")
    finally:
        subprocess.run([str(LOCAL_CLUSTER), "stop", str(cluster)], check=False)
        if args.keep:
            print(f"[bench] kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    command = "flock /work/cpu.lock .venv/bin/python scripts/bench_slurm.py --out docs/CLUSTER.md"
    body = (f"{SECTION}\n\n"
            "The tiny recipe (`--corpus-preset tiny --models lstm`, a 1-epoch tiny training config, `--nj 2`) "
            "on a Slurm 22.05 one-node cluster without GPUs on 127.0.0.1 (4 advertised CPUs, a shared 2-core "
            "machine), with nothing set but `ASRTOOLS_LAUNCHER=slurm ASRTOOLS_SLURM_NPROC=2`, against the local "
            "launchers (`ASRTOOLS_LAUNCHER=torchrun ASRTOOLS_NPROC=2`). Wall seconds per stage from run.sh's "
            "log; SLURM jobs count array tasks; the rerun is the same SLURM command again.\n\n"
            f"Command: `{command}`\n\n"
            f"{_table(local_log, slurm_log, rerun_log)}\n\n"
            f"Whole runs: local {local_s:.0f} s, SLURM {slurm_s:.0f} s, SLURM rerun {rerun_s:.0f} s (nothing "
            f"submitted; each stage checked by `asrtools --check` on the submit host).\n"
            + "".join(f"- {line}\n" for line in checks)
            + f"- SIGKILL of run.sh while its first job (the synthesis array) ran: squeue empty after "
              f"{empty_s:.1f} s; the rerun finished stage 0 in {resume_s:.0f} s.\n")
    print(body)
    if args.out:
        from asrtools.report.markdown import write_markdown_section

        write_markdown_section(args.out, SECTION, body)
        print(f"[bench] wrote {SECTION!r} into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
