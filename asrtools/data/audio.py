"""Checks on audio files that the audio readers do not make.

A WAV file cut short (an interrupted copy) still opens: soundfile and lhotse read the
samples that are there and report a shorter signal, silently. `wav_truncation` compares the
size its `data` chunk declares with the bytes present; nothing in soundfile or lhotse
exposes that (hence this small RIFF chunk walk).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional


def wav_truncation(path: Path) -> Optional[str]:
    """Why the RIFF/WAVE file `path` is truncated, or None (complete, or not a RIFF/WAVE file).

    Args:
      path: an audio file; files that do not start with a RIFF/WAVE header are not checked.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                present = size - position - 8
                if chunk_size != 0xFFFFFFFF and present < chunk_size:  # 0xFFFFFFFF: size unknown (streamed)
                    return f"its header declares {chunk_size} bytes of samples but only {present} are present"
                return None
            position += 8 + chunk_size + (chunk_size & 1)
    return "it has no data chunk"
