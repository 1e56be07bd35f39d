"""The stage contract shared by every asrtools command (see `asrtools.pipeline.stage`)."""
from asrtools.pipeline.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from asrtools.pipeline.fingerprint import DONE_MARKER, fingerprint_input, hash_file, hash_json, read_marker
from asrtools.pipeline.lock import StageLock
from asrtools.pipeline.stage import (
    INPROGRESS_MARKER,
    StageChecked,
    StageContext,
    StageMode,
    StageStatus,
    current_stage_mode,
    run_stage,
    stage_log_path,
    stage_mode,
)

__all__ = [
    "DONE_MARKER",
    "INPROGRESS_MARKER",
    "StageChecked",
    "StageContext",
    "StageLock",
    "StageMode",
    "StageStatus",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "current_stage_mode",
    "fingerprint_input",
    "hash_file",
    "hash_json",
    "read_marker",
    "run_stage",
    "stage_log_path",
    "stage_mode",
]
