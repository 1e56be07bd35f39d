"""Paths as generated pages show them: relative, never the absolute path of the machine that built them.

A results page is published inside the repository (egs/<corpus>/<recipe>/RESULTS.md) and read
elsewhere, so an absolute path (`/work/...`, a temporary directory) says nothing to a reader
and leaks the builder's file system. Every page builder passes the paths it prints through
`display_path` (relative to the recipe directory the command ran in, i.e. the working
directory, where the recipe's `exp/...` paths start) and free text that may hold paths
(recipe notes) through `relative_paths`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

# An absolute POSIX path: "/" + segments, not preceded by a word character, "/" or ":" (so
# "ref / hyp", "km/h" and the "//" of a URL are left alone).
_ABSOLUTE = re.compile(r"(?<![\w.~:/-])/(?:[\w.+@=-]+/)*[\w.+@=-]+/?")


def display_path(path: Union[str, Path, None], base: Optional[Union[str, Path]] = None) -> str:
    """`path` relative to `base` (default: the working directory); '' for None or ''."""
    if path is None or str(path) == "":
        return ""
    start = os.path.abspath(base if base is not None else os.getcwd())
    return os.path.relpath(os.path.abspath(str(path)), start)


def relative_paths(text: str, base: Optional[Union[str, Path]] = None) -> str:
    """`text` with every absolute path in it made relative to `base` (default: the working directory)."""
    return _ABSOLUTE.sub(lambda m: display_path(m.group(0), base), text)
