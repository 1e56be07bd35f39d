"""Bad input at the door: every kind gives one `asrtools: error: ...` line naming the item, exit 1, nothing half-written.

Each case builds its bad input from small fixtures (a `make_corpus` corpus and BPE model, a
tiny random-weight checkpoint, a two-utterance synthetic TTS-style corpus directory, scored
recognitions), runs the command, and checks: exit status 1 from an `AsrtoolsError` (no
traceback), exactly one `asrtools: error:` line containing the expected words (which name
the offending file, line, cut, key or option), and that the stage directory holds no
done-marker and no output file. Errors found at the door (before the stage starts) also
leave no `.inprogress.json`. A cut with an EMPTY reference is not bad input: it is decoded
and scored (every hypothesis word an insertion), overall and per cohort.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.utils import fastcopy

from asrtools.cli import cli
from asrtools.data.io import save_manifest
from asrtools.models.build import build_model, model_config_from_dict, model_config_to_dict
from asrtools.models.checkpoint import save_checkpoint

from conftest import REPO
from test_train_helpers import TINY_CONFIG, make_corpus, write_config

torch.set_num_threads(1)

RUN_SH = REPO / "egs" / "synth" / "asr" / "run.sh"


class Env(NamedTuple):
    """The shared good inputs that the cases spoil."""

    root: Path
    corpus: Dict[str, Path]
    checkpoint: Path
    config: Path
    recogs: Path
    wer_dir: Path


def _wav(path: Path, rate: int = 16000, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def _synth_corpus(root: Path, wavs: Optional[Dict[str, Callable[[Path], None]]] = None,
                  texts: Optional[Dict[str, str]] = None, utterances_text: Optional[str] = None) -> Path:
    """A two-utterance corpus directory as `asrtools data synth` writes it (speakers, zipcodes, utterances, wav)."""
    root.mkdir(parents=True)
    speaker = {"id": "spk1", "gender": "f", "accent": "en-gb", "region": "north", "engine": "espeak-ng",
               "lat": 51.5, "lon": -0.1, "zip": "10001", "channel": "close"}
    (root / "speakers.jsonl").write_text(json.dumps(speaker) + "\n")
    (root / "zipcodes.csv").write_text("zip,urbanicity,income_band,majority_language_share,median_age\n"
                                       "10001,urban,high,0.9,35\n")
    rows = []
    for utt in ("u1", "u2"):
        wav = root / "wav" / f"{utt}.wav"
        (wavs or {}).get(utt, _wav)(wav)
        rows.append({"id": utt, "speaker": "spk1", "text": (texts or {}).get(utt, "HELLO WORLD"),
                     "wav": f"wav/{utt}.wav", "split": "train", "noise": "none", "snr_db": None})
    lines = [json.dumps(r) for r in rows]
    (root / "utterances.jsonl").write_text(utterances_text if utterances_text is not None else "\n".join(lines) + "\n")
    return root


def _supervisions(path: Path, texts: List[str]) -> Path:
    sups = [SupervisionSegment(id=f"s{i}", recording_id=f"r{i}", start=0.0, duration=1.0, text=t, speaker="spk1")
            for i, t in enumerate(texts)]
    save_manifest(SupervisionSet.from_segments(sups), path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    root = tmp_path_factory.mktemp("bad_inputs")
    corpus = make_corpus(root / "data", num_train=4, num_dev=4)
    config = write_config(root / "train.yaml")
    from asrtools.text.tokenizer import Tokenizer

    model_config = model_config_from_dict({**TINY_CONFIG["model"]})
    torch.manual_seed(0)
    model = build_model(model_config, Tokenizer(corpus["bpe_model"]).vocab_size)
    checkpoint = root / "exp" / "averaged.pt"
    save_checkpoint(checkpoint, {"model": model.state_dict(), "model_config": model_config_to_dict(model_config),
                                 "vocab_size": model.vocab_size})
    recogs = root / "recogs.jsonl"
    lines = [{"id": f"spk{s}-u{u}", "speaker": f"spk{s}", "ref": "a b c d", "hyp": "a b x d",
              "custom": {"region": "north" if s < 2 else "south"}} for s in range(4) for u in range(3)]
    recogs.write_text("".join(json.dumps(r) + "\n" for r in lines))
    wer_dir = root / "wer"
    result = CliRunner().invoke(cli, ["score", "wer", "--ref", str(recogs), "--out-dir", str(wer_dir)])
    assert result.exit_code == 0, result.output
    return Env(root, corpus, checkpoint, config, recogs, wer_dir)


def _decode(env: Env, out: Path, **changes: str) -> List[str]:
    args = {"--exp-dir": str(env.checkpoint.parent), "--checkpoint": str(env.checkpoint),
            "--cuts": str(env.corpus["cuts_dev"]), "--bpe-model": str(env.corpus["bpe_model"]),
            "--out-dir": str(out), **changes}
    return ["decode", *[x for kv in args.items() for x in kv]]


def _train(env: Env, out: Path, **changes: str) -> List[str]:
    args = {"--config": str(env.config), "--cuts-train": str(env.corpus["cuts_train"]),
            "--cuts-dev": str(env.corpus["cuts_dev"]), "--bpe-model": str(env.corpus["bpe_model"]),
            "--exp-dir": str(out), **changes}
    return ["train", *[x for kv in args.items() for x in kv]]


def _cuts_variant(env: Env, path: Path, change: Callable) -> Path:
    cuts = CutSet.from_file(env.corpus["cuts_dev"]).to_eager()
    CutSet.from_cuts(change(c, i) for i, c in enumerate(cuts)).to_file(path)
    return path


def _nan_features(env: Env, tmp: Path) -> Path:
    """The dev cuts with one NaN in the features of cut dev-001 (stored losslessly)."""
    from lhotse import NumpyFilesWriter

    cuts = list(CutSet.from_file(env.corpus["cuts_dev"]))
    feats = cuts[1].load_features().copy()
    feats[3, 5] = np.nan
    with NumpyFilesWriter(tmp / "nan") as writer:
        key = writer.write(cuts[1].id, feats)
        cuts[1] = fastcopy(cuts[1], features=fastcopy(cuts[1].features, storage_type=writer.name,
                                                      storage_path=str(writer.storage_path), storage_key=key))
    CutSet.from_cuts(cuts).to_file(tmp / "nan_cuts.jsonl.gz")
    return tmp / "nan_cuts.jsonl.gz"


class Case(NamedTuple):
    """A bad input: `make(env, tmp)` returns the CLI args and the stage directory; the error must contain `expect`."""

    make: Callable[[Env, Path], tuple]
    expect: List[str]
    at_door: bool = True


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CASES: Dict[str, Case] = {
    # --- audio and corpus files (asrtools data manifests)
    "missing audio file": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(t / "c", wavs={"u2": lambda p: None})),
                       "--out-dir", str(t / "m")], t / "m"),
        ["utterance u2: audio file", "u2.wav is missing"]),
    "corrupt (garbage) wav": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(
            t / "c", wavs={"u1": lambda p: (p.parent.mkdir(parents=True, exist_ok=True),
                                            p.write_bytes(b"RIFF\x10\x00\x00\x00garbage!" * 20))})),
                       "--out-dir", str(t / "m")], t / "m"),
        ["utterance u1: cannot read audio", "u1.wav"]),
    "truncated wav": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(
            t / "c", wavs={"u2": lambda p: p.write_bytes(_wav(p).read_bytes()[:5000])})),
                       "--out-dir", str(t / "m")], t / "m"),
        ["utterance u2: audio file", "u2.wav is truncated", "declares 16000 bytes of samples but only 4956"]),
    "wrong sample rate vs config": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(
            t / "c", wavs={"u1": lambda p: _wav(p, rate=8000)})), "--sample-rate", "16000",
                       "--out-dir", str(t / "m")], t / "m"),
        ["utterance u1:", "u1.wav has sample rate 8000 Hz, expected 16000"]),
    "empty transcript in the corpus": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(t / "c", texts={"u2": "  "})),
                       "--out-dir", str(t / "m")], t / "m"),
        ["utterances.jsonl: utterance u2: empty transcript"]),
    "malformed jsonl line in the corpus": Case(
        lambda e, t: (["data", "manifests", "--corpus-dir", str(_synth_corpus(
            t / "c", utterances_text='{"id": "u1"}\n{"id": "u2", \n')), "--out-dir", str(t / "m")], t / "m"),
        ["utterances.jsonl:1: no 'speaker' field"]),
    # --- manifests (asrtools bpe train)
    "empty transcript in a manifest": Case(
        lambda e, t: (["bpe", "train", "--supervisions", str(_supervisions(t / "sup.jsonl.gz", ["HI THERE", ""])),
                       "--set", "vocab_size=30", "--out-dir", str(t / "bpe")], t / "bpe"),
        ["sup.jsonl.gz: supervision s1 has an empty transcript"]),
    "BPE vocabulary larger than the transcripts allow": Case(
        lambda e, t: (["bpe", "train", "--supervisions", str(_supervisions(t / "sup.jsonl.gz", ["HI THERE", "BYE"])),
                       "--set", "vocab_size=1000", "--out-dir", str(t / "bpe")], t / "bpe"),
        ["BPE training: vocab_size 1000 is more than these 2 sentences allow (at most", "lower vocab_size"],
        at_door=False),
    "malformed jsonl line in a manifest": Case(
        lambda e, t: (["bpe", "train", "--supervisions", str(_gz_lines(t / "sup.jsonl.gz", [
            {"id": "s0", "recording_id": "r0", "start": 0, "duration": 1, "channel": 0, "text": "HI"}, "{oops",
        ])), "--out-dir", str(t / "bpe")], t / "bpe"),
        ["--supervisions:", "sup.jsonl.gz:2: not valid JSON"]),
    "recordings manifest given as supervisions": Case(
        lambda e, t: (["bpe", "train", "--supervisions", str(_recordings(t / "rec.jsonl.gz")),
                       "--out-dir", str(t / "bpe")], t / "bpe"),
        ["rec.jsonl.gz holds a RecordingSet, expected a SupervisionSet"]),
    # --- cuts (asrtools decode / train)
    "supervisions given as --cuts to decode": Case(
        lambda e, t: (_decode(e, t / "d", **{"--cuts": str(_supervisions(t / "sup.jsonl.gz", ["HI"]))}), t / "d"),
        ["cuts:", "sup.jsonl.gz is a SupervisionSet (supervisions), not a CutSet"]),
    "supervisions given as --cuts-train to train": Case(
        lambda e, t: (_train(e, t / "x", **{"--cuts-train": str(_supervisions(t / "sup.jsonl.gz", ["HI"]))}), t / "x"),
        ["--cuts-train:", "sup.jsonl.gz is a SupervisionSet (supervisions), not a CutSet"]),
    "cuts without features": Case(
        lambda e, t: (_decode(e, t / "d", **{"--cuts": str(_cuts_variant(
            e, t / "nofeat.jsonl.gz", lambda c, i: fastcopy(c, features=None) if i == 2 else c))}), t / "d"),
        ["cuts: cut dev-002 has no precomputed features"]),
    "NaN in features": Case(
        lambda e, t: (_decode(e, t / "d", **{"--cuts": str(_nan_features(e, t))}), t / "d"),
        ["cut dev-001: its features hold NaN or infinite values"], at_door=False),
    # --- configs (asrtools train)
    "unknown config key": Case(
        lambda e, t: (_train(e, t / "x", **{"--config": str(write_config(t / "c.yaml", {"optim": {"lrr": 1}}))}), t / "x"),
        ["c.yaml.optim: unknown key 'lrr'"]),
    "wrong config value type": Case(
        lambda e, t: (_train(e, t / "x", **{"--config": str(write_config(t / "c.yaml", {"num_epochs": "ten"}))}), t / "x"),
        ["c.yaml.num_epochs: expected an integer, got 'ten'"]),
    "malformed YAML": Case(
        lambda e, t: (_train(e, t / "x", **{"--config": str(_text(t / "c.yaml", "model: {encoder: lstm\n"))}), t / "x"),
        ["c.yaml line", "malformed YAML"]),
    "missing config file": Case(
        lambda e, t: (_train(e, t / "x", **{"--config": str(t / "none.yaml")}), t / "x"),
        ["none.yaml: config file not found"]),
    "malformed --set override": Case(
        lambda e, t: (_train(e, t / "x") + ["--set", "num_epochs"], t / "x"),
        ["override 'num_epochs': expected KEY=VALUE"]),
    # --- models (asrtools decode / model info)
    "missing BPE model (decode)": Case(
        lambda e, t: (_decode(e, t / "d", **{"--bpe-model": str(t / "none.model")}), t / "d"),
        ["input bpe_model:", "none.model does not exist"]),
    "missing BPE model (train)": Case(
        lambda e, t: (_train(e, t / "x", **{"--bpe-model": str(t / "none.model")}), t / "x"),
        ["input bpe_model:", "none.model does not exist"]),
    "BPE model of another vocabulary": Case(
        lambda e, t: (_decode(e, t / "d", **{"--bpe-model": str(_other_bpe(t))}), t / "d"),
        ["other.model has 40 tokens but", "averaged.pt was trained with 35"]),
    "checkpoint that is not a checkpoint": Case(
        lambda e, t: (_decode(e, t / "d", **{"--checkpoint": str(_text(t / "notes.pt", "hello"))}), t / "d"),
        ["checkpoint", "notes.pt is not a PyTorch checkpoint file"]),
    "truncated checkpoint": Case(
        lambda e, t: (_decode(e, t / "d", **{"--checkpoint": str(_truncated(e.checkpoint, t / "cut.pt"))}), t / "d"),
        ["checkpoint", "cut.pt is not a PyTorch checkpoint file (truncated, or another format)"]),
    "checkpoint without a model": Case(
        lambda e, t: (_decode(e, t / "d", **{"--checkpoint": str(_saved(t / "opt.pt", {"step": 3}))}), t / "d"),
        ["checkpoint", "opt.pt holds no model"]),
    "checkpoint with foreign objects": Case(
        lambda e, t: (["model", "info", "--checkpoint", str(_pickled(t / "evil.pt")), "--out-dir", str(t / "i")], t / "i"),
        ["checkpoint", "evil.pt cannot be loaded (UnpicklingError"]),
    "streaming chunk that splits a subsampling group": Case(
        lambda e, t: (_decode(e, t / "d", **{"--method": "streaming_greedy", "--chunk-frames": "6"}), t / "d"),
        ["--chunk-frames 6 must be a positive multiple of 4"]),
    # --- scoring (asrtools score wer / cohorts / compare)
    "recogs.jsonl with a malformed line": Case(
        lambda e, t: (["score", "wer", "--ref", str(_text(t / "recogs.jsonl", e.recogs.read_text() + "{not json\n")),
                       "--out-dir", str(t / "w")], t / "w"),
        ["recogs.jsonl:13: not valid JSON"]),
    "trn line without its id": Case(
        lambda e, t: (["score", "wer", "--ref", str(_text(t / "ref.trn", "a b (spk1-u1)\na b c\n")),
                       "--hyp", str(_text(t / "hyp.trn", "a b (spk1-u1)\n")), "--out-dir", str(t / "w")], t / "w"),
        ["ref.trn:2: malformed trn line"]),
    "trn file with a missing id": Case(
        lambda e, t: (["score", "wer", "--ref", str(_text(t / "ref.trn", "a b (spk1-u1)\na c (spk1-u2)\n")),
                       "--hyp", str(_text(t / "hyp.trn", "a b (spk1-u1)\n")), "--out-dir", str(t / "w")], t / "w"),
        ["hyp.trn: no hypothesis for utterance 'spk1-u2'"]),
    "mismatched ref/hyp ids": Case(
        lambda e, t: (["score", "wer", "--ref", str(_text(t / "ref.trn", "a b (spk1-u1)\n")),
                       "--hyp", str(_text(t / "hyp.trn", "a b (spk1-u1)\na b (spk9-u1)\n")), "--out-dir", str(t / "w")],
                      t / "w"),
        ["hyp.trn:2: utterance 'spk9-u1' has no reference in"]),
    "reference that is not UTF-8": Case(
        lambda e, t: (["score", "wer", "--ref", str(_bytes(t / "ref.trn", b"a b (spk1-u1)\n\xff\xfe (spk1-u2)\n")),
                       "--hyp", str(_text(t / "hyp.trn", "a b (spk1-u1)\n")), "--out-dir", str(t / "w")], t / "w"),
        ["ref.trn:2: not valid UTF-8"]),
    "--by unknown field": Case(
        lambda e, t: (["score", "cohorts", "--recogs", str(e.recogs), "--by", "accent", "--out-dir", str(t / "c")],
                      t / "c"),
        ["--by 'accent': no utterance has this field (known:", "region"]),
    "malformed cohort map": Case(
        lambda e, t: (["score", "cohorts", "--recogs", str(e.recogs), "--cohort-map",
                       str(_text(t / "map.txt", "spk0 a\nspk1\n")), "--out-dir", str(t / "c")], t / "c"),
        ["map.txt:2: expected 'speaker cohort'"]),
    "score compare of different utterances": Case(
        lambda e, t: (["score", "compare", "--a", str(e.recogs), "--b", str(_text(t / "b.jsonl", "".join(
            line for line in e.recogs.read_text().splitlines(keepends=True) if "spk3-u2" not in line))),
                       "--out-dir", str(t / "cmp")], t / "cmp"),
        ["utterance 'spk3-u2' is in", "but not in", "b.jsonl"]),
    # --- result pages (asrtools report results)
    "result page with a missing artifact": Case(
        lambda e, t: (_report(e, t, lambda run: None), t / "page"),
        ["system lstm: test:", "decode_test_greedy/wer/wer.json does not exist"]),
    "result page artifact of the wrong kind": Case(
        lambda e, t: (_report(e, t, lambda run: (run / "info" / "info.json").write_text(
            json.dumps({"schema": "asrtools.wer", "version": 1, "total": {"words": 1}}))), t / "page"),
        ["info/info.json: not an asrtools.model_info file (made by `asrtools model info`)"]),
    "result page system without a name": Case(
        lambda e, t: (["report", "results", "--config", str(REPO / "egs/synth/asr/conf/report.yaml"),
                       "--system", "=exp/a", "--out", str(t / "R.md"), "--out-dir", str(t / "page")], t / "page"),
        ["--system '=exp/a': expected NAME=RUN_DIR"]),
}


def _gz_lines(path: Path, rows: list) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("".join((json.dumps(r) if isinstance(r, dict) else r) + "\n" for r in rows))
    return path


def _recordings(path: Path) -> Path:
    save_manifest(RecordingSet.from_recordings([Recording.from_file(_wav(path.parent / "r.wav"))]), path)
    return path


def _other_bpe(tmp: Path) -> Path:
    from test_train_helpers import WORDS

    from asrtools.text.tokenizer import train_bpe

    train_bpe(WORDS * 3 + ["BA DO KI LO MU NE SE TA"], tmp / "other.model", vocab_size=40)
    return tmp / "other.model"


def _truncated(source: Path, path: Path) -> Path:
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return path


def _saved(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


class _Foreign:
    pass


def _pickled(path: Path) -> Path:
    torch.save({"model": _Foreign()}, path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _report(env: Env, tmp: Path, spoil: Callable[[Path], None]) -> List[str]:
    """A one-system page over a run made of the scored recognitions; `spoil(run)` breaks it."""
    run = tmp / "lstm"
    for decode, method in (("decode_dev_greedy", "greedy"), ("decode_test_streaming", "streaming_greedy")):
        (run / decode).mkdir(parents=True)
        (run / decode / "summary.json").write_text(json.dumps({"options": {"method": method, "chunk_frames": 32}}))
        result = CliRunner().invoke(cli, ["score", "wer", "--ref", str(env.recogs), "--out-dir", str(run / decode / "wer")])
        assert result.exit_code == 0, result.output
    (run / "info").mkdir()
    (run / "info" / "info.json").write_text(json.dumps({"schema": "asrtools.model_info", "version": 1}))
    spoil(run)
    return ["report", "results", "--config", str(REPO / "egs/synth/asr/conf/report.yaml"),
            "--system", f"lstm={run}", "--out", str(tmp / "R.md"),
            "--out-dir", str(tmp / "page")]


def _outputs(directory: Path) -> List[str]:
    """Files in a stage directory that are outputs or leftovers (not control files)."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and (not p.name.startswith(".") or p.name.startswith(".tmp-")))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_naming_the_item(env: Env, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    args, stage_dir = case.make(env, tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (name, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("asrtools: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, (name, result.output)
    for words in case.expect:
        assert words in errors[0], (name, errors[0])
    assert not (stage_dir / ".done.json").exists(), name
    assert _outputs(stage_dir) == [], (name, _outputs(stage_dir))
    if case.at_door:
        assert not (stage_dir / ".inprogress.json").exists(), name
    assert not (tmp_path / "R.md").exists()


