"""Small helpers shared by asrtools' scripts and commands that belong to no one subsystem.

`asrtools.utils.markdown` rewrites one section of a Markdown page; `asrtools.utils.provenance`
records the code, software and hardware of the process that made a set of numbers.
"""
from asrtools.utils.markdown import write_markdown_section

__all__ = ["write_markdown_section"]
