"""`asrtools sv embed` as a sharded stage: -j N processes and SLURM-style array tasks give
byte-identical artifacts, stale parts are recomputed, bad inputs fail at the door."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.sv.embeddings import read_embeddings

from test_sv_cli import trained  # noqa: F401  (module-scoped fixture: corpus + trained speaker model)

ARTIFACTS = ("utterances.npz", "speakers.npz")


def _embed(args, out: Path, task=None):
    prefix = ["--task", str(task)] if task is not None else []
    result = CliRunner().invoke(cli, [*prefix, *args, "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    return result


def _bytes(out: Path):
    return {name: (out / name).read_bytes() for name in ARTIFACTS}


def test_embed_in_processes_and_as_tasks_equals_one_process(trained, tmp_path):  # noqa: F811
    root, corpus = trained
    base = ["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts", str(corpus["cuts_test"]),
            "--shard-size", "10"]  # 45 cuts: five shards
    _embed([*base, "-j", "1"], tmp_path / "one")
    _embed([*base, "-j", "3"], tmp_path / "three")
    assert _bytes(tmp_path / "three") == _bytes(tmp_path / "one")
    assert len(read_embeddings(tmp_path / "one", "utterances")) == 45
    assert not (tmp_path / "one" / ".parts").exists()
    # As SLURM array tasks run it: each task its shards, then the command itself merges.
    tasks = tmp_path / "tasks"
    for task in (2, 1):
        _embed([*base, "-j", "2"], tasks, task=task)
    assert sorted(p.name for p in (tasks / ".parts").iterdir()) == [f"part-{k:05d}.npz" for k in range(5)]
    assert not (tasks / "utterances.npz").exists()
    result = _embed([*base, "-j", "2"], tasks)
    assert "units to run" not in result.output  # every unit done: it only merges
    assert _bytes(tasks) == _bytes(tmp_path / "one") and not (tasks / ".parts").exists()
    assert (tasks / "embed.json").read_bytes() == (tmp_path / "one" / "embed.json").read_bytes()
    # The number of jobs is not part of the fingerprint.
    result = _embed([*base, "-j", "4"], tmp_path / "one")
    assert "up to date" in result.output, result.output


def test_a_part_holding_other_cuts_is_embedded_again(trained, tmp_path):  # noqa: F811
    root, corpus = trained
    args = ["sv", "embed", "--checkpoint", str(root / "exp" / "averaged.pt"), "--cuts", str(corpus["cuts_test"]),
            "--shard-size", "10"]
    _embed(args, tmp_path / "ref")
    out = tmp_path / "stale"
    for task in (1, 2):  # a run whose merge has not happened yet
        _embed([*args, "-j", "2"], out, task=task)
    part = out / ".parts" / "part-00000.npz"
    with np.load(part) as data:
        ids, vectors = data["ids"], data["vectors"]
    np.savez(part, ids=ids[1:], vectors=vectors[1:])  # e.g. written with another shard size
    result = _embed(args, out)
    assert "1 of 5 units to run" in result.output, result.output
    assert _bytes(out) == _bytes(tmp_path / "ref")


def test_bad_inputs_fail_in_one_line_before_the_stage_directory_is_used(trained, tmp_path):  # noqa: F811
    root, corpus = trained
    bad_cuts = tmp_path / "cuts_bad.jsonl"
    bad_cuts.write_text('{"id": "x", "start": 0\n')
    not_a_checkpoint = tmp_path / "model.pt"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    for checkpoint, cuts, what in ((root / "exp" / "averaged.pt", bad_cuts, f"cuts: {bad_cuts}"),
                                   (not_a_checkpoint, corpus["cuts_test"], str(not_a_checkpoint))):
        out = tmp_path / f"emb_{Path(what).name}"
        result = CliRunner().invoke(cli, ["sv", "embed", "--checkpoint", str(checkpoint), "--cuts", str(cuts),
                                          "-j", "2", "--out-dir", str(out)])
        assert result.exit_code == 1, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("asrtools: error:") and what in last, result.output
        assert "Traceback" not in result.output
        # Nothing was written: at most the stage lock the door check runs under.
        assert not out.exists() or sorted(p.name for p in out.iterdir()) == [".lock"]
