"""Errors that the CLI reports as one clear line (no traceback) with a non-zero exit.

Raise an `AsrtoolsError` (or a subclass) for anything caused by the user's input: a bad
config key, a missing or corrupt audio file, an empty transcript, a malformed manifest.
The message must name the offending item (file, line, cut id, key). Any other exception
is a bug in asrtools and is shown with its traceback.
"""


class AsrtoolsError(Exception):
    """A user-facing error; `str(err)` is the one-line message shown to the user."""


class ConfigError(AsrtoolsError):
    """A configuration file or option is malformed, unknown or out of range."""


class DataError(AsrtoolsError):
    """Input data (audio, transcripts, manifests) is missing, corrupt or inconsistent."""


class StageLockedError(AsrtoolsError):
    """Another process holds the lock of a stage directory."""


class ToolError(AsrtoolsError):
    """An external program (espeak-ng, sox, sclite, ...) is missing or failed."""


def describe(err: BaseException) -> str:
    """`Type: message` of a third-party exception, first line only (for one-line errors)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
