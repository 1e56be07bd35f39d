"""Where numbers come from: the code, software and hardware of the process that made them.

`provenance()` returns a JSON-serialisable record of the running process: the asrtools
version, the git commit of the checkout asrtools is imported from and whether its tracked
files differ from that commit, the Python and torch versions, the CPU model and core count,
the GPU this process used (if it initialised CUDA) and torch's intra-op thread count.

Stages write it into their JSON outputs (and `asrtools.pipeline.run_stage` into every
done-marker), so a page built later prints the provenance of the runs that made its numbers,
not of the page build; benchmark scripts print it under their tables. `format_provenance`
renders a record as one line. Nothing here imports torch: a process that never loaded it
records the installed torch version and no thread count.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import asrtools

#: The git checkout asrtools is imported from (when it is one).
SOURCE_ROOT = Path(asrtools.__file__).resolve().parent.parent
SHORT_COMMIT = 12


def _git(*args: str) -> Optional[str]:
    """stdout of `git -C SOURCE_ROOT ARGS...`, or None when git or the repository is missing."""
    try:
        proc = subprocess.run(["git", "--no-optional-locks", "-C", str(SOURCE_ROOT), *args],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> Tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the checkout asrtools runs from; (None, None) outside a git checkout.

    Dirty means a tracked file differs from the commit (staged or not); untracked files are
    not counted (experiment outputs may live in the tree). Computed once per process. A
    repository that merely contains the installed package (e.g. a .venv inside a clone) does
    not count: its top level must be the directory holding the `asrtools` package.
    """
    head = _git("rev-parse", "--show-toplevel", "HEAD")
    if head is None:
        return None, None
    lines = head.split()
    if len(lines) != 2 or Path(lines[0]).resolve() != SOURCE_ROOT:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return lines[1], (bool(status.strip()) if status is not None else None)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def installed_torch_version() -> Optional[str]:
    """torch's `__version__` (with its build label, e.g. `2.9.1+cu128`) without importing torch.

    Read from `torch/version.py`; the distribution metadata (which lacks the label) is the
    fallback. None when torch is not installed.
    """
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        try:
            text = (Path(spec.origin).parent / "version.py").read_text()
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, flags=re.M)
            if found:
                return found.group(1)
        except OSError:
            pass
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_facts() -> Tuple[Optional[str], Optional[int], Optional[str]]:
    """(torch version, intra-op threads, GPU name) without importing torch.

    Threads and GPU are known only when this process loaded torch; the GPU is named only
    when this process initialised CUDA (i.e. computed on it).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return installed_torch_version(), None, None
    gpu = None
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        gpu = cuda.get_device_name(cuda.current_device())
    return str(torch.__version__), int(torch.get_num_threads()), gpu


def provenance(threads: Optional[int] = None) -> Dict[str, Any]:
    """The provenance record of this process (JSON-serialisable).

    Args:
      threads: the thread count that produced the numbers when it is not torch's (e.g. an
        external engine's or a benchmark child's); default: torch's intra-op threads.

    Returns:
      `{asrtools, git_commit, git_dirty, python, torch, cpu, cpu_count, gpu, threads}`;
      unknown values are None.
    """
    commit, dirty = git_state()
    torch_version, torch_threads, gpu = _torch_facts()
    return {
        "asrtools": asrtools.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch_version,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "threads": threads if threads is not None else torch_threads,
    }


def format_provenance(record: Optional[Mapping[str, Any]]) -> str:
    """One line naming the commit (and whether the tree was dirty), torch, CPU/GPU and threads.

    Args:
      record: a `provenance()` record (as read back from JSON); None or {} for artifacts
        written before provenance was recorded.
    """
    if not record:
        return "provenance not recorded"
    commit = record.get("git_commit")
    if commit:
        code = f"asrtools {record.get('asrtools', '?')} at git {commit[:SHORT_COMMIT]}"
        code += {True: " (dirty tree)", False: " (clean tree)"}.get(record.get("git_dirty"), " (tree state unknown)")
    else:
        code = f"asrtools {record.get('asrtools', '?')} (not a git checkout)"
    torch = f"torch {record['torch']}" if record.get("torch") else "no torch"
    cores = f", {record['cpu_count']} cores" if record.get("cpu_count") else ""
    gpu = f"GPU {record['gpu']}" if record.get("gpu") else "no GPU"
    threads = record.get("threads")
    thread_text = f"{threads} thread{'s' if threads != 1 else ''}" if threads is not None else "threads n/a"
    return (f"{code}; Python {record.get('python', '?')}, {torch}; CPU {record.get('cpu', '?')}{cores}; "
            f"{gpu}; {thread_text}")
