"""Small helpers shared by asrtools' scripts and commands that belong to no one subsystem."""
from asrtools.utils.markdown import write_markdown_section
from asrtools.utils.provenance import format_provenance, provenance

__all__ = ["format_provenance", "provenance", "write_markdown_section"]