def test_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20


def test_bad_input_at_the_door_keeps_the_previous_outputs(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "cohorts"
    good = ["score", "cohorts", "--recogs", str(env.recogs), "--by", "region", "--bootstrap", "20", "--out-dir", str(out)]
    assert CliRunner().invoke(cli, good).exit_code == 0
    before = {p: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = CliRunner().invoke(cli, good[:-4] + ["--by", "nosuch", "--bootstrap", "20", "--out-dir", str(out)])
    assert result.exit_code == 1 and "--by 'nosuch'" in result.output
    assert {p: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # marker and outputs untouched


def test_error_is_the_only_line_on_stderr_of_a_real_process(env: Env, tmp_path: Path) -> None:
    bad = _text(tmp_path / "recogs.jsonl", env.recogs.read_text() + "{not json\n")
    proc = subprocess.run([sys.executable, "-m", "asrtools.cli.main", "score", "wer", "--ref", str(bad),
                           "--out-dir", str(tmp_path / "w")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"asrtools: error: {bad}:13: not valid JSON (Expecting property name enclosed in double " \
                          "quotes: line 1 column 2 (char 1))\n"


def test_run_sh_unknown_option_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([str(RUN_SH), "--no-such-option", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"{RUN_SH}: unknown option --no-such-option (try --help)"]


# ----------------------------------------------------------------------------- empty references are not errors


def test_empty_reference_is_scored_as_insertions_overall_and_per_cohort(tmp_path: Path) -> None:
    rows = [{"id": "spk0-u0", "speaker": "spk0", "ref": "a b c d", "hyp": "a b c x", "custom": {"region": "north"}},
            {"id": "spk0-u1", "speaker": "spk0", "ref": "", "hyp": "um uh", "custom": {"region": "north"}},
            {"id": "spk1-u0", "speaker": "spk1", "ref": "", "hyp": "oh", "custom": {"region": "south"}},
            {"id": "spk1-u1", "speaker": "spk1", "ref": "", "hyp": "", "custom": {"region": "south"}}]
    recogs = _text(tmp_path / "recogs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli, ["score", "wer", "--ref", str(recogs), "--out-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    total = json.loads((tmp_path / "w" / "wer.json").read_text())["total"]
    assert (total["words"], total["sub"], total["ins"], total["err"]) == (4, 1, 3, 4) and total["wer"] == 1.0
    utts = [json.loads(line) for line in (tmp_path / "w" / "utts.jsonl").read_text().splitlines()]
    assert [(u["words"], u["ins"], u["ops"]) for u in utts[1:]] == [(0, 2, "II"), (0, 1, "I"), (0, 0, "")]
    result = CliRunner().invoke(cli, ["score", "cohorts", "--recogs", str(tmp_path / "w"), "--by", "region",
                                      "--bootstrap", "50", "--out-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    cohorts = json.loads((tmp_path / "c" / "cohorts.json").read_text())
    by_label = {c["cohort"]: c for c in cohorts["groupings"][0]["cohorts"]}
    assert by_label["north"]["wer"] == 0.75 and by_label["north"]["n_ins"] == 2  # (1 sub + 2 ins) / 4 words
    assert by_label["south"]["n_words"] == 0 and by_label["south"]["wer"] is None and by_label["south"]["n_ins"] == 1
    assert "n/a" in (tmp_path / "c" / "cohorts.md").read_text()
    assert cohorts["overall"]["wer"] == 1.0


def test_cut_with_empty_reference_is_decoded_and_scored(env: Env, tmp_path: Path) -> None:
    cuts = _cuts_variant(env, tmp_path / "cuts.jsonl.gz", lambda c, i: fastcopy(
        c, supervisions=[fastcopy(c.supervisions[0], text="")]) if i == 0 else c)
    result = CliRunner().invoke(cli, _decode(env, tmp_path / "d", **{"--cuts": str(cuts)}))
    assert result.exit_code == 0, result.output
    recogs = [json.loads(line) for line in (tmp_path / "d" / "recogs.jsonl").read_text().splitlines()]
    empty = next(r for r in recogs if r["cut_id"] == "dev-000")
    assert empty["ref"] == "" and len(recogs) == 4
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["provenance"]["threads"] == torch.get_num_threads()
    result = CliRunner().invoke(cli, ["score", "wer", "--ref", str(tmp_path / "d"), "--out-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    utt = next(json.loads(line) for line in (tmp_path / "w" / "utts.jsonl").read_text().splitlines()
               if json.loads(line)["id"].endswith("dev-000"))
    assert utt["words"] == 0 and utt["ins"] == len(empty["hyp"].split()) and utt["err"] == utt["ins"]

