"""Strict YAML config loading: unknown keys, wrong types, overrides, validation."""
from __future__ import annotations

import dataclasses
from typing import Dict, List

import pytest

from asrtools.config import load_config, parse_overrides
from asrtools.errors import ConfigError


@dataclasses.dataclass
class Inner:
    depth: int = 2


@dataclasses.dataclass
class Outer:
    name: str = "x"
    rate: float = 0.5
    sizes: List[int] = dataclasses.field(default_factory=lambda: [1, 2])
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    inner: Inner = dataclasses.field(default_factory=Inner)

    def validate(self) -> None:
        if self.rate < 0:
            raise ValueError("rate must be >= 0")


def test_loads_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: abc\nrate: 1\ninner:\n  depth: 5\ncounts: {a: 3}\n")
    cfg = load_config(Outer, path, ["inner.depth=7", "sizes=[4, 5]"])
    assert cfg == Outer(name="abc", rate=1.0, sizes=[4, 5], counts={"a": 3}, inner=Inner(depth=7))


@pytest.mark.parametrize("text", ["1e-3", "1E-3", "+1e-3", "1.e-3", ".1e-2", "10e-4"])
def test_exponent_without_a_dot_is_a_float(tmp_path, text):
    # PyYAML reads these as strings (YAML 1.1); a float field must still take them.
    path = tmp_path / "c.yaml"
    path.write_text(f"rate: {text}\n")
    assert load_config(Outer, path).rate == pytest.approx(1e-3)
    assert load_config(Outer, None, [f"rate={text}"]).rate == pytest.approx(1e-3)


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: abc\nnmae: typo\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'nmae'"):
        load_config(Outer, path)


def test_unknown_nested_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  deep: 1\n")
    with pytest.raises(ConfigError, match=r"inner: unknown key 'deep'"):
        load_config(Outer, path)


@pytest.mark.parametrize("text,match", [
    ("rate: fast\n", "rate: expected a number"),
    ("rate: 1e\n", "rate: expected a number"),
    ("rate: nan-ish\n", "rate: expected a number"),
    ("sizes: 3\n", "sizes: expected a list"),
    ("inner: 3\n", "inner: expected a section"),
    ("counts: {a: x}\n", r"counts.a: expected an integer"),
    ("rate: -1\n", "rate must be >= 0"),
    ("- a\n- b\n", "expected a mapping"),
    ("name: [unclosed\n", "malformed YAML"),
])
def test_bad_values(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(Outer, path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_override_syntax():
    assert parse_overrides(["a.b=3", "c=foo", "d="]) == {"a": {"b": 3}, "c": "foo", "d": ""}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["novalue"])


def test_yaml_is_safe_loaded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(Outer, path)
