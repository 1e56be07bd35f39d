"""`--show-config` on every command with `--config/--set`: the effective config as YAML, then exit 0.

It needs none of the command's required options, lists every key of the config dataclass,
shows `--set` overrides and `--config` values, and an unknown key stays a one-line error.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Tuple

import click
import pytest
import yaml
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.cli.options import config_loader

from test_help_examples import walk


def _config_commands() -> List[Tuple[str, ...]]:
    return [path for path, command in walk(cli) if config_loader(command) is not None]


CONFIG_COMMANDS = _config_commands()


ROOT = Path(__file__).resolve().parents[1]
# Commands whose config has no usable defaults: shown on top of a recipe's file.
BASE_CONFIG = {("report", "results"): ROOT / "egs/synth/asr/conf/report.yaml"}


def _show(path: Tuple[str, ...], *extra: str) -> click.testing.Result:
    base = ["--config", str(BASE_CONFIG[path])] if path in BASE_CONFIG else []
    return CliRunner().invoke(cli, [*path, "--show-config", *base, *extra])


def test_the_config_commands_are_found() -> None:
    names = {" ".join(path) for path in CONFIG_COMMANDS}
    assert {"train", "data synth", "cohorts auto", "bpe train", "model info", "report results"} <= names


def test_show_config_needs_the_file_where_there_are_no_defaults() -> None:
    result = CliRunner().invoke(cli, ["report", "results", "--show-config"])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=[" ".join(p) for p in CONFIG_COMMANDS])
def test_show_config_lists_every_key(path: Tuple[str, ...]) -> None:
    result = _show(path)
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    config = config_loader(_command(path))(BASE_CONFIG.get(path), (), {})
    assert list(shown) == [field.name for field in dataclasses.fields(config)]
    assert shown == yaml.safe_load(yaml.safe_dump(dataclasses.asdict(config)))


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=[" ".join(p) for p in CONFIG_COMMANDS])
def test_show_config_shows_an_override(path: Tuple[str, ...]) -> None:
    shown = yaml.safe_load(_show(path).output)
    key = "seed" if "seed" in shown else next(k for k, v in shown.items() if type(v) in (int, str))
    new = shown[key] + 7 if type(shown[key]) is int else "an overridden value"
    result = _show(path, "--set", f"{key}={new}")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)[key] == new


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=[" ".join(p) for p in CONFIG_COMMANDS])
def test_unknown_key_is_a_one_line_error(path: Tuple[str, ...]) -> None:
    result = _show(path, "--set", "no_such_key=1")
    assert result.exit_code != 0
    assert "unknown key 'no_such_key'" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_cohorts_auto_needs_no_inputs_and_reads_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "cohorts.yaml"
    conf.write_text("auto:\n  min_cluster_speakers: 4\n")
    result = CliRunner().invoke(cli, ["cohorts", "auto", "--config", str(conf), "--show-config",
                                      "--set", "auto.k_max=6"])
    assert result.exit_code == 0, result.output
    auto = yaml.safe_load(result.output)["auto"]
    assert (auto["k_max"], auto["min_cluster_speakers"]) == (6, 4)


def test_synth_shows_the_preset() -> None:
    tiny = yaml.safe_load(_show(("data", "synth"), "--preset", "tiny").output)
    default = yaml.safe_load(_show(("data", "synth")).output)
    assert tiny != default


def test_without_show_config_required_options_are_still_required() -> None:
    result = CliRunner().invoke(cli, ["cohorts", "auto", "--set", "auto.k_max=6"])
    assert result.exit_code == 2 and "Missing option" in result.output


def _command(path: Tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)  # type: ignore[union-attr]
    return command


def test_small_sample_errors_name_the_key_to_change() -> None:
    import numpy as np

    from asrtools.errors import ConfigError, DataError
    from asrtools.fairness.auto import choose_k
    from asrtools.fairness.config import AutoConfig
    from asrtools.fairness.crossfit import speaker_folds

    vectors = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(DataError, match=r"3 speakers; discovery needs >= 2 x 10 .*lower auto.min_cluster_speakers"):
        choose_k(vectors, AutoConfig(), seed=0)
    with pytest.raises(DataError, match="lower auto.k"):
        choose_k(vectors, AutoConfig(k=5), seed=0)
    with pytest.raises(ConfigError, match="lower measure.folds"):
        speaker_folds(3, 5, seed=0)


def test_a_bare_config_options_is_refused() -> None:
    from asrtools.cli.options import config_options

    def command(config_path: Path, overrides: Tuple[str, ...], out_dir: Path) -> None:
        """A command callback, not a config loader."""

    with pytest.raises(TypeError, match="config dataclass or loader"):
        config_options(command)
