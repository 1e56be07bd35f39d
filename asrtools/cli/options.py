"""Click options shared by stage commands (config file, overrides, force) and `NAME=VALUE` parsing."""
from __future__ import annotations

import contextlib
import inspect
import contextvars
import functools
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import click

# Set while `asrtools ...` runs: filled in when the subcommand is a stage command.
_STAGE_COMMAND: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "asrtools_stage_command", default=None)


# How a command builds its config from (--config path, --set overrides, all raw parsed options).
ConfigLoader = Callable[[Optional[Path], Tuple[str, ...], Dict[str, Any]], Any]


def dataclass_loader(cls: Any, defaults: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
                     ) -> ConfigLoader:
    """The loader of a command whose config is dataclass `cls` (defaults, from the parsed options, optional).

    `cls` may be given as `"module:ClassName"`, imported only when the config is loaded (keeps
    `asrtools --help` fast).
    """

    def load(config_path: Optional[Path], overrides: Tuple[str, ...], opts: Dict[str, Any]) -> Any:
        from asrtools.config import load_config

        return load_config(resolve_class(cls), config_path, overrides,
                           defaults=defaults(opts) if defaults else None)

    return load


def resolve_class(spec: Any) -> Any:
    """A class given as itself or as `"module:ClassName"`."""
    if not isinstance(spec, str):
        return spec
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def print_config(config: Any) -> None:
    """Print a config dataclass as YAML (every key, in field order)."""
    import yaml

    from asrtools.config import to_dict

    click.echo(yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False), nl=False)


class ShowConfigOption(click.Option):
    """`--show-config`: print the effective config and exit, before required options are checked.

    It is eager and acts in `handle_parse_result`, which sees every raw parsed option, so
    `--config`/`--set` (and e.g. `--preset`) count even though they are processed later.
    """

    def __init__(self, *args: Any, loader: ConfigLoader, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loader = loader

    def handle_parse_result(self, ctx: click.Context, opts: Any, args: Any) -> Any:
        if opts.get(self.name) is True and not ctx.resilient_parsing:
            # Options not given are absent or click's UNSET sentinel here (not yet defaulted).
            given = {k: v for k, v in opts.items() if isinstance(v, (str, int, float, list, tuple, Path))}
            raw_path = given.get("config_path")
            overrides = tuple(given.get("overrides") or ())
            print_config(self.loader(Path(raw_path) if raw_path else None, overrides, given))
            ctx.exit(0)
        return super().handle_parse_result(ctx, opts, args)


def config_options(config: Any, defaults: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add `--config FILE`, repeatable `--set key=value` overrides and `--show-config`.

    Args:
      config: the command's config dataclass (or `"module:ClassName"`), or a `ConfigLoader` (a function of the
        config path, the overrides and the raw parsed options) for configs built otherwise.
      defaults: for a dataclass, a function of the raw parsed options giving the defaults
        under the file and overrides (e.g. the `--preset`'s values).

    Example: `@config_options(BpeConfig)` above a command taking `config_path` and `overrides`.
    """
    import dataclasses

    is_class = isinstance(config, str) or dataclasses.is_dataclass(config)
    loader = dataclass_loader(config, defaults) if is_class else config
    if not is_class and (not callable(config) or list(inspect.signature(config).parameters)[2:] != ["opts"]):
        # e.g. a bare `@config_options` above a command: it must name its config now
        raise TypeError("config_options needs the command's config dataclass or loader: @config_options(Cls)")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--show-config", is_flag=True, is_eager=True, expose_value=False, cls=ShowConfigOption,
            loader=loader,
            help="Print the effective config (defaults + --config + --set, every key) as YAML and exit.",
        )(func)
        func = click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one config key, e.g. --set section.key=VALUE (repeatable; --show-config "
                 "lists the keys).",
        )(func)
        func = click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="YAML config file (unknown keys are an error).",
        )(func)
        func.asrtools_config_loader = loader  # type: ignore[attr-defined]
        return func

    return decorate


def show_config_option(loader: ConfigLoader) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only `--show-config`, for a command that takes its config and `overrides` its own way."""
    return click.option(
        "--show-config", is_flag=True, is_eager=True, expose_value=False, cls=ShowConfigOption, loader=loader,
        help="Print the effective config (defaults + config file + --set, every key) as YAML and exit.")


def train_config_loader(config_path: Optional[Path], overrides: Tuple[str, ...], opts: Dict[str, Any]) -> Any:
    """The training config (its dataclass follows the `task:` key)."""
    from asrtools.training.config import load_train_config

    return load_train_config(config_path, overrides)


def config_loader(command: click.Command) -> Optional[ConfigLoader]:
    """The config loader of a command made with `config_options` (None for other commands)."""
    for param in command.params:
        if isinstance(param, ShowConfigOption):
            return param.loader
    return None


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
