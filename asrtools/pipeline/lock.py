"""An exclusive, non-blocking lock on a stage directory.

Uses `fcntl.flock`, so the kernel releases the lock when the holder dies (even by
SIGKILL): a crashed run never leaves a stale lock behind. The lock file records the
holder's PID and command line for the refusal message.
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Optional, Type

from asrtools.errors import StageLockedError

LOCK_NAME = ".lock"


class StageLock:
    """Context manager holding an exclusive lock on `directory/.lock`.

    Raises `StageLockedError` at once (no waiting) if another process holds it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: Optional[int] = None

    def __enter__(self) -> "StageLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise StageLockedError(
                f"{self.directory}: stage directory is in use by {holder}; "
                "wait for it to finish (or stop it) and run again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})".encode())
        self._fd = fd
        return self

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
