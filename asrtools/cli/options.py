"""Click options shared by stage commands (config file, overrides, force) and `NAME=VALUE` parsing."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Tuple

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


def split_named(option: str, spec: str, allow_bare: bool = False) -> Tuple[Optional[str], str]:
    """Split the `NAME=VALUE` value of a repeatable option, e.g. `--exp lstm=exp/lstm`.

    Args:
      option: the option's flag, for the error message.
      spec: the text given on the command line.
      allow_bare: accept a value without a name: `spec` has no `=`, or its left side
        looks like a path (contains `/` or ends in `.yaml` / `.pt`).

    Returns:
      (NAME, VALUE); (None, spec) for an accepted bare value.

    Raises:
      ConfigError: naming the option and the value, when NAME or VALUE is missing.
    """
    from asrtools.errors import ConfigError

    name, sep, value = spec.partition("=")
    if allow_bare and (not sep or "/" in name or name.endswith((".yaml", ".pt"))):
        return None, spec
    if not sep or not name or not value:
        raise ConfigError(f"{option} {spec!r}: expected NAME=VALUE")
    return name, value
