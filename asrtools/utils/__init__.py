"""Small helpers shared by asrtools' scripts and commands that belong to no one subsystem."""
from asrtools.utils.markdown import write_markdown_section

__all__ = ["write_markdown_section"]
