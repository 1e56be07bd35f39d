"""Locks on a stage directory: the stage lock (exclusive, or shared by a sharded stage's tasks)
and a blocking mutex for one-time set-up work.

Both use `fcntl.flock`, so the kernel releases a lock when its holder dies (even by SIGKILL):
a crashed run never leaves a stale lock behind. The stage lock file records its holder's
PID, host and command line for the refusal message. Across machines (SLURM tasks on several
nodes) flock holds only where the shared file system supports it (local disks, NFSv4, Lustre
mounted with `-o flock`).
"""
from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Optional, Type

from asrtools.errors import StageLockedError

LOCK_NAME = ".lock"
LOCK_PREFIX = ".lock"  # every lock file's name starts with this; stage clean-ups keep them


def _holder() -> str:
    args = [Path(sys.argv[0]).name, *sys.argv[1:5]] if sys.argv else ["?"]
    return f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(args)})"


class StageLock:
    """Context manager holding the lock of `directory/.lock`, never waiting.

    A whole-stage run holds it exclusively; the tasks of a sharded stage
    (`asrtools --task I ...`) hold it shared, so several tasks run at once while a
    whole-stage run (or a clean-up before a rerun) is refused until they have all ended.

    Raises:
      StageLockedError: at once, naming the holder, if the lock is taken in a conflicting mode.
    """

    def __init__(self, directory: Path, shared: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.shared = shared
        self._fd: Optional[int] = None

    def _refuse(self, fd: int) -> StageLockedError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        return StageLockedError(
            f"{self.directory}: stage directory is in use by {holder}; "
            "wait for it to finish (or stop it) and run again"
        )

    def __enter__(self) -> "StageLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            err = self._refuse(fd)
            os.close(fd)
            raise err from None
        self._fd = fd
        self._record()
        return self

    def _record(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, _holder().encode(), 0)

    def downgrade(self) -> None:
        """Turn an exclusive hold into a shared one.

        flock converts by releasing first: another process may take the lock in between,
        which raises StageLockedError here.
        """
        assert self._fd is not None and not self.shared
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refuse(self._fd) from None
        self.shared = True

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class WaitLock:
    """Context manager holding an exclusive flock on `path`, waiting as long as it takes.

    For short critical sections that every process must pass once, e.g. a sharded stage's
    set-up, which the first task does while the others wait for it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: Optional[int] = None

    def __enter__(self) -> "WaitLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
