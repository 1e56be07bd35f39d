"""Click options shared by stage commands (config file, overrides, output dir, force)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--config FILE` and repeatable `--set key=value` overrides."""
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one config value, e.g. --set num_speakers=20 (repeatable).",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="YAML config file (unknown keys are an error).",
    )(func)
    return func


def force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--force`: rerun the stage even if its done-marker is up to date."""
    return click.option("--force", is_flag=True, help="Rerun even if up to date.")(func)
