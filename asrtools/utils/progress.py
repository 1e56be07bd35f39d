"""Progress reporting that suits where the output goes.

On a terminal, `progress` is a tqdm bar, redrawn in place. When standard error is a file or a
pipe (a SLURM batch job's log, `run.sh > log 2>&1`, a CI log), carriage-return redraws would
fill the file with megabytes of half-lines; there it instead logs one plain line through the
`asrtools` logger every `interval` seconds and one when the loop ends, e.g.

    fbank: 1200/4000 cuts (30%), 41.2 cuts/s, about 68 s left

Both offer the part of tqdm's interface that asrtools uses: iterate over the wrapped iterable,
`update(n)`, `set_postfix(**values)`, `close()`, and use as a context manager.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO, Union

from tqdm import tqdm

logger = logging.getLogger("asrtools")

DEFAULT_INTERVAL = 30.0  # seconds between progress lines in a log file


class LineProgress:
    """tqdm's interface, reporting by log lines instead of a redrawn bar.

    Args:
      iterable: what to iterate over (None: count with `update`).
      total: the expected count (default: len(iterable) when it has one).
      desc: what is counted, the line's prefix.
      unit: the counted thing's name.
      initial: the count to start from (work done by an earlier, resumed run).
      disable: report nothing.
      leave: log a last line when the loop ends.
      interval: seconds between lines while the loop runs.
      log: where the lines go.
    """

    def __init__(self, iterable: Optional[Iterable[Any]] = None, total: Optional[float] = None, desc: str = "",
                 unit: str = "it", initial: float = 0, disable: bool = False, leave: bool = True,
                 interval: float = DEFAULT_INTERVAL, log: logging.Logger = logger) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:  # no length (e.g. a data loader over a sampler without one)
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.disable, self.leave, self.interval, self.log = disable, leave, interval, log
        self.postfix = ""
        self.start = self.last_line = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "LineProgress: nothing to iterate over"
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count `n` more; log a line if `interval` seconds passed since the last one."""
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last_line >= self.interval:
            self.last_line = now
            self.log.info("%s", self.line(now))

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count, e.g. loss=0.123 (as tqdm's set_postfix)."""
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        """End the loop: log the last line (when `leave`)."""
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.leave:
            self.log.info("%s", self.line(time.monotonic(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        """The progress line: count, share of the total, rate, time left (or taken)."""
        seconds = now - self.start
        count = f"{_number(self.n)}/{_number(self.total)}" if self.total else _number(self.n)
        parts = [f"{count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        rate = (self.n - self.initial) / seconds if seconds > 0 else 0.0
        if final:
            parts.append(f"{seconds:.1f} s")
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if not final and self.total and self.total > self.n:
                parts.append(f"about {(self.total - self.n) / rate:.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        prefix = f"{self.desc}: " if self.desc else ""
        return prefix + ", ".join(parts)


def _number(value: Optional[float]) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def progress(iterable: Optional[Iterable[Any]] = None, *, total: Optional[float] = None, desc: str = "",
             unit: str = "it", initial: float = 0, disable: bool = False, leave: bool = True,
             stream: Optional[TextIO] = None, interval: float = DEFAULT_INTERVAL) -> Union[tqdm, LineProgress]:
    """A progress reporter for a loop: a tqdm bar on a terminal, periodic log lines elsewhere.

    Args:
      iterable: what to iterate over (None: count with `update`).
      total: the expected count (default: len(iterable) when it has one).
      desc: what is counted, shown first.
      unit: the counted thing's name, e.g. "cuts".
      initial: the count to start from (work an earlier, resumed run did).
      disable: show nothing (e.g. on every DDP rank but the first).
      leave: keep the finished bar / log a last line when the loop ends.
      stream: where a bar would be drawn (default: standard error); a bar only when it is a terminal.
      interval: seconds between log lines when it is not.

    Example:
      >>> for cut in progress(cuts, desc="fbank", unit="cuts"):
      ...     compute(cut)
    """
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    file=stream, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                        leave=leave, interval=interval)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
