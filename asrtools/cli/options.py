"""Click options shared by stage commands (config file, overrides, force) and `NAME=VALUE` parsing."""
from __future__ import annotations

import contextlib
import contextvars
import functools
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import click

# Set while `asrtools ...` runs: filled in when the subcommand is a stage command.
_STAGE_COMMAND: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "asrtools_stage_command", default=None)


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
    """Add `--force` (rerun the stage even if its done-marker is up to date) to a stage command.

    Every stage command has it, and it marks the command as one: `asrtools --check` and
    `asrtools --task` accept only such commands, and `--check` reports the command's
    `--device` (what a job for it must ask for).
    """
    @functools.wraps(func)
    def stage_command(*args: Any, **kwargs: Any) -> Any:
        seen = _STAGE_COMMAND.get()
        if seen is not None:
            seen["device"] = kwargs.get("device")
        return func(*args, **kwargs)

    stage_command.asrtools_stage_command = True  # type: ignore[attr-defined]
    return click.option("--force", is_flag=True, help="Rerun even if up to date.")(stage_command)


def is_stage_command(command: click.Command) -> bool:
    """Whether `command` is a stage command (made with `force_option`)."""
    return bool(getattr(command.callback, "asrtools_stage_command", False))


@contextlib.contextmanager
def stage_command_seen() -> Iterator[Dict[str, Any]]:
    """A dict that a stage command fills in when it starts (empty if none started)."""
    seen: Dict[str, Any] = {}
    token = _STAGE_COMMAND.set(seen)
    try:
        yield seen
    finally:
        _STAGE_COMMAND.reset(token)


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
