"""The package layers of .importlinter hold (`lint-imports`, PyPI import-linter), so CI enforces them.

import-linter counts every import, those inside functions (lazy imports) included: a lazy import
is a dependency too. The contracts are in .importlinter at the repository root.
"""
import configparser
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run_lint_imports(*args: str) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: pip install import-linter (see scripts/setup_env.sh)"
    # --no-cache: no cache directory is left in the repository.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def layered_packages() -> set:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    layers = parser["importlinter:contract:layers"]["layers"]
    names = set()
    for line in layers.split("\n"):
        line = line.split("#")[0].strip()
        names.update(part.strip() for part in line.replace(":", "|").split("|") if part.strip())
    return names


def test_contracts_are_kept():
    result = run_lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_top_level_package_has_a_layer():
    """A new package or top-level module cannot escape the contracts by not being listed."""
    top = {p.name for p in (REPO / "asrtools").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    top |= {p.stem for p in (REPO / "asrtools").glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert top == layered_packages()


def test_a_lazy_import_against_a_contract_is_reported(tmp_path):
    """The check sees imports inside functions: rtf.checkpoint_model imports decoding.recognize lazily."""
    config = tmp_path / "contracts.ini"
    config.write_text("[importlinter]\nroot_package = asrtools\n\n"
                      "[importlinter:contract:probe]\nname = probe\ntype = forbidden\n"
                      "source_modules =\n    asrtools.decoding.rtf\nforbidden_modules =\n    asrtools.decoding.recognize\n")
    result = run_lint_imports(str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "asrtools.decoding.rtf -> asrtools.decoding.recognize" in result.stdout
