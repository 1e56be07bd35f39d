"""Transcript readers and bad-input errors (one line, naming file and line / id)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.errors import ConfigError, DataError
from asrtools.scoring.io import (
    detect_format,
    load_pairs,
    read_kaldi_text,
    read_recogs,
    read_speaker_attributes,
    read_trn,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_trn_and_kaldi_text(tmp_path: Path) -> None:
    trn = _write(tmp_path / "a.trn", ";; comment\nhello world (spk1-u1)\n\n (spk1-u2)\nx (y) z (spk2-u1)\n")
    assert read_trn(trn) == {"spk1-u1": "hello world", "spk1-u2": "", "spk2-u1": "x (y) z"}
    text = _write(tmp_path / "text", "spk1-u1 hello  world\nspk1-u2\n")
    assert read_kaldi_text(text) == {"spk1-u1": "hello  world", "spk1-u2": ""}
    assert detect_format(trn) == "trn" and detect_format(text) == "text"


@pytest.mark.parametrize(
    "content, message",
    [
        ("a (s-1)\nno id here\n", r"ref.trn:2: malformed trn line"),
        ("a (s-1)\nb ()\n", r"ref.trn:2: malformed trn line"),
        ("a (s-1)\nb (s-2)\nc (s-1)\n", r"ref.trn:3: duplicate utterance id 's-1' \(first on line 1\)"),
    ],
)
def test_trn_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_trn(_write(tmp_path / "ref.trn", content))


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.trn"
    path.write_bytes(b"ok (s-1)\nbad \xff\xfe (s-2)\n")
    with pytest.raises(DataError, match=r"bad.trn:2: not valid UTF-8"):
        read_trn(path)


def test_pairing_errors_and_allow_missing(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.trn", "a b (s-1)\nc d (s-2)\ne (s-3)\n")
    extra = _write(tmp_path / "extra.trn", "a b (s-1)\nc d (s-2)\ne (s-3)\nz (s-9)\n")
    with pytest.raises(DataError, match=r"extra.trn:4: utterance 's-9' has no reference in .*ref.trn"):
        load_pairs(ref, extra)
    partial = _write(tmp_path / "partial.trn", "a b (s-1)\n")
    with pytest.raises(DataError, match=r"no hypothesis for utterance 's-2' .* \(and 1 more\); use --allow-missing"):
        load_pairs(ref, partial)
    pairs = load_pairs(ref, partial, allow_missing=True)
    assert [(p.id, p.hyp, p.missing_hyp) for p in pairs] == [
        ("s-1", "a b", False), ("s-2", "", True), ("s-3", "", True)
    ]
    with pytest.raises(ConfigError, match="give the hypotheses with --hyp"):
        load_pairs(ref)


def test_recogs_reader(tmp_path: Path) -> None:
    good = [
        {"id": "spk1-a", "speaker": "spk1", "ref": "a b", "hyp": "a", "custom": {"region": "north"}},
        {"id": "x_b", "ref": "c", "hyp": None},
    ]
    path = _write(tmp_path / "recogs.jsonl", "".join(json.dumps(r) + "\n" for r in good))
    with pytest.raises(DataError, match=r"recogs.jsonl:2: utterance 'x_b' has no 'hyp'"):
        read_recogs(path)
    pairs = read_recogs(path, allow_missing=True)
    assert pairs[0].custom == {"region": "north"} and pairs[1].speaker == "x" and pairs[1].missing_hyp
    assert [p.id for p in load_pairs(tmp_path, allow_missing=True)] == ["spk1-a", "x_b"]  # decode dir
    bad_json = _write(tmp_path / "bad.jsonl", json.dumps(good[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        read_recogs(bad_json)
    dup = _write(tmp_path / "dup.jsonl", json.dumps(good[0]) + "\n" + json.dumps(good[0]) + "\n")
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate utterance id 'spk1-a' \(first on line 1\)"):
        read_recogs(dup)
    no_ref = _write(tmp_path / "noref.jsonl", json.dumps({"id": "q-1", "hyp": "a"}) + "\n")
    with pytest.raises(DataError, match=r"noref.jsonl:1: utterance 'q-1' has no 'ref' string"):
        read_recogs(no_ref)


def test_recogs_as_written_by_the_decode_stage(tmp_path: Path) -> None:
    record = {"cut_id": "cut-7", "utt_id": "spk3-cut-7", "speaker": "spk3", "gender": "female", "ref": "a b",
              "hyp": "a", "duration": 1.5, "decode_seconds": 0.01, "custom": {"region": "north", "zip": "12345"}}
    pair = read_recogs(_write(tmp_path / "recogs.jsonl", json.dumps(record) + "\n"))[0]
    assert (pair.id, pair.speaker) == ("cut-7", "spk3")
    assert pair.custom["gender"] == "female" and pair.custom["region"] == "north" and pair.custom["zip"] == "12345"


def test_decode_dir_with_trn_files(tmp_path: Path) -> None:
    _write(tmp_path / "ref.trn", "a b (s-1)\n")
    _write(tmp_path / "hyp.trn", "a (s-1)\n")
    assert [(p.ref, p.hyp) for p in load_pairs(tmp_path)] == [("a b", "a")]


def test_cohort_map_text_and_supervisions(tmp_path: Path) -> None:
    text = _write(tmp_path / "map.txt", "# speaker cohort\nspk1 north east\nspk2 south\nspk1 north east\n")
    assert read_speaker_attributes(text) == {"spk1": {"cohort": "north east"}, "spk2": {"cohort": "south"}}
    conflict = _write(tmp_path / "conflict.txt", "spk1 a\nspk1 b\n")
    with pytest.raises(DataError, match=r"conflict.txt:2: speaker 'spk1' mapped to 'b' but to 'a' on line 1"):
        read_speaker_attributes(conflict)

    from lhotse import SupervisionSegment, SupervisionSet

    sups = SupervisionSet.from_segments(
        [
            SupervisionSegment("u1", "r1", 0.0, 1.0, speaker="spk1", gender="female",
                               custom={"region": "north", "environment": "car"}),
            SupervisionSegment("u2", "r2", 0.0, 1.0, speaker="spk1", gender="female",
                               custom={"region": "north", "environment": "home"}),
            SupervisionSegment("u3", "r3", 0.0, 1.0, speaker="spk2", gender="male", custom={"region": "south"}),
        ]
    )
    manifest = tmp_path / "supervisions.jsonl.gz"
    sups.to_file(manifest)
    assert read_speaker_attributes(manifest) == {
        "spk1": {"region": "north", "gender": "female"},  # environment varies: left out
        "spk2": {"region": "south", "gender": "male"},
    }


def test_cli_bad_input_is_one_line_error_and_leaves_no_outputs(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.trn", "a b (s-1)\nc (s-2)\n")
    hyp = _write(tmp_path / "hyp.trn", "a b (s-1)\nc (s-2)\nd (s-3)\n")
    out = tmp_path / "wer"
    result = CliRunner().invoke(cli, ["score", "wer", "--ref", str(ref), "--hyp", str(hyp), "--out-dir", str(out)])
    assert result.exit_code == 1
    error_lines = [line for line in result.output.splitlines() if line.startswith("asrtools: error:")]
    assert len(error_lines) == 1 and "hyp.trn:3: utterance 's-3' has no reference" in error_lines[0]
    assert not (out / "wer.json").exists()
