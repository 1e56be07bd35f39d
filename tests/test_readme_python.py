"""README's Python API block runs as written, on a tiny Kaldi data dir in the layout it names."""
import re
from pathlib import Path

from fake_corpora import write_kaldi_dir

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    utterances = [(f"s{n}-u{i}", f"s{n}", "hello world again") for n in range(2) for i in range(2)]
    write_kaldi_dir(tmp_path / "data" / "test", utterances, tmp_path / "audio", sample_rate=8000,
                    speaker_attributes={"gender": {"s0": "f", "s1": "m"}, "accent": {"s0": "scottish", "s1": "irish"}})
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("s0 female") and "scottish" in printed
    assert (tmp_path / "data" / "manifests" / "speakers.csv").is_file()
