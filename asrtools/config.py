"""Strict YAML configuration loading into dataclasses.

Every stage's options are a (possibly nested) dataclass. `load_config` reads a YAML file
with `yaml.safe_load`, rejects unknown keys and wrongly typed values with a one-line
`ConfigError` naming the file and the key, and applies command-line overrides given as
`key.sub=value` strings (values parsed as YAML scalars).
"""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Type, TypeVar

import yaml

from asrtools.errors import ConfigError

T = TypeVar("T")

# YAML 1.1 (PyYAML) reads `1e-3` (no dot in the mantissa) as a string; a float field takes it.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def read_yaml(path: Path) -> Dict[str, Any]:
    """Read a YAML mapping with `safe_load`; an empty file gives `{}`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: malformed YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Iterable[str]) -> Dict[str, Any]:
    """Turn `["a.b=3", "c=foo"]` into the nested mapping `{"a": {"b": 3}, "c": "foo"}`."""
    nested: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return nested


def merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    """Recursively merge `update` into a copy of `base` (update wins)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: value {value!r} has the wrong type (expected {annotation})")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return _build(annotation, value, where)
    if origin in (list, tuple, typing.List, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin in (tuple, typing.Tuple) else items
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        val_type = args[1] if len(args) == 2 else Any
        return {k: _check_type(v, val_type, f"{where}.{k}") for k, v in value.items()}
    if annotation is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: Type[T], data: Dict[str, Any], where: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_type(value, hints[name], f"{where}.{name}" if where else name)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    return obj


def from_dict(cls: Type[T], data: Dict[str, Any], source: str = "config") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types.

    Args:
      cls: the dataclass type; it may define `validate()` raising ValueError.
      data: the mapping read from YAML (plus overrides).
      source: the name used in error messages (usually the config file path).
    """
    return _build(cls, data, source)


def load_config(
    cls: Type[T],
    path: Optional[Path] = None,
    overrides: Iterable[str] = (),
    defaults: Optional[Dict[str, Any]] = None,
) -> T:
    """Load `cls` from YAML file `path` (optional) on top of `defaults`, then `overrides`."""
    data = dict(defaults or {})
    source = str(path) if path is not None else "config"
    if path is not None:
        data = merge(data, read_yaml(Path(path)))
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data, source)


def to_dict(obj: Any) -> Dict[str, Any]:
    """A dataclass as a plain JSON/YAML-serialisable dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))
