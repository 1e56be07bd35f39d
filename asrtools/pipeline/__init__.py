"""The stage contract shared by every asrtools command (see `asrtools.pipeline.stage`)."""
from asrtools.pipeline.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from asrtools.pipeline.fingerprint import DONE_MARKER, fingerprint_input, hash_file, hash_json, read_marker
from asrtools.pipeline.lock import StageLock
from asrtools.pipeline.stage import INPROGRESS_MARKER, StageContext, run_stage, stage_log_path

__all__ = [
    "DONE_MARKER",
    "INPROGRESS_MARKER",
    "StageContext",
    "StageLock",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fingerprint_input",
    "hash_file",
    "hash_json",
    "read_marker",
    "run_stage",
    "stage_log_path",
]
