"""asrtools.utils.progress: a tqdm bar on a terminal, plain periodic log lines anywhere else."""
from __future__ import annotations

import io
import logging
import os
import pty

import pytest
from tqdm import tqdm

from asrtools.utils.progress import LineProgress, progress


@pytest.fixture
def log_stream():
    """The `asrtools` logger's lines, as a log file would get them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("asrtools")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield stream
    log.removeHandler(handler)
    log.setLevel(old_level)


def test_a_file_gets_plain_periodic_lines_and_no_carriage_returns(log_stream):
    target = io.StringIO()  # where a bar would be drawn: not a terminal
    bar = progress(range(50), desc="fbank", unit="cuts", stream=target, interval=0.0)
    assert isinstance(bar, LineProgress)
    assert sum(1 for _ in bar) == 50
    text = log_stream.getvalue()
    assert target.getvalue() == "" and "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 51  # one per update at interval 0, one at the end
    assert lines[0].startswith("fbank: 1/50 cuts (2%)")
    assert lines[-1].startswith("fbank: 50/50 cuts (100%), ") and " s, " in lines[-1]


def test_lines_are_rate_limited_and_carry_postfix_initial_and_unknown_totals(log_stream):
    with progress(total=10, desc="whisper", unit="cut", initial=4, stream=io.StringIO()) as bar:
        for _ in range(6):
            bar.update(1)
        bar.set_postfix(loss="0.123", step=7)
    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 1  # the default interval (30 s) did not pass: only the last line
    assert lines[0].startswith("whisper: 10/10 cut (100%)") and lines[0].endswith("loss=0.123, step=7")
    log_stream.truncate(0)
    log_stream.seek(0)
    with progress(desc="epoch 1", unit="batch", leave=False, stream=io.StringIO(), interval=0.0) as bar:
        bar.update(3)
    assert len(log_stream.getvalue().splitlines()) == 1  # leave=False: no last line
    assert log_stream.getvalue().startswith("epoch 1: 3 batch")  # no total: no share, no time left
    log_stream.truncate(0)
    log_stream.seek(0)
    for _ in progress(range(3), disable=True, stream=io.StringIO(), interval=0.0):
        pass
    assert log_stream.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            bar = progress(range(3), desc="synth", stream=terminal)
            assert isinstance(bar, tqdm)
            assert sum(1 for _ in bar) == 3
            terminal.flush()
        assert "\r" in os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
