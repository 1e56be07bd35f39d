"""Every `Example:` in a command's --help (and every `asrtools` line in README/docs code blocks) parses.

Doc lines with placeholders (`$VAR`, `<x>`, `...`) are skipped.
Parsing means: the command path exists, every option named exists on that command, no stray
arguments are left, and every `--set KEY=VALUE` key exists in the config the command loads with
a value of the right type. Examples that only print (`--show-config`) are run in full.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import click
import pytest
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.cli.options import config_loader

ROOT = Path(__file__).resolve().parents[1]


def walk(group: click.Command, path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], click.Command]]:
    """Every command under `group` with its name path (lazy families loaded through get_command)."""
    yield path, group
    if isinstance(group, click.Group):
        ctx = click.Context(group, info_name=path[-1] if path else "asrtools")
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path + (name,))}: listed but cannot be loaded"
            yield from walk(sub, path + (name,))


def help_examples(text: str) -> List[str]:
    """The `asrtools ...` command lines after each `Example:` (backslash continuations joined)."""
    examples: List[str] = []
    lines = text.splitlines()
    in_example = False
    pending = ""
    for line in lines:
        stripped = line.strip()
        match = re.search(r"\bExamples?\b[^:]*:\s*(.*)", stripped)
        if match:
            in_example = True
            stripped = match.group(1)
        elif not in_example:
            continue
        elif pending:
            pass
        elif not stripped or not stripped.startswith("asrtools"):
            in_example = stripped.startswith(("torchrun", "#"))  # other launchers: not checked
            continue
        if not stripped and not pending:
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            if pending.strip().startswith("asrtools"):
                examples.append(pending.strip())
            pending = ""
    return examples


def _config_file(raw: Optional[str]) -> Optional[Path]:
    """An example's --config file: found from the repo root or under a recipe (egs/*/*/)."""
    if raw is None:
        return None
    for candidate in [ROOT / raw, *sorted(ROOT.glob(f"egs/*/*/{raw}"))]:
        if candidate.is_file():
            return candidate
    return None


def _parse(command: click.Command, info_name: str, args: List[str],
           parent: Optional[click.Context]) -> Tuple[click.Context, Dict[str, object], List[str]]:
    """Parse `args` with `command`'s own parser: unknown options and bad usage raise, missing
    required options do not (an example may leave some out, e.g. `--show-config`)."""
    ctx = click.Context(command, info_name=info_name, parent=parent)
    opts, leftover, _ = command.make_parser(ctx).parse_args(list(args))
    given = {name: value for name, value in opts.items() if isinstance(value, (str, list, tuple))}
    for param in command.params:
        if param.name in given and not isinstance(param.type, click.Path):
            param.type_cast_value(ctx, given[param.name])  # a Choice, int, float... raises BadParameter
    return ctx, given, leftover


def check_example(line: str) -> None:
    """Parse `line` against the click tree (an exception naming what is wrong)."""
    argv = shlex.split(line, comments=True)
    assert argv[0] == "asrtools", line
    command: click.Command = cli
    args = argv[1:]
    parent: Optional[click.Context] = None
    info_name = "asrtools"
    while True:
        ctx, given, leftover = _parse(command, info_name, args, parent)
        if not isinstance(command, click.Group):
            break
        assert leftover, f"{line}: names a group, not a command"
        sub = command.get_command(ctx, leftover[0])
        assert sub is not None, f"{line}: no command {leftover[0]!r}"
        command, args, parent, info_name = sub, leftover[1:], ctx, leftover[0]
    assert not leftover or command.allow_extra_args, f"{line}: stray arguments {leftover}"
    loader = config_loader(command)
    overrides = tuple(given.get("overrides") or ())
    if overrides:
        assert loader is not None, f"{line}: --set on a command without a config"
    if loader is not None:
        opts = {k: v for k, v in given.items() if k != "baseline"}
        config_path = given.get("config_path")
        loader(_config_file(str(config_path) if config_path else None), overrides, opts)


def _all_help_examples() -> List[Tuple[str, str]]:
    found = []
    for path, command in walk(cli):
        for example in help_examples(command.help or ""):
            found.append((" ".join(path) or "asrtools", example))
    return found


HELP_EXAMPLES = _all_help_examples()


def test_every_command_has_a_help_example() -> None:
    missing = [" ".join(path) for path, command in walk(cli)
               if path and not isinstance(command, click.Group) and not help_examples(command.help or "")]
    assert not missing, f"commands without an `Example:` line in --help: {missing}"


def test_every_config_command_shows_its_config() -> None:
    missing = [" ".join(path) for path, command in walk(cli)
               if {"config_path", "overrides"} <= {p.name for p in command.params}
               and config_loader(command) is None]
    assert not missing, f"--config/--set without --show-config (use config_options(Cls)): {missing}"


@pytest.mark.parametrize("where,example", HELP_EXAMPLES, ids=[f"{w}:{i}" for i, (w, _) in enumerate(HELP_EXAMPLES)])
def test_help_example_parses(where: str, example: str) -> None:
    check_example(example)


def test_show_config_examples_run() -> None:
    ran = 0
    for _, example in HELP_EXAMPLES:
        if "--show-config" in example:
            result = CliRunner().invoke(cli, shlex.split(example)[1:])
            assert result.exit_code == 0, f"{example}: {result.output}"
            ran += 1
    assert ran >= 1


def doc_examples(path: Path) -> List[str]:
    """`asrtools ...` lines (continuations joined) inside the ``` code blocks of a markdown file."""
    found: List[str] = []
    in_block = False
    pending = ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        stripped = line.strip().removeprefix("$ ")
        if not pending and not stripped.startswith("asrtools "):
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            found.append(pending.strip())
            pending = ""
    return found


# Lines with placeholders (`$VAR`, `<model>`, `...`) or diagram arrows are prose, not commands.
_PLACEHOLDER = re.compile(r"[$<]|\.\.\.|->|→")


def _doc_set_examples() -> List[Tuple[str, str]]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [(path.relative_to(ROOT).as_posix(), line) for path in files if path.is_file()
            for line in doc_examples(path) if not _PLACEHOLDER.search(line)]


DOC_EXAMPLES = _doc_set_examples()


@pytest.mark.parametrize("where,example", DOC_EXAMPLES, ids=[f"{w}:{i}" for i, (w, _) in enumerate(DOC_EXAMPLES)])
def test_doc_example_parses(where: str, example: str) -> None:
    check_example(example.split(" | ")[0].split(" && ")[0].split(" > ")[0].split(" 2>")[0])


def test_extractor_joins_continuations() -> None:
    text = "Do it.\n\n\b\nExample:\n  asrtools a --x 1 \\\n    --y 2\n  torchrun asrtools a\n\nMore."
    assert help_examples(text) == ["asrtools a --x 1 --y 2"]
    assert help_examples("Show.  Example: asrtools bpe encode m.model HI") == ["asrtools bpe encode m.model HI"]


def test_bad_examples_are_caught() -> None:
    with pytest.raises(Exception, match="num_speakers"):
        check_example("asrtools data synth --out-dir x --set num_speakers=20")
    with pytest.raises(click.NoSuchOption):
        check_example("asrtools data synth --out-dir x --no-such-option")
    with pytest.raises(AssertionError, match="no command"):
        check_example("asrtools data nosuchcommand")
