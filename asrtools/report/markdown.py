"""Rewrite one `## ` section of a Markdown page (e.g. docs/benchmarks.md) and keep the others.

Each benchmark script owns one section of docs/benchmarks.md; running it replaces that
section in place (or appends it) so that the other scripts' sections survive.
"""
from __future__ import annotations

import re
from pathlib import Path

from asrtools.pipeline.atomic import atomic_write_text

NEW_PAGE = "# Benchmarks\n"


def write_markdown_section(path: Path, heading: str, body: str, new_page: str = NEW_PAGE) -> None:
    """Replace (or append) the section of `path` that starts with the line `heading`.

    Args:
      path: the Markdown file; created as `new_page` (default: a "# Benchmarks" page) when it
        does not exist.
      heading: the section's heading line, e.g. "## WER scoring"; the section runs up to
        the next "## " heading or the end of the file.
      body: the new section, heading line included.

    The file is written atomically and ends with exactly one newline.
    """
    text = path.read_text() if path.exists() else new_page
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", flags=re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    atomic_write_text(path, text.rstrip("\n") + "\n")
